import json
import logging
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError

from odoo.addons.eyrie_deployment.models.eyrie_deployment_timers import (
    format_duration,
)

_logger = logging.getLogger(__name__)

DATABASE_PAUSE_RETRY = timedelta(hours=1)
CRON_BATCH = 50


class EyrieDeployment(models.Model):
    """Sleep in two stages: the instance first (Odoo at 0 replicas, its
    database up, so that a wake takes seconds), its own database after the
    scope's delay; both in the pause phase. And the wakes for scheduled
    actions, at most N a day."""

    _inherit = "eyrie.deployment"

    pause_stage = fields.Selection(
        [("instance", "Instance Asleep"), ("database", "Instance and Database Asleep")],
        readonly=True,
        copy=False,
        help="While paused: whether its own database still runs (the instance "
        "wakes in seconds) or is shut down too.",
    )
    database_pause_at = fields.Datetime(
        compute="_compute_database_pause_at",
        store=True,
        index="btree_not_null",
        help="When the database of this paused instance is shut down too.",
    )
    scheduled_wake_day = fields.Date(readonly=True, copy=False)
    scheduled_wake_count = fields.Integer(readonly=True, copy=False)
    scheduled_wake_for = fields.Datetime(
        readonly=True,
        copy=False,
        help="The due time of the scheduled action it was last woken for.",
    )

    @api.model
    def _lifecycle_fields(self):
        return super()._lifecycle_fields() | {
            "pause_stage",
            "database_pause_at",
            "scheduled_wake_day",
            "scheduled_wake_count",
            "scheduled_wake_for",
        }

    @api.depends("pause_stage", "paused_at", "scope_id.database_pause_after_seconds")
    def _compute_database_pause_at(self):
        for deployment in self:
            delay = deployment.scope_id.database_pause_after_seconds
            deployment.database_pause_at = (
                deployment.paused_at + timedelta(seconds=delay)
                if deployment.pause_stage == "instance" and deployment.paused_at
                else False
            )

    # ------------------------------------------------------------------
    # The pause, stage by stage
    # ------------------------------------------------------------------

    def _pauses_database_later(self):
        return bool(
            self.deployment_type == "odoo"
            and self.database_mode == "own"
            and self.scope_id.database_pause_after_seconds
        )

    @api.private
    def odoo_action_pause(self):
        if not self._pauses_database_later():
            return super().odoo_action_pause()
        values = self._odoo_values(need_hostname=False)
        values["pause_database"] = False
        return self._start_pause(values=values)

    def _pause_database(self):
        """Stage two: the pause book again, with the database this time."""
        self.ensure_one()
        self._lock_rows()
        self.invalidate_recordset()
        if self.active_job_id or self.pause_stage != "instance":
            return self.env["eyrie.job"]
        values = self._odoo_values(need_hostname=False)
        values |= {"pause_database": True, "pause_stage": "database"}
        return self.with_context(eyrie_job_trigger="timer")._start_pause(values=values)

    @staticmethod
    def _job_pause_stage(job):
        return json.loads(job.values or "{}").get("pause_stage")

    def _on_pause_done(self, job):
        if self._job_pause_stage(job) == "database":
            self._set_lifecycle(
                state="pause",
                pause_stage="database",
                error_message=False,
                timer_blocked_until=False,
                timer_refusal=False,
            )
            self._message_log(
                body=self.env._(
                    "Its database is shut down too, %(delay)s after the instance "
                    "paused: a wake now also starts PostgreSQL.",
                    delay=format_duration(
                        (job.ended_at - self.paused_at).total_seconds(), self.env
                    ),
                )
            )
            return
        super()._on_pause_done(job)
        later = json.loads(job.values or "{}").get("pause_database") is False
        self._set_lifecycle(
            pause_stage="instance" if later else "database", woken_by=False
        )
        if later:
            self._trigger_sleep_cron(self.database_pause_at)
            body = self.env._(
                "Paused: Odoo is scaled to 0 and its database keeps running until "
                "%(when)s UTC, so that a wake takes seconds.",
                when=fields.Datetime.to_string(self.database_pause_at),
            )
        else:
            body = self.env._("Paused: Odoo is scaled to 0 and its database is down.")
        self._message_log(body=body)

    def _trigger_sleep_cron(self, at):
        """The cron runs at ``at`` too, not only at its next minute."""
        # The cron is the system's record; any deployment's pause sets it.
        cron = self.env.ref("eyrie_wake.ir_cron_sleep_and_wake").sudo()
        cron._trigger(at)

    def _on_pause_failed(self, job):
        if self._job_pause_stage(job) != "database":
            return self._fail_as_error(job)
        # The instance still sleeps; only its database runs on: say so, and
        # try again later rather than at every run of the cron.
        self._set_lifecycle(
            state="pause",
            error_message=job.error_message,
            timer_blocked_until=fields.Datetime.now() + DATABASE_PAUSE_RETRY,
        )
        self.message_post(
            body=self.env._(
                "The instance sleeps, but its database could not be shut down: "
                "%(error)s It is tried again in an hour.",
                error=job.error_message,
            )
        )
        return None

    def _on_deploy_done(self, job):
        result = super()._on_deploy_done(job)
        self._set_lifecycle(pause_stage=False)
        return result

    # ------------------------------------------------------------------
    # The cron
    # ------------------------------------------------------------------

    @api.model
    def _cron_sleep_and_wake(self, batch_size=CRON_BATCH):
        """Shut down the databases due, wake the instances whose scheduled
        action is due. Each deployment in a savepoint of its own: one that
        fails is logged and the others go on."""
        now = fields.Datetime.now()
        # The sleep timers are the system's: every deployment, whoever's.
        Deployment = self.sudo()
        # Wakes first: a database due to stop while its instance wakes stays.
        woken = self._each_in_savepoint(
            Deployment._due_scheduled_wakes(now, batch_size), "_wake_for_schedule"
        )
        databases = Deployment.search(
            [
                ("pause_stage", "=", "instance"),
                ("database_pause_at", "<=", now),
                ("state", "=", "pause"),
                "|",
                ("timer_blocked_until", "=", False),
                ("timer_blocked_until", "<=", now),
            ],
            limit=batch_size,
            order="database_pause_at",
        )
        done = self._each_in_savepoint(
            databases.filtered(lambda d: not d.active_job_id), "_pause_database"
        )
        self.env["eyrie.wake.nonce"].sudo()._gc_seen()  # the system's records
        return done + woken

    def _each_in_savepoint(self, deployments, method):
        done = 0
        for deployment in deployments:
            try:
                with self.env.cr.savepoint():
                    getattr(deployment, method)()
                done += 1
            except Exception:  # one deployment never stops the batch
                _logger.exception(
                    "Eyrie: %s of deployment %s failed", method, deployment.id
                )
        return done

    def _due_scheduled_wakes(self, now, limit):
        candidates = self.search(
            [
                ("repository_state", "=", "pause"),
                ("state", "=", "pause"),
                ("scope_id.wake_for_scheduled_actions", "=", True),
                ("next_scheduled_action_at", "<=", now),
                "|",
                ("wake_blocked_until", "=", False),
                ("wake_blocked_until", "<=", now),
            ],
            order="next_scheduled_action_at",
            limit=limit,
        )
        candidates = candidates.filtered(
            lambda d: d._scheduled_wakes_left(now.date()) > 0
        )
        again = candidates.filtered(
            lambda d: (
                d.scheduled_wake_for
                and d.next_scheduled_action_at <= d.scheduled_wake_for
            )
        )
        for deployment in again:
            deployment._forget_unrun_action()
        return candidates - again

    def _forget_unrun_action(self):
        """It was woken for this action and did not run it while up (its
        scheduled actions do not run, or fail): not woken again for it."""
        self._message_log(
            body=self.env._(
                "Not woken again for its scheduled action due at %(due)s UTC: it "
                "was woken for it and did not run it. The next one it reports "
                "wakes it.",
                due=fields.Datetime.to_string(self.next_scheduled_action_at),
            )
        )
        self._set_lifecycle(next_scheduled_action_at=False)

    def _scheduled_wakes_left(self, day):
        used = self.scheduled_wake_count if self.scheduled_wake_day == day else 0
        return self.scope_id.scheduled_wakes_per_day - used

    def _wake_for_schedule(self):
        """Wake for the scheduled action due; it pauses again after the
        scope's 'Awake for Scheduled Actions' unless a person uses it."""
        self.ensure_one()
        today = fields.Datetime.now().date()
        due = self.next_scheduled_action_at
        left = self._scheduled_wakes_left(today)
        try:
            self._run_action_jobs("deploy", trigger="schedule")
        except UserError as error:
            self._set_lifecycle(next_scheduled_action_at=False, wake_refusal=str(error))
            self._message_log(
                body=self.env._(
                    "Not woken for its scheduled action due at %(due)s UTC: %(error)s",
                    due=fields.Datetime.to_string(due),
                    error=error,
                )
            )
            return
        self._set_lifecycle(
            woken_by="schedule",
            # Reported again once it runs.
            next_scheduled_action_at=False,
            scheduled_wake_day=today,
            scheduled_wake_for=due,
            scheduled_wake_count=self.scope_id.scheduled_wakes_per_day - left + 1,
        )
        self._message_log(
            body=self.env._(
                "Woken for its scheduled action due at %(due)s UTC (wake %(count)s "
                "of %(limit)s today); it pauses again %(awake)s later unless "
                "someone uses it.",
                due=fields.Datetime.to_string(due),
                count=self.scheduled_wake_count,
                limit=self.scope_id.scheduled_wakes_per_day,
                awake=format_duration(self.scope_id.scheduled_wake_seconds, self.env),
            )
        )
