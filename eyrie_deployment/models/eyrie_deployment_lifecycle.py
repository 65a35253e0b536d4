import logging

from odoo import models
from odoo.exceptions import UserError
from odoo.tools import SQL

from .eyrie_deployment import REPOSITORY_STATES

_logger = logging.getLogger(__name__)


class EyrieDeployment(models.Model):
    """The public lifecycle actions, their checks, the dispatch to the
    type's ``<type>_action_<verb>`` and the outcome of the jobs."""

    _inherit = "eyrie.deployment"

    # ------------------------------------------------------------------
    # Public lifecycle actions (form buttons, XML-RPC, timers)
    # ------------------------------------------------------------------

    def action_deploy(self):
        """Deploy: initialize then deploy from draft or after a failed first
        deploy, resume from pause, update when deployed."""
        return self._run_action("deploy", trigger="user")

    def action_pause(self):
        """Pause a deployed deployment (its pause book)."""
        return self._run_action("pause", trigger="user")

    def action_drop(self):
        """Remove the deployment from its cluster, then delete the record."""
        return self._run_action("drop", trigger="user")

    def action_view_jobs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "eyrie_deployment.eyrie_job_action"
        )
        action["domain"] = [("deployment_id", "=", self.id)]
        action["context"] = {"create": False}
        return action

    # ------------------------------------------------------------------
    # Checks and dispatch
    # ------------------------------------------------------------------

    def _run_action(self, verb, trigger, **arguments):
        self._run_action_jobs(verb, trigger, **arguments)
        return True

    def _run_action_jobs(self, verb, trigger, **arguments):
        """Run ``verb`` on these deployments; returns the jobs it created."""
        if trigger == "user":
            # The lifecycle writes as superuser: the caller's own rights are
            # checked here, so a user runs actions on their own deployments.
            self._check_can_act(self._verb_words(verb))
        deployments = self.with_context(eyrie_job_trigger=trigger)
        deployments._lock_rows()
        jobs = self.env["eyrie.job"]
        with jobs._enqueued_together():
            for deployment in deployments:
                deployment._check_action_allowed(verb)
                started = deployment._dispatch(verb, **arguments)
                if (
                    isinstance(started, models.BaseModel)
                    and started._name == "eyrie.job"
                ):
                    jobs |= started
        return jobs

    def _verb_words(self, verb):
        """``verb`` as the sentence "You cannot ... deployment X" says it."""
        words = {
            "deploy": self.env._("deploy"),
            "pause": self.env._("pause"),
            "drop": self.env._("drop"),
            "backup": self.env._("back up"),
            "restore": self.env._("restore"),
            "clone": self.env._("duplicate"),
        }
        return words.get(verb, verb)

    def _lock_rows(self):
        # Serialises concurrent actions on one deployment: the second waits,
        # then sees the first one's job and is refused.
        if self.ids:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM eyrie_deployment WHERE id IN %s FOR NO KEY UPDATE",
                    tuple(self.ids),
                )
            )

    def _lock_shared(self):
        """Lock these rows until the end of the transaction against another
        lifecycle action, which locks them for update: the deployments a
        check reads of another deployment (a dependency) cannot change
        under it. Of two such transactions, the second waits, then fails
        with a serialization error that the caller retries (XML-RPC, the
        timers' next run) and then sees what the first one did."""
        if self.ids:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM eyrie_deployment WHERE id IN %s FOR SHARE",
                    tuple(self.ids),
                )
            )
            self.invalidate_recordset()

    def _check_action_allowed(self, verb):
        self.ensure_one()
        if not self.active:
            raise UserError(
                self.env._(
                    "Deployment %(name)s is archived; restore it first.", name=self.name
                )
            )
        # Jobs are the system's records: users only read them. Computed for
        # all the deployments of the action at once (a batch of the timers).
        running = self.sudo().active_job_id
        if running:
            raise UserError(
                self.env._(
                    "Deployment %(name)s already has a %(action)s job in progress "
                    "(%(state)s); wait for it to end before running another action.",
                    name=self.name,
                    action=running.action,
                    state=running.state,
                )
            )
        if verb == "pause" and self.repository_state != "deploy":
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be paused: it is in phase %(phase)s, "
                    "only a deployed deployment can be paused.",
                    name=self.name,
                    phase=dict(REPOSITORY_STATES)[self.repository_state],
                )
            )
        if verb == "drop" and self.drop_protected:
            raise UserError(
                self.env._(
                    "Deployment %(name)s is protected against drop. A manager can "
                    "clear its 'Drop Protection' first.",
                    name=self.name,
                )
            )
        if verb == "drop" and not self.scope_id.allow_drop:
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be dropped: scope %(scope)s does not "
                    "allow drop. A manager can enable 'Allow Drop' on the scope.",
                    name=self.name,
                    scope=self.scope_id.name,
                )
            )
        self._check_dependents(verb)

    def _check_dependents(self, verb):
        """Refuse ``verb`` (``UserError``) while deployments that depend on
        this one need it as it is. The base knows no dependency; a type whose
        deployments use others' overrides it (``super()`` first)."""
        self.ensure_one()

    def _dispatch(self, verb, **arguments):
        self.ensure_one()
        method_name = f"{self.deployment_type}_action_{verb}"
        method = getattr(self, method_name, None)
        if method is None:
            raise UserError(
                self.env._(
                    "Deployment type '%(type)s' cannot %(verb)s: method %(method)s is "
                    "not implemented on eyrie.deployment.",
                    type=self.deployment_type,
                    verb=verb,
                    method=method_name,
                )
            )
        if not getattr(method, "_api_private", False):
            # Public, it would let any caller skip the checks above over RPC.
            raise UserError(
                self.env._(
                    "Deployment type '%(type)s' cannot %(verb)s: method %(method)s "
                    "is callable over XML-RPC and skips the lifecycle's checks; "
                    "decorate it with @api.private.",
                    type=self.deployment_type,
                    verb=verb,
                    method=method_name,
                )
            )
        return method(**arguments)

    # ------------------------------------------------------------------
    # Job outcomes, called by eyrie.job
    # ------------------------------------------------------------------

    def _on_job_done(self, job):
        self.ensure_one()
        getattr(self, f"_on_{job.action}_done")(job)

    def _on_initialize_done(self, job):
        # The deploy job chained after it runs next, unless it was cancelled.
        following = self.env["eyrie.job"].search_count(
            [("previous_job_id", "=", job.id), ("state", "=", "pending")], limit=1
        )
        self._set_lifecycle(state="deploying" if following else "initialize")

    def _on_deploy_done(self, job):
        resumed = self.repository_state == "pause"
        self._set_lifecycle(
            repository_state="deploy",
            state="deploy",
            deployed_at=job.ended_at,
            resumed_at=job.ended_at if resumed else self.resumed_at,
            # Running: a pause time left would say it is paused.
            paused_at=False,
            timer_extension_seconds=0,
            error_message=False,
            timer_blocked_until=False,
            timer_refusal=False,
        )

    def _on_pause_done(self, job):
        self._set_lifecycle(
            repository_state="pause",
            state="pause",
            paused_at=job.ended_at,
            error_message=False,
            timer_blocked_until=False,
            timer_refusal=False,
        )

    def _on_job_cancelled(self, job):
        """A pending job was cancelled: back to the phase it left, unless
        another job of the deployment is still in progress."""
        self.ensure_one()
        if self._back_from_cancelled(job):
            # Logged, not posted: a user without an email address cancels too.
            self._message_log(
                body=self.env._(
                    "%(user)s cancelled the %(action)s job before it ran.",
                    user=self.env.user.name,
                    action=job.action,
                )
            )

    def _on_chained_job_cancelled(self, job):
        """``job`` waited for another deployment's job, which failed or was
        cancelled: back to the phase it left, saying why."""
        self.ensure_one()
        if self._back_from_cancelled(job):
            self._set_lifecycle(error_message=job.error_message)
            self.message_post(body=job.error_message)

    def _back_from_cancelled(self, job):
        """The phase a deployment returns to when ``job`` was cancelled;
        False while another of its jobs is still in progress."""
        if self.active_job_id:
            return False
        # Any job that started (even one that failed) may have left objects
        # on the cluster: then the deployment stays out of draft, so that its
        # namespace stays locked and Drop cleans up.
        if job.action == "backup":
            self._backup_of(job).write(
                {"state": "failed", "error_message": self.env._("Cancelled.")}
            )
        ran = self.env["eyrie.job"].search_count(
            [("deployment_id", "=", self.id), ("started_at", "!=", False)], limit=1
        )
        if self.repository_state == "initialize" and not ran:
            # Nothing ran on the cluster yet: the deployment is a draft again.
            self._set_lifecycle(repository_state="draft", state="draft")
        else:
            self._set_lifecycle(state=self.repository_state)
        return True

    def _on_drop_done(self, job):
        _logger.info("Deployment %s (%s) dropped by job %s", self.name, self.id, job.id)
        # The drop (or uninstall) removes the record, whoever asked for it.
        self.sudo().unlink()

    def _on_job_failed(self, job):
        self.ensure_one()
        handler = getattr(self, f"_on_{job.action}_failed", None)
        if handler:
            return handler(job)
        return self._fail_as_error(job)

    def _fail_as_error(self, job):
        """The outcome of a failed job that no ``_on_<action>_failed``
        handles: the deployment in error, saying why."""
        self._set_lifecycle(state="error", error_message=job.error_message)
        self.message_post(
            body=self.env._(
                "The %(action)s job failed: %(error)s",
                action=job.action,
                error=job.error_message,
            )
        )
