"""18.0.8.0.0: each deployment records when its timer job runs
(``timer_job_at``), so that a timer moved later touches no queue job. It is
read from the timer jobs planned before the upgrade."""

from odoo.addons.eyrie_deployment.models.eyrie_deployment_timer_cron import (
    NOT_STARTED,
)


def migrate(cr, version):
    if not version:
        return
    # The earliest when a deployment has several (planned twice): it runs,
    # fires what is due, and the next planning keeps one.
    cr.execute(
        """
        UPDATE eyrie_deployment AS d SET timer_job_at = planned.eta
          FROM (SELECT split_part(identity_key, ':', 2)::int AS id,
                       min(COALESCE(eta, date_created)) AS eta
                  FROM queue_job
                 WHERE identity_key LIKE 'eyrie.timer:%%' AND state IN %s
              GROUP BY 1) AS planned
         WHERE d.id = planned.id
        """,
        (NOT_STARTED,),
    )
