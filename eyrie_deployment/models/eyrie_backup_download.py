import logging
import posixpath
import re

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

_logger = logging.getLogger(__name__)

# How long a download link works, in seconds.
DOWNLOAD_LINK_SECONDS = 600
UNSAFE_FILENAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


class EyrieBackup(models.Model):
    """Download of what a backup in a bucket holds as one file.

    Its database is a pgBackRest backup set: many files of the deployment's
    repository in the bucket, with the WAL they need, in pgBackRest's own
    format. It is restored with Restore or Duplicate with Data, never
    downloaded. An Odoo's filestore is one object, a tar.gz archive: its
    owner (or a manager) gets a link to it, signed with the bucket's keys for
    ten minutes, and the browser downloads it from the bucket. No data passes
    through Odoo."""

    _inherit = "eyrie.backup"

    can_download = fields.Boolean(
        compute="_compute_can_download",
        help="Whether the current user may download the backup's filestore "
        "archive: it has one, in a bucket, and the user owns the deployment "
        "(its creator or Responsible) or is an Eyrie manager.",
    )

    @api.depends("state", "filestore_archive", "deployment_id")
    @api.depends_context("uid")
    def _compute_can_download(self):
        for backup in self:
            backup.can_download = bool(
                backup.state == "done"
                and backup.filestore_archive
                and backup._may_download()
            )

    def action_download(self):
        """An ``ir.actions.act_url`` to the backup's filestore archive in its
        bucket: a pre-signed link, valid ten minutes."""
        self.ensure_one()
        if not self._may_download():
            if self.deployment_id:
                raise AccessError(
                    self.env._(
                        "Only the owner of deployment %(deployment)s (its creator "
                        "or Responsible) or an Eyrie manager may download its "
                        "backups.",
                        deployment=self.deployment_id.display_name,
                    )
                )
            raise AccessError(
                self.env._(
                    "Deployment %(deployment)s is gone: only an Eyrie manager may "
                    "download its backups.",
                    deployment=self.deployment_name,
                )
            )
        if self.state != "done" or not self.filestore_archive:
            raise UserError(
                self.env._(
                    "Backup %(backup)s has no filestore archive in a bucket to "
                    "download. A database backup is a pgBackRest backup set of "
                    "many files: restore it with Restore, or copy it with "
                    "Duplicate with Data.",
                    backup=self.display_name,
                )
            )
        bucket, key = self._archive_bucket()
        url = bucket._bucket_presigned_get_url(
            key, DOWNLOAD_LINK_SECONDS, self._archive_filename(key)
        )
        # Not the URL: it is a credential for ten minutes.
        _logger.info(
            "User %s got a download link to the filestore archive of backup %s",
            self.env.uid,
            self.id,
        )
        return {"type": "ir.actions.act_url", "url": url, "target": "download"}

    def _may_download(self):
        """The deployment's owner or a manager; once it is dropped, a
        manager."""
        self.ensure_one()
        if self.deployment_id:
            return self.deployment_id.can_act
        return self.env.user.has_group("eyrie_deployment.group_eyrie_manager")

    def _archive_bucket(self):
        """(the scope or cluster whose bucket holds the filestore archive,
        the archive's key in it): the deployment's scope's bucket, else the
        cluster's or one of its scopes' of that name (the deployment is
        dropped, or its scope moved to another bucket since)."""
        self.ensure_one()
        name, _slash, key = self.filestore_archive.removeprefix("s3://").partition("/")
        scope = self.deployment_id.scope_id
        candidates = [
            scope._backup_bucket() if scope else None,
            self.cluster_id,
            *self.env["eyrie.scope"].search(
                [
                    ("cluster_id", "=", self.cluster_id.id),
                    ("backup_target", "=", "s3"),
                    ("backup_s3_bucket", "=", name),
                ]
            ),
        ]
        for bucket in candidates:
            if bucket and bucket.backup_s3_bucket == name:
                return bucket, key
        raise UserError(
            self.env._(
                "The bucket %(bucket)s of backup %(backup)s is no longer set on "
                "its cluster or any of its scopes: a manager sets it again to "
                "reach the archive.",
                bucket=name,
                backup=self.display_name,
            )
        )

    def _archive_filename(self, key):
        """The downloaded file's name: the namespace and the archive's."""
        name = f"{self.namespace or 'backup'}-filestore-{posixpath.basename(key)}"
        return UNSAFE_FILENAME_RE.sub("-", name)
