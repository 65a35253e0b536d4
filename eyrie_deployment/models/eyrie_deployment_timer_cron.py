import logging
from collections import defaultdict
from datetime import timedelta

from markupsafe import escape

from odoo import SUPERUSER_ID, api, fields, models
from odoo.exceptions import UserError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tools import SQL, split_every

from odoo.addons.queue_job.job import Job

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
# The ids of the deployments whose timers moved in this transaction, in
# cr.precommit.data: they are planned again once, when it is flushed.
TIMERS_MOVED = "eyrie.timers.moved"
# Timer jobs are planned for at most this many deployments at once (the
# identity key prefixes of one search).
TIMER_PLAN_CHUNK = 1000
# The states of a queue job that has not started: those queue_job's identity
# check looks at, and its partial index on identity_key covers.
NOT_STARTED = ("pending", "enqueued", "wait_dependencies")
# A timer job due this long ago that has not run is lost (cancelled or
# deleted in queue_job's screens): the cron plans it again.
LOST_TIMER_JOB_GRACE = timedelta(minutes=10)


def _timer_key(deployment_id, eta):
    return f"eyrie.timer:{deployment_id}:{fields.Datetime.to_string(eta)}"


class EyrieDeployment(models.Model):
    """The timers. The cron (``_cron_apply_timers``) is the enforcer: each
    run applies whatever is due, in batches, each batch's actions together
    in one savepoint, each deployment in a savepoint of its own when one of
    them fails. Precision comes from one queue job per deployment at its
    next due time (``_plan_timer_jobs``), planned again whenever that time
    moves, once per transaction for all the deployments it moved. Nothing
    sleeps; nothing fires before it is due."""

    _inherit = "eyrie.deployment"

    timer_job_at = fields.Datetime(
        string="Timer Job Planned At",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="When the queue job of this deployment's timers runs next. It may "
        "run before the next timer is due (a deploy or Keep Awake moved the "
        "timer later): it then fires nothing and plans the next one.",
    )

    @api.model
    def _job_run_fields(self):
        return super()._job_run_fields() | {"timer_job_at"}

    def write(self, vals):
        result = super().write(vals)
        if TIMER_INPUTS & vals.keys():
            self._timers_moved()
        return result

    def unlink(self):
        moved = self.env.cr.precommit.data.get(TIMERS_MOVED)
        if moved:
            # Nothing left to plan for them.
            moved.difference_update(self.ids)
        # A dropped deployment has no timer left to fire.
        pending = [
            job_id
            for job_id, _key, state in self._timer_job_rows()
            if state == "pending"
        ]
        # queue_job's records are its managers'; Eyrie handles its own.
        self.env["queue.job"].sudo().browse(pending).unlink()
        return super().unlink()

    @api.model
    def _cron_apply_timers(self, batch_size=200):
        """Pause and drop the deployments whose scope timers are due, and
        send the warnings due; plan again the timer jobs that got lost.
        Returns how many timers fired."""
        fired = self._apply_due_timers(batch_size)
        self._replan_lost_timer_jobs(batch_size)
        return fired

    # ------------------------------------------------------------------
    # What follows the timers when they move
    # ------------------------------------------------------------------

    def _timers_moved(self):
        """The timers of these deployments may have moved: they follow
        (``_on_timers_moved``) when the transaction is flushed for its
        commit, or at its next savepoint, all the deployments it moved at
        once. A deploy, a pause or a batch of the cron writes its
        deployments several times; they are planned again once."""
        precommit = self.env.cr.precommit
        moved = precommit.data.get(TIMERS_MOVED)
        if moved is None:
            moved = precommit.data[TIMERS_MOVED] = set()
            # The timers are the system's, whoever moved them; the writer's
            # user stays the one warnings are not notified to (as before).
            precommit.add(self.browse().sudo()._follow_moved_timers)
        moved.update(self.ids)

    def _follow_moved_timers(self):
        moved = self.browse(sorted(self.env.cr.precommit.data.pop(TIMERS_MOVED, ())))
        # Those this transaction holds in its cache exist (it deleted none
        # of them: ``unlink`` takes them out of the set); only the others
        # are looked up.
        active = self._fields["active"]
        unknown = moved.filtered(lambda d: not self.env.cache.contains(d, active))
        ((moved - unknown) | unknown.exists())._on_timers_moved()
        # Called after the main flush, just before the commit: what it wrote
        # is flushed too (as mail's tracking does).
        self.env.flush_all()

    def _replan_timers_later(self, description):
        """One queue job, in the timers' channel, in which the timers of
        these deployments follow their move (``_replan_timers``)."""
        # As the timers' own jobs: the system's.
        self.with_user(SUPERUSER_ID).sudo().with_delay(
            channel=TIMER_CHANNEL, description=description
        )._replan_timers()

    def _replan_timers(self):
        """Queue job: the timers of these deployments moved (their scope's
        settings changed), their warnings and timer jobs follow."""
        self.exists()._on_timers_moved()

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
        # A deployment never warned has no warning: none to look for (the
        # time warned for is written before the warning is scheduled).
        warned = self.filtered("drop_warned_for")
        if not warned:
            return
        warnings = warned._drop_warnings().grouped("res_id")
        now = fields.Datetime.now()
        withdrawn = {}
        for deployment in warned:
            warning = warnings.get(deployment.id)
            if not warning:
                continue
            if not deployment.active or not deployment.next_drop_at:
                withdrawn[deployment] = (warning, deployment._no_drop_reason())
            elif deployment.drop_warned_for == deployment.next_drop_at:
                # Sent for this very drop time: it is true as it is.
                continue
            elif deployment._due_drop_warnings(now):
                deployment._warn_before_drop(now, warning)
            else:
                withdrawn[deployment] = (
                    warning,
                    self.env._(
                        "the drop moved to %(due)s UTC; the warnings start over "
                        "for that time.",
                        due=fields.Datetime.to_string(deployment.next_drop_at),
                    ),
                )
        if withdrawn:
            self._withdraw_drop_warnings(withdrawn)

    def _withdraw_drop_warnings(self, withdrawn):
        """``withdrawn``: {deployment: (its warning, why it goes)}."""
        # A pending warning of a drop that will not happen is deleted, not
        # marked done: nobody did anything. The chatter says why it went.
        # The warnings are the system's (as _drop_warnings reads them).
        self.env["mail.activity"].sudo().browse(
            [id_ for warning, _reason in withdrawn.values() for id_ in warning.ids]
        ).unlink()
        bodies = {
            deployment.id: self.env._(
                "Drop warning withdrawn: %(reason)s", reason=reason
            )
            for deployment, (_warning, reason) in withdrawn.items()
        }
        # One note per deployment, logged together; by the system, whose
        # warnings they were, whoever moved the timers.
        self.browse(list(bodies)).sudo()._message_log_batch(bodies)

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

    def _timer_job_rows(self):
        """The timer jobs of these deployments that have not started:
        [(queue job id, identity key, state)]."""
        # Their identity keys and states as this transaction has them.
        self.env["queue.job"].flush_model(["identity_key", "state"])
        rows = []
        for ids in split_every(TIMER_PLAN_CHUNK, self.ids):
            # One prefix per deployment: each is a range of queue_job's
            # partial index on identity_key (jobs not started), so this reads
            # their rows only, however many timer jobs wait. In SQL: as a
            # domain, a thousand prefixes take longer to parse than to find.
            self.env.cr.execute(
                SQL(
                    "SELECT id, identity_key, state FROM queue_job "
                    "WHERE state IN %s AND (%s)",
                    NOT_STARTED,
                    SQL(" OR ").join(
                        SQL("identity_key LIKE %s", f"eyrie.timer:{id_}:%")
                        for id_ in ids
                    ),
                )
            )
            rows += self.env.cr.fetchall()
        return rows

    def _needs_timer_job_plan(self, eta, now):
        """Whether this deployment's timer job must be planned for ``eta``
        (its next timer run, or None). A job planned for later than ``eta``
        is moved; one planned for earlier is left as it is: it runs, fires
        nothing that is not due, and plans the next. A deploy, a pause or
        Keep Awake moves the timers later: their job stays, no queue job is
        read or written on the way. One already due runs now and plans the
        next itself."""
        planned = self.timer_job_at
        if not planned:
            return bool(eta)
        return planned > now and bool(eta) and eta < planned

    def _plan_timer_jobs(self):
        """Keep a queue job per deployment, at its next timer or before it
        (``_run_due_timer``), for all these deployments at once: for those
        that need one (``_needs_timer_job_plan``), one search of their timer
        jobs; a job planned for another time is moved to the new one (its eta
        and identity key: the key holds the time), those left over are
        deleted, the missing ones created in one insert."""
        now = fields.Datetime.now()
        etas = {}
        for deployment in self:
            eta = deployment._next_timer_run()
            if deployment._needs_timer_job_plan(eta, now):
                etas[deployment.id] = eta
        for ids in split_every(TIMER_PLAN_CHUNK, list(etas)):
            self.browse(ids)._replan_timer_jobs({id_: etas[id_] for id_ in ids})

    def _replan_timer_jobs(self, etas):
        """Plan the timer jobs of these deployments at ``etas`` ({deployment
        id: eta or None}), whatever they had."""
        # queue_job's records are its managers'; Eyrie handles its own.
        QueueJob = self.env["queue.job"].sudo()
        jobs_of = defaultdict(list)
        for row in self._timer_job_rows():
            jobs_of[int(row[1].split(":")[1])].append(row)
        missing, stale = {}, []
        for deployment in self:
            eta = etas.get(deployment.id)
            key = _timer_key(deployment.id, eta) if eta else None
            jobs = jobs_of[deployment.id]
            kept = next((id_ for id_, job_key, _state in jobs if job_key == key), None)
            if key and not kept:
                # A job handed to a runner already is left to it: it
                # applies only what is due.
                kept = next(
                    (id_ for id_, _key, state in jobs if state == "pending"), None
                )
                if kept:
                    # The runner hears of it (queue_job's trigger), as of
                    # a retry queue_job postpones.
                    QueueJob.browse(kept).write({"eta": eta, "identity_key": key})
                else:
                    missing[deployment.id] = eta
            # Planned twice (by two transactions at once), or nothing
            # to plan any more.
            stale += [
                id_ for id_, _key, state in jobs if id_ != kept and state == "pending"
            ]
        QueueJob.browse(stale).unlink()
        self.browse(list(missing))._delay_timer_jobs(missing)
        self._write_timer_job_at(etas)

    def _write_timer_job_at(self, etas):
        """Record when each deployment's timer job runs ({id: eta or None}):
        in one statement, as bookkeeping (no write date, nothing computed
        from it), after the transaction's flush."""
        if not etas:
            return
        self.env.cr.execute(
            SQL(
                "UPDATE eyrie_deployment AS d SET timer_job_at = v.at "
                "FROM (VALUES %s) AS v(id, at) WHERE d.id = v.id",
                SQL(", ").join(
                    SQL("(%s, %s::timestamp)", id_, eta or None)
                    for id_, eta in etas.items()
                ),
            )
        )
        # As written: the next planning in this transaction reads nothing.
        self.env.cache.update(
            self.browse(list(etas)),
            self._fields["timer_job_at"],
            [eta or None for eta in etas.values()],
        )

    @api.model
    def _replan_lost_timer_jobs(self, limit):
        """Plan again the timer jobs due for a while that never ran: lost
        in queue_job's screens (cancelled, deleted). Until then the cron
        applies their timers, minutes late at most."""
        # Archived ones too: their job, if any, is left over. Not those a job
        # runs for: their timers move when it ends, and the next run sees
        # them.
        lost = self.with_context(active_test=False).search(
            [
                ("timer_job_at", "<", fields.Datetime.now() - LOST_TIMER_JOB_GRACE),
                ("state", "not in", IN_FLIGHT_STATES),
            ],
            limit=limit,
        )
        if not lost:
            return
        _logger.info("Timers: planning %s lost timer jobs again", len(lost))
        now = fields.Datetime.now()
        etas = {}
        for deployment in lost:
            eta = deployment._next_timer_run()
            # Due now at the latest: planned in the past, it would count as
            # lost again at the next run.
            etas[deployment.id] = eta and max(eta, now)
        # As the timers' own planning: the system's.
        lost.sudo()._replan_timer_jobs(etas)

    def _delay_timer_jobs(self, etas):
        """Create the timer queue jobs of these deployments, at ``etas``
        ({deployment id: eta}), in one insert. queue_job's with_delay()
        would search the identity key and then the uuid before each insert:
        ``_plan_timer_jobs`` searched them all at once."""
        if not self:
            return
        # As the cron did: the automatic actions are the system's.
        deployments = self.with_user(SUPERUSER_ID).sudo()
        jobs = [
            Job(
                deployment._run_due_timer,
                eta=etas[deployment.id],
                channel=TIMER_CHANNEL,
                identity_key=_timer_key(deployment.id, etas[deployment.id]),
                description=self.env._("Eyrie timers of %s", deployment.name),
            )
            for deployment in deployments
        ]
        QueueJob = self.env["queue.job"]
        # The values Job.store() creates its record with; queue_job lets
        # them be written with its sentinel only, and its records are its
        # managers' (sudo).
        QueueJob.with_context(_job_edit_sentinel=QueueJob.EDIT_SENTINEL).sudo().create(
            [job._store_values(create=True) for job in jobs]
        )

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
        # This job has started: the next one is planned when it commits,
        # with whatever it fired.
        self._write_timer_job_at({self.id: None})
        self._timers_moved()

    # ------------------------------------------------------------------
    # Applying what is due
    # ------------------------------------------------------------------

    @api.model
    def _apply_due_timers(self, batch_size, only=None, commit=True):
        """Send the due warnings and fire the due pauses and drops, of every
        deployment or ``only`` those; returns how many were due (fired,
        refused, or changed meanwhile), but those another transaction holds.
        ``commit``: the cron's batches are committed as they go; a
        queue job commits when it ends."""
        now = fields.Datetime.now()
        self._send_drop_warnings(now, limit=batch_size, only=only, commit=commit)
        rows = self._fetch_due_timers(now, limit=batch_size + 1, only=only)
        verbs = dict(rows[:batch_size])
        notes, held = self.browse(list(verbs))._fire_timers(verbs, now)
        if notes:
            # One chatter note per deployment, logged together, without
            # notifying every follower.
            self.browse(list(notes))._message_log_batch(
                {deployment_id: escape(note) for deployment_id, note in notes.items()}
            )
        if verbs and commit:
            # Safe: the batch's actions are complete in themselves (one
            # savepoint, or one per deployment), and a batch lost to a crash
            # is still due next run.
            commit_unless_testing(self.env.cr)
        if only is None:
            remaining = self._count_due_timers(now) if len(rows) > batch_size else 0
            self.env["ir.cron"]._notify_progress(done=len(verbs), remaining=remaining)
        # Those another transaction holds are not counted: theirs to finish.
        return len(verbs) - len(held)

    @api.model
    def _send_drop_warnings(self, now, limit, only=None, commit=True):
        domain = [("drop_warning_due_at", "<=", now)]
        if only is not None:
            domain.append(("id", "in", only.ids))
        due = self.search(domain, order="drop_warning_due_at", limit=limit)
        if not due:
            return
        warnings = due._drop_warnings().grouped("res_id")
        no_warning = self.env["mail.activity"]
        for deployment in due:
            try:
                with self.env.cr.savepoint():
                    deployment._warn_before_drop(
                        now, warnings.get(deployment.id, no_warning)
                    )
            except Exception:
                # One bad record never stops the batch; the next run retries.
                _logger.exception("Drop warning of deployment %s failed", deployment.id)
        if commit:
            # Safe: each warning is complete in itself (its savepoint).
            commit_unless_testing(self.env.cr)

    def _due_drop_warnings(self, now):
        """The lead times whose warning is due now and not sent yet."""
        return [
            lead
            for lead in self._pending_drop_warnings()
            if self.next_drop_at - lead <= now
        ]

    def _warn_before_drop(self, now, warning):
        """Warn of the due lead times; each is sent once per drop time, all
        in the deployment's one warning activity (``warning``: the drop
        warnings it has)."""
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
        if not warning:
            # The warning is the system's, whoever moves the timers.
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

    def _fire_timers(self, verbs, now):
        """Run the due actions of these deployments (``verbs``: {id: 'pause'
        or 'drop'}) and block their timers for an hour. Returns ({id: the
        chatter note saying what the timer did}, the deployments left to
        the transactions that hold them). All of them in one savepoint, with
        one lock and one flush; when one action is refused or fails, each
        runs again in a savepoint of its own (``_fire_timer``), so that one
        deployment never stops the others."""
        deployments = self._lock_free_rows()
        if deployments is None:
            # One changed since this transaction began: the batch would fail
            # on it. Each locks its own row, with its action.
            deployments = self
        elif len(deployments) > 1:
            # Read before the actions: what the timers were when they fired.
            timers = {d.id: d._timer_description(verbs[d.id]) for d in deployments}
            try:
                with self.env.cr.savepoint():
                    for verb in ("drop", "pause"):
                        group = deployments.filtered(
                            lambda d, verb=verb: verbs[d.id] == verb
                        )
                        if group:
                            group._run_action(verb, trigger="timer")
                    deployments._set_lifecycle(
                        timer_blocked_until=now + TIMER_RETRY_DELAY,
                        timer_refusal=False,
                    )
            except Exception:  # noqa: BLE001 - each says why below
                # Rolled back: which one, and why, is for each to say below.
                _logger.info("Timers: a batch action failed; one at a time")
            else:
                notes = {}
                for deployment in deployments:
                    verb = verbs[deployment.id]
                    timer, late = timers[deployment.id]
                    deployment._log_timer_fired(verb, late)
                    notes[deployment.id] = deployment._timer_started_note(
                        verb, timer, late
                    )
                return notes, self - deployments
        notes = {}
        for deployment in deployments:
            note = deployment._fire_timer(verbs[deployment.id], now)
            if note:
                notes[deployment.id] = note
        return notes, self - deployments

    def _lock_free_rows(self):
        """These deployments but those another transaction holds (a user's
        action, a timer job, the cron on another server), their rows locked
        for this transaction: the others are theirs to finish, and the next
        run sees what they did. None when one of them changed since this
        transaction began (PostgreSQL refuses to lock it)."""
        if not self:
            return self
        try:
            # Not flushed: nothing is written, nothing to clear on rollback.
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        "SELECT id FROM eyrie_deployment WHERE id IN %s "
                        "FOR NO KEY UPDATE SKIP LOCKED",
                        tuple(self.ids),
                    ),
                    log_exceptions=False,
                )
                locked = {row[0] for row in self.env.cr.fetchall()}
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            return None
        return self.filtered(lambda d: d.id in locked)

    def _timer_description(self, verb):
        """(the timer that fires, e.g. ``Pause timer of scope X (1 h after
        deploy, due at ...)``, and how many seconds late it fires)."""
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
        return timer, late

    def _log_timer_fired(self, verb, late):
        _logger.info(
            "Timer: %s of deployment %s fired %s s after it was due",
            verb,
            self.id,
            late,
        )

    def _timer_started_note(self, verb, timer, late):
        return self.env._(
            "Automatic %(verb)s started by the %(timer)s, %(late)s s after it was due.",
            verb=verb,
            timer=timer,
            late=late,
        )

    def _fire_timer(self, verb, now):
        """Run the due action and block the timer for an hour (whether the
        action started, was refused or failed); returns the chatter note
        saying what the timer did. None when another transaction changed
        the deployment meanwhile: it is left as it was, to the next run.
        Never raises: one deployment never stops the batch."""
        self.ensure_one()
        timer, late = self._timer_description(verb)
        self._log_timer_fired(verb, late)
        try:
            with self.env.cr.savepoint():
                self._run_action(verb, trigger="timer")
                self._set_lifecycle(
                    timer_blocked_until=now + TIMER_RETRY_DELAY, timer_refusal=False
                )
            return self._timer_started_note(verb, timer, late)
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
