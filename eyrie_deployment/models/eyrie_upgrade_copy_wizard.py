from odoo import fields, models


class EyrieUpgradeCopyWizard(models.TransientModel):
    """Upgrade on a copy first: whether the copy stays once it reported."""

    _name = "eyrie.upgrade.copy.wizard"
    _description = "Upgrade an Odoo Deployment on a Copy"

    source_id = fields.Many2one("eyrie.deployment", required=True, readonly=True)
    pinned_commits = fields.Text(related="source_id.pinned_commits")
    keep = fields.Boolean(
        string="Keep the Copy",
        help="The copy stays once its upgrade is reported on this deployment, "
        "to be looked at; otherwise it is dropped.",
    )

    def action_upgrade_on_copy(self):
        self.ensure_one()
        return self.source_id.action_upgrade_on_copy(keep=self.keep)
