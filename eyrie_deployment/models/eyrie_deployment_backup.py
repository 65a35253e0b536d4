from datetime import UTC, datetime

from odoo import api, fields, models
from odoo.exceptions import UserError

from .eyrie_deployment import REPOSITORY_STATES

# The shipped books' PostgresCluster (PGO derives db-primary, db-pguser-*).
POSTGRES_CLUSTER_NAME = "db"


class EyrieDeployment(models.Model):
    """Backups and restores of a deployment: the public actions, their
    checks, the jobs and their outcomes. A type implements
    ``<type>_action_backup`` and ``<type>_action_restore`` with the building
    blocks ``_start_backup`` and ``_start_restore``."""

    _inherit = "eyrie.deployment"

    backup_ids = fields.One2many("eyrie.backup", "deployment_id", string="Backups")
    backup_count = fields.Integer(compute="_compute_backup_count")

    @api.depends("backup_ids")
    def _compute_backup_count(self):
        counts = dict(
            self.env["eyrie.backup"]._read_group(
                [("deployment_id", "in", self.ids)], ["deployment_id"], ["__count"]
            )
        )
        for deployment in self:
            deployment.backup_count = counts.get(deployment, 0)

    # ------------------------------------------------------------------
    # Public actions (form buttons, XML-RPC)
    # ------------------------------------------------------------------

    def action_backup(self):
        """Take a backup now (database, and an Odoo's filestore)."""
        return self._run_action("backup", trigger="user")

    def action_restore(self, backup_id=None, target_time=None):
        """Restore to backup ``backup_id`` (an eyrie.backup of this
        deployment) or to ``target_time`` (UTC, 'YYYY-MM-DD HH:MM:SS'), then
        redeploy. One of the two, exactly."""
        return self._run_action(
            "restore", trigger="user", backup_id=backup_id, target_time=target_time
        )

    def action_view_backups(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "eyrie_deployment.eyrie_backup_action"
        )
        action["domain"] = [("deployment_id", "=", self.id)]
        action["context"] = {"create": False}
        return action

    def action_open_restore(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Restore %s", self.name),
            "res_model": "eyrie.restore.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_deployment_id": self.id},
        }

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------

    def _check_action_allowed(self, verb):
        result = super()._check_action_allowed(verb)
        if verb in ("backup", "restore") and self.repository_state not in (
            "deploy",
            "pause",
        ):
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot %(verb)s: it is in phase %(phase)s; "
                    "only a deployed or paused deployment has data to %(verb)s.",
                    name=self.name,
                    verb=verb,
                    phase=dict(REPOSITORY_STATES)[self.repository_state],
                )
            )
        return result

    def _restore_point(self, backup_id, target_time):
        """(backup, target time) of a restore request, checked; the backup is
        the one whose filestore snapshot goes with the target, if any."""
        self.ensure_one()
        if bool(backup_id) == bool(target_time):
            raise UserError(
                self.env._(
                    "Restore of %(name)s: give either a backup or a point in time "
                    "(UTC), not both and not neither.",
                    name=self.name,
                )
            )
        done = (
            self.env["eyrie.backup"]
            .sudo()
            .search(
                [("deployment_id", "=", self.id), ("state", "=", "done")],
                order="completed_at desc, id desc",
            )
        )
        if backup_id:
            backup = done.filtered(lambda b: b.id == backup_id)
            if not backup:
                raise UserError(
                    self.env._(
                        "Restore of %(name)s: backup %(backup)s is not a finished "
                        "backup of this deployment. Choose one of its Backups.",
                        name=self.name,
                        backup=backup_id,
                    )
                )
            return backup, backup.completed_at
        try:
            moment = fields.Datetime.to_datetime(target_time)
        except ValueError:
            moment = None
        if not moment:
            raise UserError(
                self.env._(
                    "Restore of %(name)s: point in time %(time)r is not a date and "
                    "time: use 'YYYY-MM-DD HH:MM:SS' (UTC).",
                    name=self.name,
                    time=target_time,
                )
            )
        earlier = done.filtered(lambda b: b.completed_at <= moment)
        if not earlier:
            raise UserError(
                self.env._(
                    "Restore of %(name)s: no backup of this deployment finished "
                    "before %(time)s UTC, so there is nothing to restore that "
                    "moment from. Choose a later time, or back up first.",
                    name=self.name,
                    time=fields.Datetime.to_string(moment),
                )
            )
        if moment > fields.Datetime.now():
            raise UserError(
                self.env._(
                    "Restore of %(name)s: %(time)s UTC is in the future.",
                    name=self.name,
                    time=fields.Datetime.to_string(moment),
                )
            )
        return earlier[0], moment

    # ------------------------------------------------------------------
    # Building blocks for the types
    # ------------------------------------------------------------------

    def _with_backup_values(self, values):
        """``values`` plus what the books need of the scope's backup target:
        ``pgbackrest`` (the PostgresCluster's spec.backups.pgbackrest),
        ``backup_repo`` and ``backup_location``. Computed, never typed."""
        self.ensure_one()
        scope = self.scope_id
        path = self._backup_repo_path()
        values = dict(values)
        values["pgbackrest"] = scope._pgbackrest_spec(values, path)
        values["backup_repo"] = scope._backup_repo_name()
        values["backup_location"] = self._backup_location()
        # Where files beside the database go (an Odoo's filestore archive);
        # the keys are only in the books' secrets.
        values["backup_s3"] = scope._backup_s3_location(path)
        return values

    def _backup_repo_path(self):
        """The deployment's own prefix in a bucket."""
        return f"/eyrie/{self.namespace}-{self.id}"

    def _backup_location(self):
        """Where the scope's target keeps this deployment's database backups."""
        bucket = self.scope_id._backup_bucket()
        if bucket:
            return f"s3://{bucket.backup_s3_bucket}{self._backup_repo_path()}"
        return f"volume {POSTGRES_CLUSTER_NAME}-repo1 in namespace {self.namespace}"

    def _start_backup(self, kind, values, book=None, state="backing_up"):
        """Create the backup record and its job. Returns the job."""
        self.ensure_one()
        backup = (
            self.env["eyrie.backup"]
            .sudo()
            .create(
                {
                    "deployment_id": self.id,
                    "deployment_name": self.name,
                    "deployment_type": self.deployment_type,
                    "namespace": self.namespace,
                    "cluster_id": self.cluster_id.id,
                    "company_id": self.company_id.id,
                    "user_id": self.env.uid,
                    "kind": kind,
                    "repo": values["backup_repo"],
                    "location": values["backup_location"],
                }
            )
        )
        backup.label = f"eyrie-{backup.id}"
        values = values | {
            "backup_label": backup.label,
            "backup_id": backup.id,
            "paused": self.repository_state == "pause",
        }
        values["filestore_archive_url"] = backup._planned_archive_url(values)
        job = self._create_job("backup", book or self._get_book("backup"), values)
        backup.job_id = job
        if state:
            self._set_lifecycle(state=state)
        return job

    def _start_restore(self, backup, target, values, book=None):
        """Create the restore job and the deploy job after it. ``target`` is
        the UTC moment the database returns to; ``backup`` the backup whose
        filestore snapshot (if any) is restored with it."""
        self.ensure_one()
        stamp = int(datetime.now(UTC).timestamp())
        values = values | {
            "restore_label": f"eyrie-restore-{self.id}-{stamp}",
            "restore_target": fields.Datetime.to_string(target) + "+00",
            "restore_snapshot": backup.filestore_snapshot or "",
            # The archive only where there is no snapshot (a volume from a
            # snapshot is the faster of the two), read with the scope's keys.
            "restore_archive": ""
            if backup.filestore_snapshot or not values.get("backup_s3")
            else backup.filestore_archive or "",
            "restore_backup_id": backup.id,
        }
        job = self._create_job("restore", book or self._get_book("restore"), values)
        deploy = self._create_job(
            "deploy", self._get_book("deploy"), values, previous_job=job
        )
        self._set_lifecycle(state="restoring")
        return job | deploy

    def _start_drop_backup(self, values):
        """The final backup a drop takes first where the scope asks for one;
        None where it does not."""
        self.ensure_one()
        if not self.scope_id.backup_before_drop:
            return None
        return self._start_backup_before("before_drop", values, "'Backup Before Drop'")

    def _start_update_backup(self, values):
        """The backup a deploy of a deployed deployment (an update) takes
        first where the scope asks for one; None where it does not."""
        self.ensure_one()
        if not self.scope_id.backup_before_update or self.repository_state != "deploy":
            return None
        return self._start_backup_before(
            "before_update", values, "'Backup Before Update'"
        )

    def _start_backup_before(self, kind, values, option):
        """The backup job of ``kind`` that another job of this deployment is
        chained after; None where there is no data to back up yet."""
        if self.repository_state not in ("deploy", "pause"):
            return None
        values = self._with_backup_values(
            self._effective_values() if values is None else values
        )
        try:
            book = self._get_book("backup")
        except UserError as error:
            raise UserError(
                self.env._(
                    "Scope %(scope)s takes a backup first (%(option)s), and "
                    "%(error)s Or a manager clears %(option)s on the scope.",
                    scope=self.scope_id.name,
                    option=option,
                    error=error.args[0],
                )
            ) from error
        return self._start_backup(kind, values, book=book, state=None)

    # ------------------------------------------------------------------
    # Outcomes
    # ------------------------------------------------------------------

    def _on_backup_done(self, job):
        backup = self._backup_of(job)
        values = job._job_values()
        backup.write(
            {
                "state": "done",
                "completed_at": job.ended_at,
                # The books' convention: the filestore's VolumeSnapshot is
                # named after the backup, where the values ask for one.
                "filestore_snapshot": f"filestore-{backup.label}"
                if values.get("filestore_snapshot")
                else False,
                "filestore_archive": backup._filestore_archive_url(),
            }
        )
        # A drop or an update chained after its backup; a clone's jobs chained
        # after a backup of its source are another deployment's.
        following = self.env["eyrie.job"].search(
            [
                ("previous_job_id", "=", job.id),
                ("deployment_id", "=", self.id),
                ("state", "=", "pending"),
            ],
            limit=1,
        )
        next_state = {"drop": "dropping", "deploy": "deploying"}
        self._set_lifecycle(
            state=next_state.get(following.action, self.repository_state),
            error_message=False,
        )
        self._message_log(
            body=self.env._("Backup %(backup)s done.", backup=backup.display_name)
        )

    def _on_backup_failed(self, job):
        backup = self._backup_of(job)
        backup.write({"state": "failed", "error_message": job.error_message})
        # The data is as it was: the deployment keeps its phase.
        if backup.kind == "before_drop":
            message = self.env._(
                "Not dropped: the final backup before drop failed, so nothing was "
                "deleted. %(error)s",
                error=job.error_message,
            )
        elif backup.kind == "before_update":
            message = self.env._(
                "Not updated: the backup before update failed, so nothing was "
                "changed. %(error)s",
                error=job.error_message,
            )
        else:
            message = self.env._("The backup failed: %s", job.error_message)
        self._set_lifecycle(state=self.repository_state, error_message=message)
        self.message_post(body=message)

    def _on_restore_done(self, job):
        # The deploy job chained after it brings the instance back.
        values = job._job_values()
        backup = self.env["eyrie.backup"].sudo().browse(values["restore_backup_id"])
        self._set_lifecycle(state="deploying")
        self.message_post(
            body=self.env._(
                "Restored to %(time)s UTC (backup %(backup)s%(filestore)s); "
                "redeploying.",
                time=values["restore_target"].removesuffix("+00"),
                backup=backup.exists().display_name or values["restore_backup_id"],
                filestore=self._restored_filestore(values),
            )
        )

    def _restored_filestore(self, values):
        if values.get("restore_snapshot"):
            return self.env._(", filestore from its snapshot")
        if values.get("restore_archive"):
            return self.env._(", filestore from its archive in the bucket")
        return self.env._(", filestore left as it was")

    def _backup_of(self, job):
        return (
            self.env["eyrie.backup"].sudo().search([("job_id", "=", job.id)], limit=1)
        )
