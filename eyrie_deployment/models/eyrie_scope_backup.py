import re

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .eyrie_backup_bucket_mixin import BUCKET_FIELDS

# Five cron fields, as a Kubernetes CronJob (and PGO's schedules) take them.
CRON_RE = re.compile(r"^\s*([0-9*,/\-]+\s+){4}[0-9*,/\-A-Za-z]+\s*$")


class EyrieScope(models.Model):
    """Where the deployments of a scope keep their backups, and when: a
    volume in each namespace, a bucket of the scope's own, or its cluster's
    bucket."""

    _name = "eyrie.scope"
    _inherit = ["eyrie.scope", "eyrie.backup.bucket.mixin"]

    backup_target = fields.Selection(
        [
            ("volume", "Volume in the cluster"),
            ("s3", "S3-compatible bucket"),
            ("cluster", "The cluster's bucket"),
        ],
        default="volume",
        required=True,
        tracking=True,
        help="Where pgBackRest keeps the database backups: a volume in the "
        "deployment's namespace (deleted with it), or a bucket, where backups "
        "outlive the deployment: the scope's own, or the one set on its "
        "cluster for all its scopes.",
    )
    backup_full_schedule = fields.Char(
        string="Full Backups",
        default="0 1 * * 0",
        tracking=True,
        help="Cron schedule (UTC) of the full backups, for example '0 1 * * 0' "
        "(Sundays at 01:00). Empty: none. Suspended while a deployment is paused.",
    )
    backup_incremental_schedule = fields.Char(
        string="Incremental Backups",
        default="0 1 * * 1-6",
        tracking=True,
        help="Cron schedule (UTC) of the incremental backups. Empty: none.",
    )
    backup_retention_full = fields.Integer(
        string="Full Backups Kept",
        default=2,
        tracking=True,
        help="pgBackRest keeps this many full backups (and what they need).",
    )
    backup_before_drop = fields.Boolean(
        compute="_compute_backup_before_drop",
        store=True,
        readonly=False,
        tracking=True,
        help="A drop first takes a backup that outlives the deployment; if it "
        "fails, nothing is dropped. Needs a bucket target.",
    )

    backup_before_update = fields.Boolean(
        tracking=True,
        help="A deploy of a deployment that is already deployed (new values, a "
        "new image) first takes a backup; if it fails, nothing is changed. A "
        "resume from pause is not an update.",
    )

    _sql_constraints = [
        (
            "backup_retention_positive",
            "CHECK(backup_retention_full >= 1)",
            "Full Backups Kept must be at least 1.",
        ),
    ]

    @api.depends("backup_target")
    def _compute_backup_before_drop(self):
        for scope in self:
            scope.backup_before_drop = scope._backup_to_bucket()

    @api.constrains(
        "backup_target",
        "cluster_id",
        "backup_before_drop",
        "backup_full_schedule",
        "backup_incremental_schedule",
        *BUCKET_FIELDS,
    )
    def _check_backup_settings(self):
        for scope in self:
            scope._check_backup_schedules()
            if scope.backup_target == "s3":
                scope._check_backup_bucket(self.env._("Scope %s", scope.name))
            elif scope.backup_target == "cluster":
                scope._check_cluster_bucket()
            elif scope.backup_before_drop:
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: 'Backup Before Drop' needs a bucket "
                        "target: a volume in the namespace is deleted with the "
                        "deployment. Set 'Backup Target' to an S3-compatible "
                        "bucket, or clear 'Backup Before Drop'.",
                        scope=scope.name,
                    )
                )

    def _check_cluster_bucket(self):
        # The cluster's credentials are manager-only fields.
        cluster = self.cluster_id.sudo()
        if not cluster.backup_s3_bucket:
            raise ValidationError(
                self.env._(
                    "Scope %(scope)s: 'Backup Target' is the cluster's bucket, but "
                    "cluster %(cluster)s has none. Set its bucket (cluster, tab "
                    "Backups), or choose another target.",
                    scope=self.name,
                    cluster=cluster.name,
                )
            )
        cluster._check_backup_bucket(self.env._("Cluster %s", cluster.name))

    def _check_backup_schedules(self):
        for field_name in ("backup_full_schedule", "backup_incremental_schedule"):
            schedule = self[field_name]
            if schedule and not CRON_RE.match(schedule):
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: %(field)s '%(value)s' is not a cron "
                        "schedule: give five fields (minute hour day month weekday), "
                        "for example '0 1 * * 0', or leave it empty.",
                        scope=self.name,
                        field=self._fields[field_name].string,
                        value=schedule,
                    )
                )

    # ------------------------------------------------------------------
    # What the books see
    # ------------------------------------------------------------------

    def _backup_to_bucket(self):
        self.ensure_one()
        return self.backup_target in ("s3", "cluster")

    def _backup_bucket(self):
        """The record whose bucket settings this scope uses (itself or its
        cluster), or None with a volume target."""
        self.ensure_one()
        if self.backup_target == "cluster":
            return self.cluster_id
        return self if self.backup_target == "s3" else None

    def _backup_s3_location(self, repo_path):
        """The bucket as the books' S3 clients see it (no keys): False for
        the volume target. ``prefix`` is the deployment's own."""
        self.ensure_one()
        bucket = self._backup_bucket()
        return bucket._bucket_location(repo_path) if bucket else False

    def _backup_secrets(self):
        """The bucket's keys, for the books' ``secrets`` only (never values,
        which a job shows)."""
        self.ensure_one()
        bucket = self._backup_bucket()
        return bucket._bucket_keys() if bucket else {}
