from odoo import fields, models

from .eyrie_job import DEFAULT_KEEP_PER_DEPLOYMENT, DEFAULT_RETENTION_DAYS


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    eyrie_job_retention_days = fields.Integer(
        string="Keep Jobs (days)",
        config_parameter="eyrie.job_retention_days",
        default=DEFAULT_RETENTION_DAYS,
        help="Ended jobs older than this are deleted by a daily cron. 0 keeps "
        "every job.",
    )
    eyrie_job_keep_per_deployment = fields.Integer(
        string="Always Keep (jobs per deployment)",
        config_parameter="eyrie.job_keep_per_deployment",
        default=DEFAULT_KEEP_PER_DEPLOYMENT,
        help="The latest jobs of each deployment are kept whatever their age.",
    )
