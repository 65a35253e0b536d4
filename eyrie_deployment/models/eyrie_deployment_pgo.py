from odoo import api, fields, models

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

    def _pgo_values(self):
        values = self._effective_values()
        # The roles of the Odoo deployments it allows, beside its own users.
        # (A role kept from before 18.0.6.0.0 may be one of its own users.)
        values["users"] = list(
            dict.fromkeys(list(values["users"]) + self._pgo_consumer_roles())
        )
        return self._pgbackrest_values(values) | self._pgbackrest_clone_values()

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

    def _pgo_serves(self):
        """Whether this PostgreSQL deployment runs and stays up: deployed,
        and no pause, drop or restore on its way."""
        self.ensure_one()
        return self.repository_state == "deploy" and self.state not in (
            "pausing",
            "dropping",
            "restoring",
        )

    def _pgo_user_password(self, user):
        """The generated password of PostgreSQL user ``user``, once a deploy
        of this PostgreSQL deployment created it; else None."""
        self.ensure_one()
        # Credentials are manager-only fields; the lifecycle reads them.
        return (self.sudo().credentials or {}).get(f"pguser_{user}")
