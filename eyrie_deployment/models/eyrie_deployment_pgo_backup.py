import json

from odoo import api, models
from odoo.exceptions import UserError


class EyrieDeploymentPgoBackup(models.Model):
    """Backups, restores and clones of the ``pgo`` type: its
    PostgresCluster by pgBackRest through PGO
    (``eyrie_deployment_pgbackrest.py``)."""

    _inherit = "eyrie.deployment"

    @api.private
    def pgo_action_backup(self):
        return self._start_backup("manual", self._pgo_values())

    @api.private
    def pgo_action_restore(self, backup_id=None, target_time=None):
        backup, target = self._restore_point(backup_id, target_time)
        values = self._pgo_values() | self._pgbackrest_restore_values(backup, target)
        return self._start_restore(backup, target, values)

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
        self._pgbackrest_check_clone_source_readable()
        values = json.loads(self.values) if self.values else {}
        clone = self._create_clone(scope, name, backup, False, values)
        clone._run_action("deploy", trigger="user")
        return self._clone_started(clone, backup, created=created)

    def _pgo_backup_values(self):
        return self._pgo_values()

    def _pgo_on_backup_done(self, backup, job):
        self._pgbackrest_on_backup_done(backup, job)

    def _pgo_restore_hint(self, backup):
        return self._pgbackrest_restore_hint(backup)

    def _pgo_scheduled_backup_runs(self, client):
        return self._pgbackrest_scheduled_runs(client)
