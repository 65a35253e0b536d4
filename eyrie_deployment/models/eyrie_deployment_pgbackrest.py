import logging
from datetime import UTC, datetime

from odoo import models
from odoo.exceptions import UserError

from ..tools import pgbackrest
from ..tools.kubernetes_executor import read_logs, read_status

_logger = logging.getLogger(__name__)

PGO = "postgres-operator.crunchydata.com/v1beta1"
# The shipped books' PostgresCluster (PGO derives db-primary, db-pguser-*,
# and labels its backup Jobs with the cluster's name).
POSTGRES_CLUSTER_NAME = "db"
MANUAL_BACKUP_SELECTOR = {
    "postgres-operator.crunchydata.com/cluster": POSTGRES_CLUSTER_NAME,
    "postgres-operator.crunchydata.com/pgbackrest-backup": "manual",
}


def _moment(text):
    """A Kubernetes time (RFC 3339, UTC) as a naive UTC datetime, or False."""
    if not text:
        return False
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return False
    return moment.astimezone(UTC).replace(tzinfo=None)


class EyrieDeployment(models.Model):
    """Backups, restores and clones by pgBackRest through Crunchy PGO: the
    building blocks of the types whose data is a PostgresCluster named
    ``db`` in their namespace (``odoo`` with its own database, ``pgo``).
    A type opts in from its own backup file; the core never calls these."""

    _inherit = "eyrie.deployment"

    # ------------------------------------------------------------------
    # What the books see
    # ------------------------------------------------------------------

    def _pgbackrest_values(self, values):
        """``values`` plus what the books need of the scope's backup target:
        ``pgbackrest`` (the PostgresCluster's spec.backups.pgbackrest),
        ``backup_repo`` and ``backup_location``, ``backup_s3`` (the bucket,
        no keys) and ``backup_options`` (the manual backup's). Computed,
        never typed."""
        self.ensure_one()
        scope = self.scope_id
        path = self._pgbackrest_repo_path()
        values = dict(values)
        values["pgbackrest"] = self._pgbackrest_spec(values, path)
        values["backup_repo"] = self._pgbackrest_repo_name()
        values["backup_location"] = self._pgbackrest_location()
        values["backup_options"] = pgbackrest.backup_options()
        # Where files beside the database go (an Odoo's filestore archive);
        # the keys are only in the books' secrets.
        values["backup_s3"] = scope._backup_s3_location(path)
        return values

    def _pgbackrest_repo_path(self):
        """The deployment's own prefix in a bucket."""
        return f"/eyrie/{self.namespace}-{self.id}"

    def _pgbackrest_repo_name(self):
        return "repo2" if self.scope_id._backup_to_bucket() else "repo1"

    def _pgbackrest_location(self):
        """Where the scope's target keeps this deployment's database backups."""
        bucket = self.scope_id._backup_bucket()
        if bucket:
            return f"s3://{bucket.backup_s3_bucket}{self._pgbackrest_repo_path()}"
        return f"volume {POSTGRES_CLUSTER_NAME}-repo1 in namespace {self.namespace}"

    def _pgbackrest_spec(self, values, repo_path):
        """``spec.backups.pgbackrest`` of this deployment's PostgresCluster:
        one repo (the volume, or the scope's bucket under ``repo_path``) with
        the scope's schedules. Plain data: the books render it with
        ``to_json``."""
        self.ensure_one()
        scope = self.scope_id
        repo = {"name": self._pgbackrest_repo_name()}
        schedules = {
            key: scope[field_name]
            for key, field_name in (
                ("full", "backup_full_schedule"),
                ("incremental", "backup_incremental_schedule"),
            )
            if scope[field_name]
        }
        if schedules:
            repo["schedules"] = schedules
        retention = str(scope.backup_retention_full)
        spec = {"repos": [repo]}
        bucket = scope._backup_bucket()
        if bucket:
            repo["s3"] = {
                "bucket": bucket.backup_s3_bucket,
                "endpoint": bucket.backup_s3_endpoint,
                "region": bucket.backup_s3_region,
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

    def _pgbackrest_restore_values(self, backup, target):
        """What the restore book passes PGO: ``backup`` as it was (its own
        pgBackRest set, where it is known; else the moment it completed), or
        the point in time ``target``."""
        if target is None and backup.backup_set:
            options = pgbackrest.restore_options(backup_set=backup.backup_set)
        else:
            options = pgbackrest.restore_options(
                target_time=target or backup.completed_at
            )
        return {"restore_options": options}

    def _pgbackrest_clone_values(self):
        """Where a clone that was never deployed copies its data from (the
        source's repository, by PGO's dataSource), or ``{"clone": False}``."""
        self.ensure_one()
        # Checked by the deploy (and its job) itself; a pause or a drop of
        # a clone that never started renders it too.
        source = self._clone_source(check=False)
        if not source:
            return {"clone": False}
        # The source's backup may be another user's: the lineage lets it be read.
        backup = self.sudo().clone_backup_id
        if backup and backup.backup_set:
            options = pgbackrest.restore_options(backup_set=backup.backup_set)
        elif self.clone_target_time:
            options = pgbackrest.restore_options(target_time=self.clone_target_time)
        else:
            options = []
        return {
            "clone": {
                "source_namespace": source.namespace,
                "repo": source._pgbackrest_repo_name(),
                "options": options,
            }
        }

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------

    def _pgbackrest_check_clone_source_readable(self):
        # PGO restores the clone through the repository host of this
        # deployment's cluster, which a paused cluster has shut down; a bucket
        # is read directly.
        if self.repository_state == "pause" and not self.scope_id._backup_to_bucket():
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be cloned while paused: its backups "
                    "are on a volume of its database cluster, which is shut down. "
                    "Deploy (resume) it first.",
                    name=self.name,
                )
            )

    # ------------------------------------------------------------------
    # What the cluster says after a backup, and of scheduled backups
    # ------------------------------------------------------------------

    def _pgbackrest_on_backup_done(self, backup, job):
        """Record the pgBackRest set the manual backup made, read from its
        Job's log (the options make pgBackRest print it); without it, a
        restore to this backup falls back to its completion time."""
        # The cluster's credentials are manager-only fields.
        cluster = self.sudo().cluster_id
        if cluster.dry_run:
            return
        try:
            found = read_logs(
                cluster._get_client(),
                self.namespace,
                selector=MANUAL_BACKUP_SELECTOR,
                tail_lines=500,
            )
        except Exception as error:  # noqa: BLE001 - never fails the backup
            _logger.warning(
                "Eyrie: the pgBackRest set of backup %s was not read: %s",
                backup.id,
                type(error).__name__,
            )
            return
        labels = [
            label
            for pod in found["pods"]
            for container in pod["containers"]
            if (label := pgbackrest.backup_label_from_log(container["log"]))
        ]
        if labels:
            # The newest: PGO keeps the Job of the previous manual backup
            # until the next one replaces it.
            backup.backup_set = max(labels)

    def _pgbackrest_scheduled_runs(self, client):
        """The scheduled backup runs PGO reports for this deployment
        (``status.pgbackrest.scheduledBackups``), as plain dicts."""
        status = read_status(
            client, PGO, "PostgresCluster", POSTGRES_CLUSTER_NAME, self.namespace
        )
        runs = []
        for run in ((status or {}).get("pgbackrest") or {}).get(
            "scheduledBackups"
        ) or []:
            started = _moment(run.get("startTime"))
            if not started or not run.get("cronJobName"):
                continue
            if run.get("succeeded"):
                state = "done"
            elif run.get("failed"):
                state = "failed"
            else:
                state = "running"
            runs.append(
                {
                    "label": run["cronJobName"],
                    "started_at": started,
                    "completed_at": _moment(run.get("completionTime")),
                    "state": state,
                    "repo": run.get("repo") or self._pgbackrest_repo_name(),
                    "location": self._pgbackrest_location(),
                    "error_message": self.env._(
                        "PGO's scheduled %(type)s backup Job (CronJob %(cron)s) "
                        "failed: its pod's log, under the deployment's Logs, says "
                        "why.",
                        type=run.get("type") or "",
                        cron=run["cronJobName"],
                    )
                    if state == "failed"
                    else False,
                }
            )
        return runs

    def _pgbackrest_restore_hint(self, backup):
        """How to get the database of ``backup`` back once its deployment
        is gone."""
        if backup.backup_set:
            options = pgbackrest.restore_options(backup_set=backup.backup_set)
        else:
            options = pgbackrest.restore_options(target_time=backup.completed_at)
        return self.env._(
            "The deployment is gone. The database backup is in %(location)s "
            "(stanza db): a new PostgresCluster restores it with "
            "spec.dataSource.pgbackrest, repo %(repo)s, options %(options)s.",
            location=backup.location,
            repo=backup.repo,
            options=" ".join(options),
        )
