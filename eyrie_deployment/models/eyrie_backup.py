from odoo import api, fields, models

BACKUP_KINDS = [
    ("scheduled", "Scheduled"),
    ("manual", "Manual"),
    ("before_drop", "Before Drop"),
    ("before_restore", "Before Restore"),
    ("before_update", "Before Update"),
    ("before_clone", "Before Clone"),
]
BACKUP_STATES = [
    ("pending", "Pending"),
    ("running", "Running"),
    ("done", "Done"),
    ("failed", "Failed"),
]


class EyrieBackup(models.Model):
    """One backup of a deployment: its database by pgBackRest (PGO's manual
    backup) and, for an Odoo, its filestore by a VolumeSnapshot. The record
    stays when the deployment is dropped: a backup in a bucket outlives it."""

    _name = "eyrie.backup"
    _description = "Eyrie Backup"
    _order = "id desc"
    _rec_names_search = ["deployment_name", "label"]

    deployment_id = fields.Many2one(
        "eyrie.deployment", ondelete="set null", index=True, readonly=True
    )
    deployment_name = fields.Char(
        required=True, readonly=True, help="Kept after the deployment is dropped."
    )
    deployment_type = fields.Char(readonly=True)
    namespace = fields.Char(readonly=True)
    cluster_id = fields.Many2one(
        "eyrie.cluster", required=True, ondelete="restrict", readonly=True
    )
    company_id = fields.Many2one(
        "res.company", readonly=True, index=True, ondelete="cascade"
    )
    user_id = fields.Many2one(
        "res.users", string="Requested By", readonly=True, ondelete="set null"
    )
    kind = fields.Selection(BACKUP_KINDS, required=True, readonly=True)
    state = fields.Selection(
        BACKUP_STATES, default="pending", required=True, readonly=True, index=True
    )
    label = fields.Char(
        readonly=True,
        help="The value of PGO's pgbackrest-backup annotation that started it, "
        "and the name of the filestore's VolumeSnapshot.",
    )
    # Indexed: deleting a job (a dropped deployment's) looks its backups up.
    job_id = fields.Many2one(
        "eyrie.job", readonly=True, ondelete="set null", index="btree_not_null"
    )
    repo = fields.Char(
        string="Repository",
        readonly=True,
        help="The repository of the backup tool that holds it (the volume in "
        "the namespace, or the scope's bucket).",
    )
    backup_set = fields.Char(
        readonly=True,
        help="The backup tool's own name of this backup, read from the cluster: "
        "a restore to this backup restores exactly it. Empty: not known, and a "
        "restore goes back to the moment it completed.",
    )
    location = fields.Char(
        readonly=True, help="Where the database backup is: the volume or s3://..."
    )
    filestore_snapshot = fields.Char(
        readonly=True, help="The VolumeSnapshot of the Odoo filestore, if taken."
    )
    filestore_archive = fields.Char(
        readonly=True,
        help="The archive of the Odoo filestore in the bucket (s3://...), if "
        "taken: a clone in another namespace starts its filestore from it.",
    )
    completed_at = fields.Datetime(readonly=True)
    error_message = fields.Text(readonly=True)
    holds = fields.Char(compute="_compute_holds")
    restore_hint = fields.Text(compute="_compute_holds", string="How to Restore")

    @api.depends("deployment_name", "kind", "completed_at", "create_date")
    def _compute_display_name(self):
        kinds = dict(BACKUP_KINDS)
        for backup in self:
            moment = backup.completed_at or backup.create_date
            when = fields.Datetime.to_string(moment) if moment else ""
            backup.display_name = (
                f"{backup.deployment_name} · {kinds.get(backup.kind, '')} {when}"
            )

    @api.depends(
        "filestore_snapshot",
        "filestore_archive",
        "repo",
        "location",
        "completed_at",
        "state",
    )
    def _compute_holds(self):
        for backup in self:
            parts = [self.env._("database (pgBackRest %s)", backup.repo or "?")]
            if backup.filestore_snapshot:
                parts.append(
                    self.env._(
                        "filestore (VolumeSnapshot %s)", backup.filestore_snapshot
                    )
                )
            if backup.filestore_archive:
                parts.append(
                    self.env._("filestore (archive %s)", backup.filestore_archive)
                )
            backup.holds = ", ".join(parts)
            backup.restore_hint = backup._restore_hint()

    def _planned_archive_url(self, values):
        """Where the job run with ``values`` puts the filestore archive:
        beside the database's repository in the bucket, named after the
        backup. False where it takes none (a volume target, or the values
        say no)."""
        self.ensure_one()
        if not (values.get("backup_s3") and values.get("filestore_archive")):
            return False
        return f"{self.location}/filestore/{self.label}.tar.gz"

    def _filestore_archive_url(self):
        """The filestore archive of this backup: the one it took, or, while
        its job runs, the one it is taking."""
        self.ensure_one()
        if self.filestore_archive:
            return self.filestore_archive
        values = self.job_id._job_values() if self.job_id else {}
        return values.get("filestore_archive_url") or False

    def _restore_hint(self):
        self.ensure_one()
        if self.state != "done":
            return False
        when = fields.Datetime.to_string(self.completed_at)
        if self.deployment_id:
            return self.env._(
                "Restore on the deployment (Restore, this backup): its data "
                "returns to this backup, as it was at %(when)s UTC%(filestore)s, "
                "then the deployment is redeployed.",
                when=when,
                filestore=self.env._(", the filestore from its snapshot")
                if self.filestore_snapshot
                else self.env._(", the filestore from its archive")
                if self.filestore_archive
                else "",
            )
        hook = getattr(
            self.env["eyrie.deployment"], f"_{self.deployment_type}_restore_hint", None
        )
        if hook:
            return hook(self)
        return self.env._(
            "The deployment is gone. The backup is in %(location)s.",
            location=self.location,
        )
