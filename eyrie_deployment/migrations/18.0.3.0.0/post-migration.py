from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    """Jobs now run on queue_job: what the old runner cron would have taken
    next gets its queue job, and every live deployment its timer job."""
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["eyrie.job"]._enqueue_after_upgrade()
    env["eyrie.deployment"].with_context(active_test=False).search(
        [("repository_state", "in", ("deploy", "pause"))]
    )._plan_timer_jobs()
