from odoo import api, fields, models
from odoo.exceptions import UserError


class EyrieRestoreWizard(models.TransientModel):
    """Confirmation of a restore: to one backup or a point in time."""

    _name = "eyrie.restore.wizard"
    _description = "Restore a Deployment"

    deployment_id = fields.Many2one("eyrie.deployment", required=True, readonly=True)
    restore_to = fields.Selection(
        [("backup", "A backup"), ("time", "A point in time")],
        default="backup",
        required=True,
    )
    backup_id = fields.Many2one(
        "eyrie.backup",
        domain="[('deployment_id', '=', deployment_id), ('state', '=', 'done')]",
    )
    target_time = fields.Datetime(
        string="Point in Time",
        help="The database returns to this moment; the filestore to the last "
        "backup before it that has a snapshot.",
    )
    confirm = fields.Boolean(
        string="I understand that the data written since is lost",
    )

    @api.onchange("deployment_id")
    def _onchange_deployment_id(self):
        if self.deployment_id and not self.backup_id:
            self.backup_id = self.deployment_id.backup_ids.filtered(
                lambda b: b.state == "done"
            )[:1]

    def action_restore(self):
        self.ensure_one()
        if not self.confirm:
            raise UserError(
                self.env._(
                    "Tick 'I understand that the data written since is lost' to "
                    "restore %s: a restore replaces its database.",
                    self.deployment_id.name,
                )
            )
        if self.restore_to == "backup":
            self.deployment_id.action_restore(backup_id=self.backup_id.id or None)
        else:
            self.deployment_id.action_restore(
                target_time=fields.Datetime.to_string(self.target_time)
                if self.target_time
                else None
            )
        return {"type": "ir.actions.act_window_close"}
