from odoo import api, models
from odoo.exceptions import ValidationError

from .eyrie_backup_bucket_mixin import BUCKET_FIELDS


class EyrieCluster(models.Model):
    """A bucket that every scope of the cluster may back up to (its
    'Backup Target': the cluster's bucket), set once by a manager."""

    _name = "eyrie.cluster"
    _inherit = ["eyrie.cluster", "eyrie.backup.bucket.mixin"]

    @api.constrains(*BUCKET_FIELDS)
    def _check_cluster_bucket(self):
        for cluster in self:
            if cluster.backup_s3_bucket:
                cluster._check_backup_bucket(self.env._("Cluster %s", cluster.name))
                continue
            users = self.env["eyrie.scope"].search_count(
                [("cluster_id", "=", cluster.id), ("backup_target", "=", "cluster")]
            )
            if users:
                raise ValidationError(
                    self.env._(
                        "Cluster %(cluster)s: %(count)s scope(s) back up to its "
                        "bucket. Give them another 'Backup Target' before "
                        "clearing 'Bucket'.",
                        cluster=cluster.name,
                        count=users,
                    )
                )
