import logging

from odoo import api, fields, models

from ..tools.executor import ClusterConnectionError

_logger = logging.getLogger(__name__)


class EyrieBackup(models.Model):
    """Scheduled backups: the cluster runs them from the scope's schedules,
    and a cron reads what ran, one queue job per cluster, and keeps one
    record per run. A type takes part with the hook
    ``_<type>_scheduled_backup_runs(client)``: the runs of one deployment,
    as dicts (label, started_at, completed_at, state, repo, location,
    error_message), read from the cluster through ``client``."""

    _inherit = "eyrie.backup"

    started_at = fields.Datetime(readonly=True)

    _sql_constraints = [
        (
            "scheduled_run_unique",
            "UNIQUE (deployment_id, kind, label, started_at)",
            "A scheduled backup run is recorded once.",
        ),
    ]

    @api.model
    def _cron_record_scheduled_backups(self):
        """Queue the reading of the scheduled runs, one queue job per
        cluster (in its channel), for the deployments whose scope has a
        schedule."""
        deployments = self._scheduled_deployments()
        for cluster in deployments.mapped("cluster_id"):
            if cluster.dry_run:
                continue
            self.with_delay(
                channel=cluster._job_channel_name(),
                description=self.env._(
                    "Eyrie: record the scheduled backups on cluster %s", cluster.name
                ),
                identity_key=f"eyrie.scheduled_backups:{cluster.id}",
            )._record_scheduled_backups(cluster.id)

    def _scheduled_deployments(self, cluster_id=None):
        """The deployments with scheduled backups to read: live, in a scope
        with a schedule, of a type that reports its runs."""
        domain = [
            ("repository_state", "in", ("deploy", "pause")),
            "|",
            ("scope_id.backup_full_schedule", "!=", False),
            ("scope_id.backup_incremental_schedule", "!=", False),
        ]
        if cluster_id:
            domain.append(("cluster_id", "=", cluster_id))
        # A cron's reading of every company's deployments.
        deployments = self.env["eyrie.deployment"].sudo().search(domain)
        return deployments.filtered(
            lambda d: d._type_hook("scheduled_backup_runs") is not None
        )

    def _record_scheduled_backups(self, cluster_id):
        """Read each deployment's scheduled runs and record them. One
        deployment that cannot be read, or recorded, is logged and skipped
        (a savepoint each); a cluster that cannot be reached ends the run,
        which the next cron run repeats."""
        # A cron's reading of every cluster.
        cluster = self.env["eyrie.cluster"].sudo().browse(cluster_id).exists()
        if not cluster:
            return 0
        client = cluster._get_client()
        recorded = 0
        for deployment in self._scheduled_deployments(cluster.id):
            try:
                with self.env.cr.savepoint():
                    runs = deployment._type_hook("scheduled_backup_runs")(client)
                    recorded += self._record_runs(deployment, runs)
            except ClusterConnectionError as error:
                _logger.warning(
                    "Eyrie: scheduled backups of cluster %s not read: %s",
                    cluster.name,
                    error,
                )
                break
            except Exception:
                # One bad record never stops the batch; the next run retries.
                _logger.exception(
                    "Eyrie: scheduled backups of deployment %s (%s) not recorded",
                    deployment.name,
                    deployment.id,
                )
        return recorded

    def _record_runs(self, deployment, runs):
        """Create or update the record of each run. Returns how many
        records changed."""
        changed = 0
        for run in runs:
            vals = {
                "state": run["state"],
                "completed_at": run["completed_at"],
                "error_message": run.get("error_message") or False,
            }
            existing = self.search(
                [
                    ("deployment_id", "=", deployment.id),
                    ("kind", "=", "scheduled"),
                    ("label", "=", run["label"]),
                    ("started_at", "=", run["started_at"]),
                ],
                limit=1,
            )
            if existing:
                if existing.state != vals["state"]:
                    existing.write(vals)
                    changed += 1
                continue
            self.create(
                vals
                | {
                    "deployment_id": deployment.id,
                    "deployment_name": deployment.name,
                    "deployment_type": deployment.deployment_type,
                    "namespace": deployment.namespace,
                    "cluster_id": deployment.cluster_id.id,
                    "company_id": deployment.company_id.id,
                    "kind": "scheduled",
                    "label": run["label"],
                    "started_at": run["started_at"],
                    "repo": run["repo"],
                    "location": run["location"],
                }
            )
            changed += 1
        return changed
