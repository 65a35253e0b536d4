import logging
from datetime import timedelta

from markupsafe import escape

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import UserError
from odoo.osv.expression import OR
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tools import SQL

from ..tools.kubernetes_executor import safe_error_text
from ..tools.transaction import commit_unless_testing
from .eyrie_deployment import IN_FLIGHT_STATES
from .eyrie_deployment_timers import _relative, format_duration

_logger = logging.getLogger(__name__)

# A failed or refused automatic action is not tried again before this delay.
TIMER_RETRY_DELAY = timedelta(hours=1)
# What moves a deployment's next timer: its timer job is planned again.
TIMER_INPUTS = frozenset(
    {
        "active",
        "state",
        "repository_state",
        "deployed_at",
        "resumed_at",
        "timer_extension_seconds",
        "timer_blocked_until",
        "drop_protected",
        "drop_warned_for",
        "drop_warned_hours",
        "scope_id",
    }
)
TIMER_CHANNEL = "root.eyrie.timers"
DROP_WARNING = "mail.mail_activity_data_warning"


class EyrieDeployment(models.Model):
    """The timers. The cron (``_cron_apply_timers``) is the enforcer: each
    run applies whatever is due, in batches, each deployment in its own
    savepoint. Precision comes from one queue job per deployment at its next
    due time (``_plan_timer_jobs``), planned again whenever that time moves.
    Nothing sleeps; nothing fires before it is due."""

    _inherit = "eyrie.deployment"

    def write(self, vals):
        result = super().write(vals)
        if TIMER_INPUTS & vals.keys():
            self._on_timers_moved()
        return result

    def unlink(self):
        # A dropped deployment has no timer left to fire.
        self._timer_jobs().unlink()
        return super().unlink()

    def _timer_jobs(self, keep=False):
        """The pending timer jobs of these deployments, but the one whose
        identity key is ``keep``."""
        domain = [("state", "=", "pending"), ("identity_key", "!=", keep)]
        prefixes = [
            [("identity_key", "=like", f"eyrie.timer:{id_}:%")] for id_ in self.ids
        ]
        if not prefixes:
            # queue_job's records are its managers'; Eyrie handles its own.
            return self.env["queue.job"].sudo()
        # queue_job's records are its managers'; Eyrie handles its own.
        return self.env["queue.job"].sudo().search(domain + OR(prefixes))

    @api.model
    def _cron_apply_timers(self, batch_size=200):
        """Pause and drop the deployments whose scope timers are due, and
        send the warnings due. Returns how many timers fired."""
        return self._apply_due_timers(batch_size)

    # ------------------------------------------------------------------
    # What follows the timers when they move
    # ------------------------------------------------------------------

    def _on_timers_moved(self):
        """The deployments' timers may have moved (a deploy, a pause, Keep
        Awake, Drop Protection, their scope's settings): their drop warning,
        their refusal and their timer job follow."""
        self._sync_drop_warnings()
        self._clear_stale_refusals()
        self._plan_timer_jobs()

    def _clear_stale_refusals(self):
        # A refusal says why a due timer waits: once nothing is due, it is
        # history (the chatter keeps it).
        stale = self.filtered(
            lambda d: d.timer_refusal and not (d.is_pause_due or d.is_drop_due)
        )
        if stale:
            stale._set_lifecycle(timer_refusal=False)

    def _drop_warnings(self):
        """The drop warning activities of these deployments (the timers' own,
        not those a user scheduled)."""
        # The warning is the system's, whoever moves the timers.
        return self.sudo().activity_search([DROP_WARNING])

    def _sync_drop_warnings(self):
        """Keep each deployment's drop warning true to its drop time: moved
        with it while a lead time is due for the new time, withdrawn when
        there is no drop time any more or none of its warnings is due yet."""
        warnings = self._drop_warnings().grouped("res_id")
        now = fields.Datetime.now()
        for deployment in self:
            warning = warnings.get(deployment.id)
            if not warning:
                continue
            if not deployment.active or not deployment.next_drop_at:
                deployment._withdraw_drop_warning(warning, deployment._no_drop_reason())
            elif deployment.drop_warned_for == deployment.next_drop_at:
                # Sent for this very drop time: it is true as it is.
                continue
            elif deployment._due_drop_warnings(now):
                deployment._warn_before_drop(now)
            else:
                deployment._withdraw_drop_warning(
                    warning,
                    self.env._(
                        "the drop moved to %(due)s UTC; the warnings start over "
                        "for that time.",
                        due=fields.Datetime.to_string(deployment.next_drop_at),
                    ),
                )

    def _withdraw_drop_warning(self, warning, reason):
        self.ensure_one()
        # A pending warning of a drop that will not happen is deleted, not
        # marked done: nobody did anything. The chatter says why it went.
        warning.unlink()
        self.sudo()._message_log(
            body=self.env._("Drop warning withdrawn: %(reason)s", reason=reason)
        )

    def _no_drop_reason(self):
        """Why this deployment has no drop time (any more)."""
        self.ensure_one()
        scope = self.scope_id
        if not self.active:
            return self.env._("the deployment is archived.")
        if self.drop_protected:
            return self.env._("the deployment is protected against drop.")
        if not scope.allow_drop:
            return self.env._("scope %s does not allow drop.", scope.name)
        if not scope.deployment_drop_after_seconds:
            return self.env._("scope %s has no drop timer.", scope.name)
        return self.env._("the deployment has no drop timer any more.")

    # ------------------------------------------------------------------
    # One queue job per deployment, at its next due time
    # ------------------------------------------------------------------

    def _next_timer_run(self):
        """When this deployment's next timer can fire: its next warning, or
        its pause or drop once no job is in flight and no failed attempt
        blocks it. None when nothing is to fire."""
        self.ensure_one()
        if not self.active:
            return None
        times = [self.drop_warning_due_at]
        action_at = min(
            filter(None, (self.next_pause_at, self.next_drop_at)), default=None
        )
        if action_at and self.state not in IN_FLIGHT_STATES:
            blocked = self.timer_blocked_until
            times.append(max(action_at, blocked) if blocked else action_at)
        return min(filter(None, times), default=None)

    def _plan_timer_jobs(self):
        """Keep one pending queue job per deployment, at its next timer
        (``_run_due_timer``); the identity key holds the time, so a moved
        timer replaces the job planned for the old time."""
        for deployment in self.exists():
            eta = deployment._next_timer_run()
            key = f"eyrie.timer:{deployment.id}:{fields.Datetime.to_string(eta)}"
            deployment._timer_jobs(keep=key if eta else False).unlink()
            if not eta:
                continue
            # As the cron did: the automatic actions are the system's.
            deployment.with_user(SUPERUSER_ID).sudo().with_delay(
                eta=eta,
                channel=TIMER_CHANNEL,
                identity_key=key,
                description=self.env._("Eyrie timers of %s", deployment.name),
            )._run_due_timer()

    def _run_due_timer(self):
        """The queue job planned at this deployment's next timer: apply what
        is due now, then plan the next one."""
        self.ensure_one()
        if not self.exists():
            return
        fired = self._apply_due_timers(1, only=self, commit=False)
        eta = self._next_timer_run()
        if not fired and eta and eta <= fields.Datetime.now():
            # Due but not applied (a concurrent action took the row): the
            # periodic run applies it, no busy loop here.
            return
        self._plan_timer_jobs()

    # ------------------------------------------------------------------
    # Applying what is due
    # ------------------------------------------------------------------

    @api.model
    def _apply_due_timers(self, batch_size, only=None, commit=True):
        """Send the due warnings and fire the due pauses and drops, of every
        deployment or ``only`` those. ``commit``: the cron's batches are
        committed as they go; a queue job commits when it ends."""
        now = fields.Datetime.now()
        self._send_drop_warnings(now, limit=batch_size, only=only, commit=commit)
        rows = self._fetch_due_timers(now, limit=batch_size + 1, only=only)
        batch = rows[:batch_size]
        notes = {}
        for deployment_id, verb in batch:
            note = self.browse(deployment_id)._fire_timer(verb, now)
            if note:
                notes[deployment_id] = escape(note)
        if notes:
            # One chatter note per deployment, logged together, without
            # notifying every follower.
            self.browse(list(notes))._message_log_batch(notes)
        if batch and commit:
            # Safe: each action is complete in itself (one savepoint each),
            # and a batch lost to a crash is still due next run.
            commit_unless_testing(self.env.cr)
        if only is None:
            remaining = self._count_due_timers(now) if len(rows) > batch_size else 0
            self.env["ir.cron"]._notify_progress(done=len(batch), remaining=remaining)
        return len(batch)

    @api.model
    def _send_drop_warnings(self, now, limit, only=None, commit=True):
        domain = [("drop_warning_due_at", "<=", now)]
        if only is not None:
            domain.append(("id", "in", only.ids))
        due = self.search(domain, order="drop_warning_due_at", limit=limit)
        for deployment in due:
            try:
                with self.env.cr.savepoint():
                    deployment._warn_before_drop(now)
            except Exception:
                # One bad record never stops the batch; the next run retries.
                _logger.exception("Drop warning of deployment %s failed", deployment.id)
                continue
            if commit:
                # Safe: each warning is complete in itself.
                commit_unless_testing(self.env.cr)

    def _due_drop_warnings(self, now):
        """The lead times whose warning is due now and not sent yet."""
        return [
            lead
            for lead in self._pending_drop_warnings()
            if self.next_drop_at - lead <= now
        ]

    def _warn_before_drop(self, now):
        """Warn of the due lead times; each is sent once per drop time, all
        in the deployment's one warning activity."""
        self.ensure_one()
        due = self._due_drop_warnings(now)
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
        values = self._drop_warning_values(now)
        warning = self._drop_warnings()
        if not warning:
            self.sudo().activity_schedule(DROP_WARNING, **values)
            return
        # One warning kept true, not one more per lead time: a pile of them,
        # each with another time, tells the user nothing.
        warning[1:].unlink()
        warning = warning[:1]
        new_user = warning.user_id.id != values["user_id"]
        warning.write(values)
        if not new_user and warning.user_id != self.env.user:
            # As for a new activity: its user hears of the later warning
            # (a new user is notified by the write).
            warning.action_notify()

    def _drop_warning_values(self, now):
        """Summary, note, deadline and user of the warning before drop."""
        return {
            "summary": self.env._(
                "%(name)s will be dropped %(when)s",
                name=self.name,
                when=_relative(self.next_drop_at - now, self.env),
            ),
            "note": self.env._(
                "The drop timer of scope %(scope)s removes this deployment and "
                "everything it runs at %(due)s UTC. Use Keep Awake to postpone it, "
                "or ask a manager for Drop Protection.",
                scope=self.scope_id.name,
                due=fields.Datetime.to_string(self.next_drop_at),
            ),
            "date_deadline": self.next_drop_at.date(),
            # The warning goes to the responsible user, whoever runs the timer.
            "user_id": (self.user_id or self.create_uid).id,
        }

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
    def _fetch_due_timers(self, now, limit, only=None):
        """(id, verb) of due deployments (of ``only`` when given), oldest
        first; drop wins over pause."""
        self.flush_model()
        where = self._due_timers_where(now)
        if only is not None:
            where = SQL("%s AND id IN %s", where, tuple(only.ids) or (0,))
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
                where=where,
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
        """Run the due action and block the timer for an hour (whether the
        action started, was refused or failed); returns the chatter note
        saying what the timer did. None when another transaction changed
        the deployment meanwhile: it is left as it was, to the next run.
        Never raises: one deployment never stops the batch."""
        self.ensure_one()
        due_at = self.next_drop_at if verb == "drop" else self.next_pause_at
        seconds = self.scope_id[f"deployment_{verb}_after_seconds"]
        timer = self.env._(
            "%(verb)s timer of scope %(scope)s (%(after)s after deploy, due at "
            "%(due)s UTC)",
            verb=verb.capitalize(),
            scope=self.scope_id.name,
            after=format_duration(seconds, self.env),
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
                self._set_lifecycle(
                    timer_blocked_until=now + TIMER_RETRY_DELAY, timer_refusal=False
                )
            return self.env._(
                "Automatic %(verb)s started by the %(timer)s, %(late)s s after it "
                "was due.",
                verb=verb,
                timer=timer,
                late=late,
            )
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            # A user acted on it meanwhile: the next run sees what they did.
            _logger.info("Timer: deployment %s changed meanwhile; next run", self.id)
            self.invalidate_recordset()
            return None
        except UserError as error:
            reason = error.args[0]
            refusal = self.env._(
                "%(verb)s refused: %(reason)s", verb=verb, reason=reason.rstrip(".")
            )
        except Exception as error:
            _logger.exception("Timer: %s of deployment %s failed", verb, self.id)
            reason = self.env._("unexpected error: %s", safe_error_text(error))
            refusal = self.env._(
                "%(verb)s failed: %(error)s", verb=verb, error=safe_error_text(error)
            )
        self.invalidate_recordset()
        try:
            with self.env.cr.savepoint():
                # Kept for the deployment's Timers, which say what blocks
                # the timer rather than how long ago it was due.
                self._set_lifecycle(
                    timer_blocked_until=now + TIMER_RETRY_DELAY, timer_refusal=refusal
                )
        except Exception:
            # Not even blocked: the next run tries it again.
            _logger.exception("Timer: deployment %s could not be blocked", self.id)
            return None
        return self.env._(
            "Automatic %(verb)s by the %(timer)s was refused: %(error)s "
            "It will be tried again in an hour.",
            verb=verb,
            timer=timer,
            error=reason,
        )
