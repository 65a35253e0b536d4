import logging
import time
from datetime import timedelta

from markupsafe import escape

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..tools.parameters import int_param
from ..tools.transaction import commit_unless_testing, in_test
from .eyrie_deployment import IN_FLIGHT_STATES
from .eyrie_deployment_timers import _relative

_logger = logging.getLogger(__name__)

# A failed or refused automatic action is not tried again before this delay.
TIMER_RETRY_DELAY = timedelta(hours=1)
# How long a run of the timers cron waits for a timer due in the meantime.
DEFAULT_TIMERS_WAIT_SECONDS = 50


class EyrieDeployment(models.Model):
    """The timers cron: applies the due pauses, drops and warnings, in
    batches, each deployment in its own savepoint."""

    _inherit = "eyrie.deployment"

    @api.model
    def _cron_apply_timers(self, batch_size=200):
        """Pause and drop the deployments whose scope timers are due, then
        wait for the ones due within the next seconds (see
        ``_apply_imminent_timers``). Returns how many timers fired."""
        fired = self._apply_due_timers(batch_size)
        # Not with more due (the cron runs again at once), nor in tests, which
        # run in one transaction with frozen time.
        if fired < batch_size and not in_test():
            fired += self._apply_imminent_timers(batch_size)
        return fired

    @api.model
    def _apply_imminent_timers(self, batch_size):
        """Odoo's cron threads take a future trigger only when they poll,
        once a minute: a timer would fire up to a minute late. So, while a
        timer is due within ``eyrie.timers_wait_seconds`` (default 50), wait
        for it here and fire it on time."""
        budget = int_param(
            self.env, "eyrie.timers_wait_seconds", DEFAULT_TIMERS_WAIT_SECONDS
        )
        deadline = time.monotonic() + budget
        fired = 0
        while True:
            next_at = self._next_timer_at()
            if not next_at:
                return fired
            wait = (next_at - fields.Datetime.now()).total_seconds() + 0.2
            if wait > deadline - time.monotonic():
                # Beyond this run: the trigger set for it wakes the cron.
                return fired
            # A fresh snapshot after the wait, and no transaction held open
            # during it; everything done so far is complete in itself.
            commit_unless_testing(self.env.cr)
            time.sleep(max(0, wait))
            fired += self._apply_due_timers(batch_size)

    @api.model
    def _apply_due_timers(self, batch_size):
        now = fields.Datetime.now()
        self._send_drop_warnings(now, limit=batch_size)
        rows = self._fetch_due_timers(now, limit=batch_size + 1)
        batch = rows[:batch_size]
        # One wake-up of the job runner for the whole batch, not one each.
        deployments = self.browse([row[0] for row in batch]).with_context(
            eyrie_defer_wake=True
        )
        notes = {
            deployment.id: deployment._fire_timer(verb, now)
            for deployment, (_id, verb) in zip(deployments, batch, strict=True)
        }
        if batch:
            # One chatter note per deployment, logged together, without
            # notifying every follower.
            deployments._message_log_batch(
                {deployment_id: escape(note) for deployment_id, note in notes.items()}
            )
            deployments._set_lifecycle(timer_blocked_until=now + TIMER_RETRY_DELAY)
            self._wake_job_runner()
            # Safe: each action is complete in itself (one savepoint each), and
            # a batch lost to a crash is still due at the next run.
            commit_unless_testing(self.env.cr)
        remaining = self._count_due_timers(now) if len(rows) > batch_size else 0
        self.env["ir.cron"]._notify_progress(done=len(batch), remaining=remaining)
        if not remaining:
            self._schedule_timers_cron()
        return len(batch)

    @api.model
    def _schedule_timers_cron(self, at=None):
        """Wake the timers cron when the next timer is due (default: the
        earliest of all), so that it fires within a minute of being due
        instead of at the cron's next periodic run."""
        cron = self.env.ref(
            "eyrie_deployment.ir_cron_deployment_timers", raise_if_not_found=False
        )
        cron = cron and cron.sudo()
        if not cron or not cron.active:
            return
        if at is None:
            at = self._next_timer_at()
        if not at or at >= cron.nextcall:
            return
        already = (
            self.env["ir.cron.trigger"]
            .sudo()
            .search_count([("cron_id", "=", cron.id), ("call_at", "<=", at)], limit=1)
        )
        if not already:
            cron._trigger(at=at)

    @api.model
    def _next_timer_at(self):
        """The earliest future pause, drop or warning time; one index range
        scan per column."""
        self.flush_model(["next_pause_at", "next_drop_at", "drop_warning_due_at"])
        now = fields.Datetime.now()
        self.env.cr.execute(
            SQL(
                """
                SELECT LEAST(
                    (SELECT min(next_pause_at) FROM eyrie_deployment
                      WHERE next_pause_at > %(now)s AND active),
                    (SELECT min(next_drop_at) FROM eyrie_deployment
                      WHERE next_drop_at > %(now)s AND active),
                    (SELECT min(drop_warning_due_at) FROM eyrie_deployment
                      WHERE drop_warning_due_at > %(now)s AND active))
                """,
                now=now,
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _send_drop_warnings(self, now, limit):
        due = self.search(
            [("drop_warning_due_at", "<=", now)],
            order="drop_warning_due_at",
            limit=limit,
        )
        for deployment in due:
            deployment._warn_before_drop(now)
            commit_unless_testing(self.env.cr)

    def _warn_before_drop(self, now):
        """One activity for the due lead times; each is sent once per drop time."""
        self.ensure_one()
        pending = self._pending_drop_warnings()
        due = [lead for lead in pending if self.next_drop_at - lead <= now]
        if not due:
            return
        late = self.next_drop_at <= now
        sent = sorted(self._sent_drop_warnings() | set(due))
        self._set_lifecycle(
            drop_warned_for=self.next_drop_at,
            drop_warned_hours=",".join(
                f"{lead.total_seconds() / 3600:g}" for lead in sent
            ),
        )
        if late:
            # The drop itself runs now; its chatter message says so.
            return
        summary = self.env._(
            "%(name)s will be dropped %(when)s",
            name=self.name,
            when=_relative(self.next_drop_at - now, self.env),
        )
        self.sudo().activity_schedule(
            "mail.mail_activity_data_warning",
            date_deadline=self.next_drop_at.date(),
            summary=summary,
            note=self.env._(
                "The drop timer of scope %(scope)s removes this deployment and "
                "everything it runs at %(due)s UTC. Use Keep Awake to postpone it, "
                "or ask a manager for Drop Protection.",
                scope=self.scope_id.name,
                due=fields.Datetime.to_string(self.next_drop_at),
            ),
            user_id=(self.user_id or self.create_uid).id,
        )

    def _due_timers_where(self, now):
        return SQL(
            """
            active
            AND (next_drop_at <= %(now)s OR next_pause_at <= %(now)s)
            AND state NOT IN %(in_flight)s
            AND (timer_blocked_until IS NULL OR timer_blocked_until <= %(now)s)
            """,
            now=now,
            in_flight=IN_FLIGHT_STATES,
        )

    @api.model
    def _fetch_due_timers(self, now, limit):
        """(id, verb) of due deployments, oldest first; drop wins over pause."""
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT id,
                       CASE WHEN next_drop_at <= %(now)s THEN 'drop' ELSE 'pause' END
                  FROM eyrie_deployment
                 WHERE %(where)s
              ORDER BY LEAST(COALESCE(next_drop_at, 'infinity'),
                             COALESCE(next_pause_at, 'infinity')), id
                 LIMIT %(limit)s
                """,
                now=now,
                where=self._due_timers_where(now),
                limit=limit,
            )
        )
        return self.env.cr.fetchall()

    @api.model
    def _count_due_timers(self, now):
        self.env.cr.execute(
            SQL(
                "SELECT count(*) FROM eyrie_deployment WHERE %s",
                self._due_timers_where(now),
            )
        )
        return self.env.cr.fetchone()[0]

    def _fire_timer(self, verb, now):
        """Run the due action; returns the chatter note saying what the
        timer did. The caller blocks the timer for an hour either way."""
        self.ensure_one()
        due_at = self.next_drop_at if verb == "drop" else self.next_pause_at
        seconds = self.scope_id[f"deployment_{verb}_after_seconds"]
        timer = self.env._(
            "%(verb)s timer of scope %(scope)s (%(seconds)s s after deploy, due at "
            "%(due)s UTC)",
            verb=verb.capitalize(),
            scope=self.scope_id.name,
            seconds=seconds,
            due=fields.Datetime.to_string(due_at),
        )
        late = max(0, round((fields.Datetime.now() - due_at).total_seconds()))
        _logger.info(
            "Timer: %s of deployment %s fired %s s after it was due",
            verb,
            self.id,
            late,
        )
        try:
            with self.env.cr.savepoint():
                self._run_action(verb, trigger="timer")
            body = self.env._(
                "Automatic %(verb)s started by the %(timer)s, %(late)s s after it "
                "was due.",
                verb=verb,
                timer=timer,
                late=late,
            )
        except UserError as error:
            body = self.env._(
                "Automatic %(verb)s by the %(timer)s was refused: %(error)s "
                "It will be tried again in an hour.",
                verb=verb,
                timer=timer,
                error=error.args[0],
            )
        return body
