from datetime import UTC, datetime

from odoo import api, fields, models
from odoo.exceptions import UserError

from .eyrie_deployment import REPOSITORY_STATES


class EyrieDeployment(models.Model):
    """Backups and restores of a deployment: the public actions, their
    checks, the jobs and their outcomes. Names no type and no backup tool.

    A type has backups when it implements, in a file of its own
    (``models/eyrie_deployment_<type>_backup.py``):

    - ``<type>_action_backup()`` and ``<type>_action_restore(backup_id=None,
      target_time=None)`` (``@api.private``), which create the jobs with
      ``_start_backup`` and ``_start_restore``;
    - ``_<type>_backup_values()``: the values a backup job of the
      deployment runs with (``backup_repo`` and ``backup_location`` among
      them), for the backups the scope takes before a drop or an update.

    Optional hooks: ``_<type>_on_backup_done(backup, job)`` (what the type
    records of a finished backup), ``_<type>_restore_summary(values)`` (what
    a restore brought back, for the chatter), ``_<type>_restore_hint(backup)``
    (how to restore a backup whose deployment is gone) and
    ``_<type>_scheduled_backup_runs(client)`` (see ``eyrie.backup``). A type
    without them is never asked for a backup: no backup before drop or
    update, no bucket keys in its books' secrets."""

    _inherit = "eyrie.deployment"

    backup_ids = fields.One2many("eyrie.backup", "deployment_id", string="Backups")
    backup_count = fields.Integer(compute="_compute_backup_count")
    backup_supported = fields.Boolean(
        compute="_compute_backup_supported",
        help="Its type implements <type>_action_backup.",
    )

    @api.depends("deployment_type")
    def _compute_backup_supported(self):
        for deployment in self:
            deployment.backup_supported = deployment._type_has("action_backup")

    def _type_has(self, verb):
        """Whether this deployment's type implements ``<type>_<verb>``."""
        self.ensure_one()
        return bool(
            self.deployment_type and hasattr(self, f"{self.deployment_type}_{verb}")
        )

    def _type_hook(self, name):
        """The type's optional hook ``_<type>_<name>``, or None."""
        self.ensure_one()
        return getattr(self, f"_{self.deployment_type}_{name}", None)

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
        # Refused before the wizard opens, not once it is filled in.
        self._check_can_act(self._verb_words("restore"))
        self._check_action_allowed("restore")
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
        if verb in ("backup", "restore") and not self._type_has("action_backup"):
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot %(verb)s: deployments of type "
                    "%(type)s have no backups in Eyrie.",
                    name=self.name,
                    verb=verb,
                    type=self.deployment_type,
                )
            )
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
        """(backup, target time) of a restore request, checked: the backup
        itself (target None), or the moment ``target_time`` with the last
        backup before it."""
        self.ensure_one()
        if bool(backup_id) == bool(target_time):
            raise UserError(
                self.env._(
                    "Restore of %(name)s: give either a backup or a point in time "
                    "(UTC), not both and not neither.",
                    name=self.name,
                )
            )
        # Backups are the system's records: users only read them.
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
            return backup, None
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

    def _start_backup(self, kind, values, book=None, state="backing_up"):
        """Create the backup record and its job. Returns the job."""
        self.ensure_one()
        # Backups are records of the system: users read them, never write.
        # Backups are the system's records: users only read them.
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
                    "repo": values.get("backup_repo"),
                    "location": values.get("backup_location"),
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
        """Create the restore job and the deploy job after it. ``backup`` is
        restored as it was (``target`` None), or is the last backup before
        the UTC moment ``target`` the data returns to. ``values`` hold what
        the type's restore book needs besides."""
        self.ensure_one()
        stamp = int(datetime.now(UTC).timestamp())
        moment = target or backup.completed_at
        values = values | {
            "restore_label": f"eyrie-restore-{self.id}-{stamp}",
            "restore_target": fields.Datetime.to_string(moment) + "+00",
            "restore_backup_id": backup.id,
            "restore_as_backup": target is None,
        }
        job = self._create_job("restore", book or self._get_book("restore"), values)
        deploy = self._create_job(
            "deploy", self._get_book("deploy"), values, previous_job=job
        )
        self._set_lifecycle(state="restoring")
        return job | deploy

    def _start_drop_backup(self):
        """The final backup a drop takes first where the scope asks for one;
        None where it does not, or where the type has no backups."""
        self.ensure_one()
        if not self.scope_id.backup_before_drop:
            return None
        return self._start_backup_before("before_drop", "'Backup Before Drop'")

    def _start_update_backup(self):
        """The backup a deploy of a deployed deployment (an update) takes
        first where the scope asks for one; None where it does not."""
        self.ensure_one()
        if not self.scope_id.backup_before_update or self.repository_state != "deploy":
            return None
        return self._start_backup_before("before_update", "'Backup Before Update'")

    def _start_backup_before(self, kind, option):
        """The backup job of ``kind`` that another job of this deployment is
        chained after; None where there is no data to back up yet, or the
        type takes no backups."""
        if self.repository_state not in ("deploy", "pause"):
            return None
        hook = self._type_hook("backup_values")
        if not self._type_has("action_backup") or not hook:
            return None
        values = hook()
        if values is None:
            # The type has nothing of its own to back up here (it says why).
            return None
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
        backup.write({"state": "done", "completed_at": job.ended_at})
        hook = self._type_hook("on_backup_done")
        if hook:
            hook(backup, job)
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
        hook = self._type_hook("restore_summary")
        detail = hook(values) if hook else ""
        self._set_lifecycle(state="deploying")
        self.message_post(
            body=self.env._(
                "Restored to %(time)s UTC (backup %(backup)s%(detail)s); redeploying.",
                time=values["restore_target"].removesuffix("+00"),
                backup=backup.exists().display_name or values["restore_backup_id"],
                detail=f", {detail}" if detail else "",
            )
        )

    def _backup_of(self, job):
        # Backups are the system's records (users only read them).
        return (
            self.env["eyrie.backup"].sudo().search([("job_id", "=", job.id)], limit=1)
        )
