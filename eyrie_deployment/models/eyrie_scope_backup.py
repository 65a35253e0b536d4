import re

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.values import check_hostname

# Five cron fields, as a Kubernetes CronJob (and PGO's schedules) take them.
CRON_RE = re.compile(r"^\s*([0-9*,/\-]+\s+){4}[0-9*,/\-A-Za-z]+\s*$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z0-9\-]{1,40}$")
S3_SECRET_FIELDS = ("backup_s3_key_id", "backup_s3_secret_key")


class EyrieScope(models.Model):
    """Where the deployments of a scope keep their backups, and when."""

    _inherit = "eyrie.scope"

    backup_target = fields.Selection(
        [
            ("volume", "Volume in the cluster"),
            ("s3", "S3-compatible bucket"),
        ],
        default="volume",
        required=True,
        tracking=True,
        help="Where pgBackRest keeps the database backups: a volume in the "
        "deployment's namespace (deleted with it), or a bucket, where backups "
        "outlive the deployment.",
    )
    backup_s3_bucket = fields.Char(string="Bucket", tracking=True)
    backup_s3_endpoint = fields.Char(
        string="Endpoint",
        tracking=True,
        help="Host name of the S3 service, for example s3.eu-west-1.amazonaws.com "
        "or minio.example.com.",
    )
    backup_s3_region = fields.Char(string="Region", default="us-east-1", tracking=True)
    backup_s3_key_id = fields.Char(
        string="Access Key ID", groups="eyrie_deployment.group_eyrie_manager"
    )
    backup_s3_secret_key = fields.Char(
        string="Secret Access Key", groups="eyrie_deployment.group_eyrie_manager"
    )
    backup_s3_client_image = fields.Char(
        string="S3 Client Image",
        default="amazon/aws-cli:2.17.0",
        required=True,
        tracking=True,
        help="The AWS CLI image that archives and fetches an Odoo's filestore "
        "in the bucket. A scope setting, not a deployment value: its "
        "containers get the bucket's keys.",
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
            scope.backup_before_drop = scope.backup_target == "s3"

    @api.constrains(
        "backup_target",
        "backup_s3_key_id",
        "backup_s3_secret_key",
        "backup_s3_bucket",
        "backup_s3_endpoint",
        "backup_s3_region",
        "backup_before_drop",
        "backup_full_schedule",
        "backup_incremental_schedule",
        "backup_s3_client_image",
    )
    def _check_backup_settings(self):
        for scope in self:
            scope._check_backup_schedules()
            if any(c.isspace() for c in scope.backup_s3_client_image or " "):
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: 'S3 Client Image' must be a container "
                        "image reference such as amazon/aws-cli:2.17.0.",
                        scope=scope.name,
                    )
                )
            if scope.backup_target == "s3":
                scope._check_backup_bucket()
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

    def _check_backup_bucket(self):
        problems = []
        if not BUCKET_RE.match(self.backup_s3_bucket or ""):
            problems.append(
                self.env._("'Bucket' must be an S3 bucket name (a-z, 0-9, '.', '-')")
            )
        try:
            check_hostname(self.backup_s3_endpoint or "")
        except ValueError:
            problems.append(
                self.env._("'Endpoint' must be a host name, such as minio.example.com")
            )
        if not REGION_RE.match(self.backup_s3_region or ""):
            problems.append(self.env._("'Region' must be a region name (us-east-1)"))
        for field_name in S3_SECRET_FIELDS:
            key = self.sudo()[field_name] or ""
            if not key or any(c.isspace() or not c.isprintable() for c in key):
                problems.append(
                    self.env._(
                        "'%s' must be set, without spaces or line breaks",
                        self._fields[field_name].string,
                    )
                )
        if problems:
            raise ValidationError(
                self.env._(
                    "Scope %(scope)s backs up to a bucket: %(problems)s.",
                    scope=self.name,
                    problems="; ".join(problems),
                )
            )

    # ------------------------------------------------------------------
    # What the books see
    # ------------------------------------------------------------------

    def _backup_repo_name(self):
        self.ensure_one()
        return "repo2" if self.backup_target == "s3" else "repo1"

    def _pgbackrest_spec(self, values, repo_path):
        """``spec.backups.pgbackrest`` of a PostgresCluster of this scope:
        one repo (the volume, or the bucket under ``repo_path``, a prefix of
        the deployment's own) with the scope's schedules. Plain data: the
        books render it with ``to_json``."""
        self.ensure_one()
        repo = {"name": self._backup_repo_name()}
        schedules = {
            key: self[field_name]
            for key, field_name in (
                ("full", "backup_full_schedule"),
                ("incremental", "backup_incremental_schedule"),
            )
            if self[field_name]
        }
        if schedules:
            repo["schedules"] = schedules
        retention = str(self.backup_retention_full)
        spec = {"repos": [repo]}
        if self.backup_target == "s3":
            repo["s3"] = {
                "bucket": self.backup_s3_bucket,
                "endpoint": self.backup_s3_endpoint,
                "region": self.backup_s3_region,
            }
            spec["configuration"] = [{"secret": {"name": "pgbackrest-s3"}}]
            spec["global"] = {
                "repo2-path": repo_path,
                "repo2-retention-full": retention,
                "repo2-s3-uri-style": "path",
            }
            return spec
        storage = {"requests": {"storage": values["backup_storage"]}}
        claim = {"accessModes": ["ReadWriteOnce"], "resources": storage}
        if values.get("storage_class"):
            claim["storageClassName"] = values["storage_class"]
        repo["volume"] = {"volumeClaimSpec": claim}
        spec["global"] = {"repo1-retention-full": retention}
        return spec

    def _backup_s3_location(self, repo_path):
        """The bucket as the books' S3 clients see it (no keys): False for
        the volume target. ``prefix`` is the deployment's own."""
        self.ensure_one()
        if self.backup_target != "s3":
            return False
        return {
            "bucket": self.backup_s3_bucket,
            "endpoint_url": f"https://{self.backup_s3_endpoint}",
            "region": self.backup_s3_region,
            "prefix": repo_path.strip("/"),
            "client_image": self.backup_s3_client_image,
        }

    def _backup_secrets(self):
        """The bucket's keys, for the books' ``secrets`` only (never values,
        which a job shows)."""
        self.ensure_one()
        scope = self.sudo()
        if scope.backup_target != "s3":
            return {}
        return {
            "s3_key_id": scope.backup_s3_key_id or "",
            "s3_secret_key": scope.backup_s3_secret_key or "",
        }
