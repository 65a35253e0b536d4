import json

from odoo import api, fields, models
from odoo.exceptions import UserError

from .eyrie_scope import BOOK_ACTIONS

PGO_DEFAULT_VALUES = {
    "postgres_version": 16,
    "replicas": 1,
    "storage": "10Gi",
    "backup_storage": "10Gi",
    "storage_class": "",
    "users": ["odoo"],
}


class EyrieDeploymentPgo(models.Model):
    """Deployment type ``pgo``: a Crunchy PGO PostgresCluster whose
    databases other deployments may use."""

    _inherit = "eyrie.deployment"

    deployment_type = fields.Selection(
        selection_add=[("pgo", "PostgreSQL (Crunchy PGO)")],
        ondelete={"pgo": lambda records: records._unlink_type_rows()},
    )

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    @api.private
    def pgo_action_deploy(self):
        values = self._pgo_values()
        self._ensure_credentials(tuple(f"pguser_{user}" for user in values["users"]))
        return self._start_deploy(values=values)

    @api.private
    def pgo_action_pause(self):
        return self._start_pause(values=self._pgo_values())

    @api.private
    def pgo_action_drop(self):
        return self._start_drop(values=self._pgo_values())

    @api.private
    def pgo_action_backup(self):
        return self._start_backup("manual", self._pgo_values())

    @api.private
    def pgo_action_restore(self, backup_id=None, target_time=None):
        backup, target = self._restore_point(backup_id, target_time)
        return self._start_restore(backup, target, self._pgo_values())

    @api.private
    def pgo_action_clone(
        self, scope_id=None, name=None, backup_id=None, neutralize=True, created=None
    ):
        scope = self._clone_scope(scope_id)
        if scope.neutralize_clones:
            # Its databases may be Odoo's, and Eyrie cannot tell which: a copy
            # it cannot neutralize goes only where the scope allows that.
            raise UserError(
                self.env._(
                    "Clone of %(name)s: scope %(scope)s requires clones to be "
                    "neutralized, and a PostgreSQL deployment's databases cannot "
                    "be (Eyrie does not know which are Odoo's). Choose a scope "
                    "without 'Neutralize Clones', or clone the Odoo deployments.",
                    name=self.name,
                    scope=scope.name,
                )
            )
        backup = self._clone_backup(backup_id)
        self._check_clone_source_readable()
        values = json.loads(self.values) if self.values else {}
        clone = self._create_clone(scope, name, backup, False, values)
        clone._run_action("deploy", trigger="user")
        return self._clone_started(clone, backup, created=created)

    def _pgo_values(self):
        return self._with_backup_values(self._effective_values()) | self._clone_values()

    # ------------------------------------------------------------------
    # Books, values and secrets
    # ------------------------------------------------------------------

    def _pgo_default_books(self):
        return {
            action: f"eyrie_deployment.eyrie_book_pgo_{action}"
            for action in BOOK_ACTIONS
        }

    def _pgo_default_values(self):
        return dict(PGO_DEFAULT_VALUES)

    def _pgo_value_keys(self):
        return set(PGO_DEFAULT_VALUES)

    def _pgo_user_password(self, user):
        """The generated password of PostgreSQL user ``user``, once a deploy
        of this PostgreSQL deployment created it; else None."""
        self.ensure_one()
        return (self.sudo().credentials or {}).get(f"pguser_{user}")
