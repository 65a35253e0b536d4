from odoo import fields, models


class EyrieJob(models.Model):
    _inherit = "eyrie.job"

    trigger = fields.Selection(
        selection_add=[("wake", "A Request"), ("schedule", "A Scheduled Action")],
        ondelete={
            "wake": lambda jobs: jobs.write({"trigger": "timer"}),
            "schedule": lambda jobs: jobs.write({"trigger": "timer"}),
        },
    )
