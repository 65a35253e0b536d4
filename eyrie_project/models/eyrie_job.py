from odoo import fields, models


class EyrieJob(models.Model):
    _inherit = "eyrie.job"

    trigger = fields.Selection(
        selection_add=[("push", "Push")],
        ondelete={"push": lambda jobs: jobs.write({"trigger": "user"})},
    )
