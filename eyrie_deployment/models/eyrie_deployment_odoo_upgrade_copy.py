from odoo import fields, models
from odoo.exceptions import UserError


class EyrieDeployment(models.Model):
    """Upgrade on a copy first: a neutralized clone of an Odoo deployment,
    deployed with the code its values name now (so upgraded by its first
    deploy), whose outcome is reported on the source; the copy is dropped
    afterwards unless the user keeps it."""

    _inherit = "eyrie.deployment"

    upgrade_copy = fields.Boolean(
        string="Upgrade Test Copy",
        readonly=True,
        copy=False,
        help="A copy made by 'Upgrade on a Copy': its outcome is reported on "
        "its source.",
    )
    upgrade_copy_keep = fields.Boolean(
        string="Keep Upgrade Copy",
        readonly=True,
        copy=False,
        help="The copy stays once its upgrade is reported; otherwise it is dropped.",
    )

    def action_upgrade_on_copy(self, keep=False):
        """Try the code of this deployment's values on a neutralized copy of
        its data before deploying it here: the copy pins the refs now, runs
        the upgrade on the copied database, and reports on this deployment
        how it went; then it is dropped, unless ``keep``. Returns the copy's
        form action."""
        self.ensure_one()
        if self.deployment_type != "odoo":
            raise UserError(
                self.env._(
                    "Deployment %(name)s is not an Odoo deployment: only Odoo "
                    "deployments are upgraded.",
                    name=self.name,
                )
            )
        stamp = fields.Datetime.context_timestamp(self, fields.Datetime.now())
        action = self.action_clone(
            name=self.env._(
                "%(name)s upgrade test %(when)s",
                name=self.name,
                when=stamp.strftime("%m%d-%H%M%S"),
            ),
            neutralize=True,
        )
        copy = self.browse(action["res_id"])
        # What the copy is for is the lifecycle's, as its lineage: users
        # never write it.
        copy.sudo().write({"upgrade_copy": True, "upgrade_copy_keep": bool(keep)})
        return action

    def action_open_upgrade_on_copy(self):
        self.ensure_one()
        # Refused before the wizard opens, not once it is filled in.
        self._check_can_act(self._verb_words("clone"))
        self._check_action_allowed("clone")
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Upgrade %s on a copy", self.name),
            "res_model": "eyrie.upgrade.copy.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_source_id": self.id},
        }

    def _upgrade_copy_report(self, outcome):
        """Say on the source how this copy's upgrade went, then drop the
        copy unless it is kept (or its scope allows no drop: then say so)."""
        self.ensure_one()
        # The copy reports on its source, whoever started either.
        source = self.sudo().cloned_from_id
        kept = self.upgrade_copy_keep
        if not kept:
            try:
                with self.env.cr.savepoint():
                    self._run_action_jobs("drop", trigger="timer")
            except UserError as error:
                kept = True
                outcome = self.env._(
                    "%(outcome)s The copy stays: %(error)s",
                    outcome=outcome,
                    error=error.args[0],
                )
        where = (
            self.env._("kept as %s", self.name)
            if kept
            else self.env._("the copy %s is being dropped", self.name)
        )
        body = self.env._(
            "Upgrade on a copy: %(outcome)s (%(where)s)", outcome=outcome, where=where
        )
        if source:
            source._message_log(body=body)
        self._message_log(body=body)
