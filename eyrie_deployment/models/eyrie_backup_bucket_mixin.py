import re

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError

from odoo import fields, models
from odoo.exceptions import UserError, ValidationError

from ..tools.values import check_hostname

BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
REGION_RE = re.compile(r"^[a-z0-9\-]{1,40}$")
S3_SECRET_FIELDS = ("backup_s3_key_id", "backup_s3_secret_key")
BUCKET_FIELDS = (
    "backup_s3_bucket",
    "backup_s3_endpoint",
    "backup_s3_region",
    *S3_SECRET_FIELDS,
    "backup_s3_client_image",
)


class EyrieBackupBucketMixin(models.AbstractModel):
    """An S3-compatible bucket for backups: where it is, its keys (managers
    only) and the image of the AWS CLI that reads and writes the filestore
    archives. A scope has one of its own, or uses its cluster's."""

    _name = "eyrie.backup.bucket.mixin"
    _description = "Eyrie Backup Bucket"

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
        "in the bucket. A manager's setting, not a deployment value: its "
        "containers get the bucket's keys.",
    )

    def _check_backup_bucket(self, owner):
        """Refuse settings pgBackRest or the AWS CLI could not use, naming
        ``owner`` (the scope or cluster, as the user knows it)."""
        self.ensure_one()
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
            # The keys are manager-only fields.
            key = self.sudo()[field_name] or ""
            if not key or any(c.isspace() or not c.isprintable() for c in key):
                problems.append(
                    self.env._(
                        "'%s' must be set, without spaces or line breaks",
                        self._fields[field_name].string,
                    )
                )
        if any(c.isspace() for c in self.backup_s3_client_image or " "):
            problems.append(
                self.env._(
                    "'S3 Client Image' must be an image reference such as "
                    "amazon/aws-cli:2.17.0"
                )
            )
        if problems:
            raise ValidationError(
                self.env._(
                    "%(owner)s backs up to a bucket: %(problems)s.",
                    owner=owner,
                    problems="; ".join(problems),
                )
            )

    def _bucket_location(self, repo_path):
        """The bucket as the books' S3 clients see it (no keys). ``prefix``
        is the deployment's own."""
        self.ensure_one()
        return {
            "bucket": self.backup_s3_bucket,
            "endpoint_url": self._bucket_endpoint_url(),
            "region": self.backup_s3_region,
            "prefix": repo_path.strip("/"),
            "client_image": self.backup_s3_client_image,
        }

    def _bucket_endpoint_url(self):
        """The S3 service's URL: its host name, over HTTPS."""
        self.ensure_one()
        return f"https://{self.backup_s3_endpoint}"

    def _bucket_presigned_get_url(self, key, expires_in, filename):
        """A URL that gets the object ``key`` of the bucket, signed with its
        keys, valid ``expires_in`` seconds, downloaded as ``filename``.
        Signed here, without a request to the service; the URL holds the
        key id and a signature, never the secret: not for logs."""
        self.ensure_one()
        keys = self._bucket_keys()
        client = boto3.session.Session(
            aws_access_key_id=keys["s3_key_id"],
            aws_secret_access_key=keys["s3_secret_key"],
            region_name=self.backup_s3_region,
        ).client(
            "s3",
            endpoint_url=self._bucket_endpoint_url(),
            # As the books' pgBackRest and AWS CLI address the bucket.
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
        )
        try:
            return client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.backup_s3_bucket,
                    "Key": key,
                    "ResponseContentDisposition": f'attachment; filename="{filename}"',
                },
                ExpiresIn=expires_in,
            )
        except BotoCoreError as error:
            # Its class only: a message may quote the parameters.
            raise UserError(
                self.env._(
                    "No link to %(key)s in bucket %(bucket)s could be signed "
                    "(%(error)s): check the bucket's settings.",
                    key=key,
                    bucket=self.backup_s3_bucket,
                    error=type(error).__name__,
                )
            ) from None

    def _bucket_keys(self):
        """The keys, for the books' ``secrets`` only (never values, which a
        job shows)."""
        self.ensure_one()
        # The keys are manager-only fields.
        holder = self.sudo()
        return {
            "s3_key_id": holder.backup_s3_key_id or "",
            "s3_secret_key": holder.backup_s3_secret_key or "",
        }
