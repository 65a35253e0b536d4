from odoo import api, fields, models


class EyrieCloneWizard(models.TransientModel):
    """Duplicate with data: where the clone goes and what it starts from."""

    _name = "eyrie.clone.wizard"
    _description = "Clone a Deployment"

    source_id = fields.Many2one("eyrie.deployment", required=True, readonly=True)
    name = fields.Char(string="Clone Name", required=True)
    scope_id = fields.Many2one(
        "eyrie.scope",
        required=True,
        domain="[('cluster_id', '=', source_cluster_id)]",
    )
    source_cluster_id = fields.Many2one(related="source_id.cluster_id")
    backup_id = fields.Many2one(
        "eyrie.backup",
        string="From Backup",
        domain="[('deployment_id', '=', source_id), ('state', '=', 'done')]",
        help="Empty: the source as it is now.",
    )
    source_type = fields.Selection(related="source_id.deployment_type")
    neutralize = fields.Boolean(default=True)
    neutralize_required = fields.Boolean(related="scope_id.neutralize_clones")

    @api.onchange("source_id")
    def _onchange_source_id(self):
        if self.source_id:
            self.scope_id = self.scope_id or self.source_id.scope_id
            self.name = self.name or self.env._("%s (clone)", self.source_id.name)

    @api.onchange("scope_id")
    def _onchange_scope_id(self):
        if self.scope_id.neutralize_clones:
            self.neutralize = True

    def action_clone(self):
        self.ensure_one()
        return self.source_id.action_clone(
            scope_id=self.scope_id.id,
            name=self.name,
            backup_id=self.backup_id.id or None,
            neutralize=self.neutralize,
        )
