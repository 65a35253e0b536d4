import logging
from datetime import UTC, datetime

from odoo import api, fields, models

from ..tools.executor import ClusterConnectionError, StepError, TransientStepError
from ..tools.kubernetes_executor import get_client, read_status
from .eyrie_deployment_backup import POSTGRES_CLUSTER_NAME

_logger = logging.getLogger(__name__)
PGO = "postgres-operator.crunchydata.com/v1beta1"


def _moment(text):
    """A Kubernetes time (RFC 3339, UTC) as a naive UTC datetime, or False."""
    if not text:
        return False
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    return moment.astimezone(UTC).replace(tzinfo=None)


class EyrieBackup(models.Model):
    """Scheduled backups: PGO runs them from the scope's schedules (CronJobs
    of its own) and reports each run's Job in
    ``status.pgbackrest.scheduledBackups``; a cron reads that status, one
    queue job per cluster, and keeps one record per run."""

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
        domain = [
            ("repository_state", "in", ("deploy", "pause")),
            "|",
            ("scope_id.backup_full_schedule", "!=", False),
            ("scope_id.backup_incremental_schedule", "!=", False),
        ]
        if cluster_id:
            domain.append(("cluster_id", "=", cluster_id))
        return self.env["eyrie.deployment"].sudo().search(domain)

    def _record_scheduled_backups(self, cluster_id):
        """Read each deployment's PostgresCluster status and record its
        scheduled runs. One deployment that cannot be read is logged and
        skipped (a savepoint each); a cluster that cannot be reached ends
        the run, which the next cron run repeats."""
        cluster = self.env["eyrie.cluster"].sudo().browse(cluster_id).exists()
        if not cluster:
            return 0
        client = get_client(*cluster._client_arguments())
        recorded = 0
        for deployment in self._scheduled_deployments(cluster.id):
            try:
                with self.env.cr.savepoint():
                    status = read_status(
                        client,
                        PGO,
                        "PostgresCluster",
                        POSTGRES_CLUSTER_NAME,
                        deployment.namespace,
                    )
                    recorded += self._record_runs(deployment, status)
            except ClusterConnectionError as error:
                _logger.warning(
                    "Eyrie: scheduled backups of cluster %s not read: %s",
                    cluster.name,
                    error,
                )
                break
            except (StepError, TransientStepError) as error:
                _logger.warning(
                    "Eyrie: scheduled backups of deployment %s (%s) not read: %s",
                    deployment.name,
                    deployment.id,
                    error,
                )
        return recorded

    def _record_runs(self, deployment, status):
        """Create or update the record of each run PGO reports. Returns how
        many records changed."""
        runs = ((status or {}).get("pgbackrest") or {}).get("scheduledBackups") or []
        changed = 0
        for run in runs:
            started = _moment(run.get("startTime"))
            if not started or not run.get("cronJobName"):
                continue
            vals = self._run_values(run)
            existing = self.search(
                [
                    ("deployment_id", "=", deployment.id),
                    ("kind", "=", "scheduled"),
                    ("label", "=", run["cronJobName"]),
                    ("started_at", "=", started),
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
                    "label": run["cronJobName"],
                    "started_at": started,
                    "repo": run.get("repo") or deployment.scope_id._backup_repo_name(),
                    "location": deployment._backup_location(),
                }
            )
            changed += 1
        return changed

    def _run_values(self, run):
        if run.get("succeeded"):
            state = "done"
        elif run.get("failed"):
            state = "failed"
        else:
            state = "running"
        vals = {"state": state, "completed_at": _moment(run.get("completionTime"))}
        if state == "failed":
            vals["error_message"] = self.env._(
                "PGO's scheduled %(type)s backup Job (CronJob %(cron)s) failed: "
                "its pod's log, under the deployment's Logs, says why.",
                type=run.get("type") or "",
                cron=run["cronJobName"],
            )
        return vals
