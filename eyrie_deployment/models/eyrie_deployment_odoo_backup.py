import json

from odoo import api, models
from odoo.exceptions import UserError


class EyrieDeploymentOdooBackup(models.Model):
    """Backups, restores and clones of the ``odoo`` type: its own database
    by pgBackRest through PGO (``eyrie_deployment_pgbackrest.py``), its
    filestore by a VolumeSnapshot and, with a bucket, an archive there. An
    Odoo on a shared PostgreSQL deployment has no backups of its own: that
    deployment's hold its database."""

    _inherit = "eyrie.deployment"

    @api.depends("deployment_type", "database_mode")
    def _compute_backup_supported(self):
        # An Odoo on a shared database has no backups, nor clones, of its
        # own: the buttons are not offered.
        result = super()._compute_backup_supported()
        self._odoo_hide_on_shared_database("backup_supported")
        return result

    @api.depends("deployment_type", "database_mode")
    def _compute_clone_supported(self):
        result = super()._compute_clone_supported()
        self._odoo_hide_on_shared_database("clone_supported")
        return result

    def _odoo_hide_on_shared_database(self, field_name):
        for deployment in self:
            if deployment.deployment_type == "odoo" and (
                deployment.database_mode == "shared"
            ):
                deployment[field_name] = False

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------

    @api.private
    def odoo_action_backup(self):
        self._odoo_check_own_database("back up")
        return self._start_backup("manual", self._odoo_values(need_hostname=False))

    @api.private
    def odoo_action_restore(self, backup_id=None, target_time=None):
        self._odoo_check_own_database("restore")
        backup, target = self._restore_point(backup_id, target_time)
        return self._start_restore(
            backup, target, self._odoo_restore_values(backup, target)
        )

    @api.private
    def odoo_action_clone(
        self, scope_id=None, name=None, backup_id=None, neutralize=True, created=None
    ):
        self._odoo_check_own_database("be cloned")
        scope = self._clone_scope(scope_id)
        backup = self._clone_backup(backup_id)
        self._pgbackrest_check_clone_source_readable()
        source_values = self._odoo_values(need_hostname=False)
        values = json.loads(self.values) if self.values else {}
        # The clone is served under a name of its own, and its database keeps
        # the name it has in the source's backup.
        for key in ("hostname", "dns_target"):
            values.pop(key, None)
        values["db_name"] = source_values["db_name"]
        backup_job = None
        if (
            not backup
            and source_values["backup_s3"]
            and source_values.get("filestore_archive")
        ):
            # A filestore reaches another namespace only by an archive in
            # the bucket: the clone starts once this backup has taken one.
            backup_job = self._start_backup("before_clone", source_values)
            backup = self._backup_of(backup_job)
        clone = self._create_clone(scope, name, backup, neutralize, values)
        clone._run_action("deploy", trigger="user", after=backup_job)
        filestore = (
            self.env._("the filestore from the archive in the bucket")
            if clone._odoo_clone_archive()
            else self.env._(
                "the filestore starts empty: only a backup to a bucket archives it"
            )
        )
        return self._clone_started(clone, backup, backup_job, filestore, created)

    def _odoo_check_own_database(self, verb):
        # The PostgreSQL deployment may be another user's: read, never changed.
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return
        raise UserError(
            self.env._(
                "Odoo deployment %(name)s cannot %(verb)s by itself: its database "
                "is in PostgreSQL deployment %(database)s, whose backups hold it "
                "with every other database there. Its manager backs up and "
                "restores %(database)s.",
                name=self.name,
                verb=verb,
                database=database.name,
            )
        )

    # ------------------------------------------------------------------
    # Hooks of the backup capability (eyrie_deployment_backup.py)
    # ------------------------------------------------------------------

    def _odoo_backup_values(self):
        if self.database_mode == "shared":
            # The database of a shared PostgreSQL deployment is in that
            # deployment's own backups; this Odoo has no repository.
            self._message_log(
                body=self.env._(
                    "No backup first: the database is in PostgreSQL deployment "
                    "%(database)s, whose own backups hold it.",
                    database=self.sudo().database_deployment_id.name,
                )
            )
            return None
        return self._odoo_values(need_hostname=False)

    def _odoo_on_backup_done(self, backup, job):
        values = job._job_values()
        backup.write(
            {
                # The books' convention: the filestore's VolumeSnapshot is
                # named after the backup, where the values ask for one.
                "filestore_snapshot": f"filestore-{backup.label}"
                if values.get("filestore_snapshot")
                else False,
                "filestore_archive": backup._filestore_archive_url(),
            }
        )
        self._pgbackrest_on_backup_done(backup, job)

    def _odoo_restore_values(self, backup, target):
        """What the restore book needs: the database back to ``backup`` (or
        to ``target``, from it), the filestore from its snapshot or its
        archive."""
        values = self._odoo_values()
        values |= self._pgbackrest_restore_values(backup, target)
        return values | self._odoo_restore_filestore_values(backup, values)

    def _odoo_restore_filestore_values(self, backup, values):
        return {
            "restore_snapshot": backup.filestore_snapshot or "",
            # The archive only where there is no snapshot (a volume from a
            # snapshot is the faster of the two), read with the scope's keys.
            "restore_archive": ""
            if backup.filestore_snapshot or not values.get("backup_s3")
            else backup.filestore_archive or "",
        }

    def _odoo_restore_summary(self, values):
        if values.get("restore_snapshot"):
            return self.env._("filestore from its snapshot")
        if values.get("restore_archive"):
            return self.env._("filestore from its archive in the bucket")
        return self.env._("filestore left as it was")

    def _odoo_restore_hint(self, backup):
        hint = self._pgbackrest_restore_hint(backup)
        if backup.filestore_archive:
            hint += " " + self.env._(
                "The filestore is the archive %(archive)s: unpack it in the new "
                "Odoo's data directory (tar -xzf, in /var/lib/odoo).",
                archive=backup.filestore_archive,
            )
        return hint

    def _odoo_scheduled_backup_runs(self, client):
        if self.database_mode == "shared":
            return []
        return self._pgbackrest_scheduled_runs(client)

    # ------------------------------------------------------------------
    # A clone's first deploy
    # ------------------------------------------------------------------

    def _odoo_clone_values(self):
        values = self._pgbackrest_clone_values()
        if values["clone"]:
            values["clone"] |= {
                "neutralize": self.clone_neutralize,
                "filestore_archive": self._odoo_clone_archive(),
            }
        return values

    def _odoo_clone_archive(self):
        """Where the clone fetches its source's filestore archive from (the
        URL and the source's bucket, no keys), or False: it has none."""
        # The source's backup may be another user's: the lineage says this
        # clone reads it.
        backup = self.sudo().clone_backup_id
        # A failed backup archived nothing: that clone starts from the live
        # source with an empty filestore.
        usable = backup and backup.state != "failed"
        url = backup._filestore_archive_url() if usable else False
        if not url:
            return False
        # The source's scope has the bucket's settings; a source dropped
        # since has none left to read them from.
        scope = backup.deployment_id.scope_id
        bucket = scope._backup_s3_location("") if scope else False
        if not bucket:
            return False
        return {
            "url": url,
            "endpoint_url": bucket["endpoint_url"],
            "region": bucket["region"],
            "client_image": bucket["client_image"],
        }

    def _odoo_clone_secrets(self):
        """The keys of the bucket the clone's filestore archive is in: the
        source scope's, for the clone's preparation Job only."""
        clone = self._odoo_clone_values()["clone"]
        if not clone or not clone["filestore_archive"]:
            return {}
        # The keys are manager-only; the clone's Job needs them, never a user.
        source_scope = self.sudo().clone_backup_id.deployment_id.scope_id
        keys = source_scope._backup_secrets()
        return {
            "clone_s3_key_id": keys.get("s3_key_id", ""),
            "clone_s3_secret_key": keys.get("s3_secret_key", ""),
        }
