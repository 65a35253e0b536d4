"""The timers at scale: moved timers planned once per transaction, the cron
firing a batch in one savepoint with a few queries per deployment, rows
another transaction holds left to it, a scope change of many deployments
moved in queue jobs."""

from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo import SUPERUSER_ID, fields
from odoo.tests import tagged
from odoo.tools import mute_logger

from ..models import eyrie_scope
from .common import EyrieCase
from .queue_jobs import queued, run_queue_jobs
from .test_errors_and_locks import CommittedCase

T0 = datetime(2026, 5, 4, 9, 0, 0)
HOUR = 3600
DAY = 24 * HOUR
# The budget: SQL queries per due deployment, the batch's own
# (fetch, lock, chatter notes, planning the timer jobs) included.
QUERIES_PER_DUE = 6


@tagged("post_install", "-at_install")
class TestTimerBatches(EyrieCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scope.write(
            {
                "deployment_pause_after_seconds": HOUR,
                "deployment_drop_after_seconds": 7 * DAY,
                "keep_awake_seconds": 4 * HOUR,
                "drop_warning_hours": "48, 2",
            }
        )

    def _deployed_at(self, when, count, prefix="batch"):
        """``count`` deployments as a deploy leaves them at ``when`` (the
        dry-run cluster holds nothing: no job needed), their timer jobs
        planned."""
        deployments = self.env["eyrie.deployment"].create(
            [
                {
                    "name": f"{prefix}-{index}",
                    "deployment_type": "odoo",
                    "scope_id": self.scope.id,
                    "user_id": self.user.id,
                }
                for index in range(count)
            ]
        )
        deployments._set_lifecycle(
            repository_state="deploy", state="deploy", deployed_at=when
        )
        self._flush_tracking()
        return deployments

    def _pause_jobs(self, deployments):
        return self.env["eyrie.job"].search(
            [("deployment_id", "in", deployments.ids), ("action", "=", "pause")]
        )

    def test_moved_timers_are_planned_once_per_transaction(self):
        first, second = self._deployed_at(T0, 2)
        calls = []
        moved = type(first)._on_timers_moved

        def on_timers_moved(deployments):
            calls.append(set(deployments.ids))
            return moved(deployments)

        self.patch(type(first), "_on_timers_moved", on_timers_moved)
        planned = queued(self.env, "_run_due_timer")
        with freeze_time(T0 + timedelta(minutes=10)):
            first.action_keep_awake()
            second.action_keep_awake()
            # Nothing planned yet: the transaction has not committed.
            self.assertEqual(calls, [])
            self.assertEqual(
                set(queued(self.env, "_run_due_timer").mapped("eta")),
                {T0 + timedelta(hours=1)},
            )
            self._flush_tracking()
        # Both at once, each timer job moved to its new time, still one each.
        self.assertEqual(calls, [{first.id, second.id}])
        jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(jobs, planned)
        self.assertEqual(set(jobs.mapped("eta")), {T0 + timedelta(hours=5)})
        self.assertEqual(
            set(jobs.mapped("identity_key")),
            {
                f"eyrie.timer:{first.id}:2026-05-04 14:00:00",
                f"eyrie.timer:{second.id}:2026-05-04 14:00:00",
            },
        )

    def test_timer_jobs_of_many_deployments_in_a_few_queries(self):
        deployments = self._deployed_at(T0, 12)

        def queries_to_plan(moved):
            # Their timers move by an hour (Keep Awake, as a deploy would).
            moved._set_lifecycle(timer_extension_seconds=HOUR)
            self.env.flush_all()
            before = self.env.cr.sql_log_count
            moved._plan_timer_jobs()
            self.env.flush_all()
            return self.env.cr.sql_log_count - before

        # As many queries for 10 deployments as for 2: one search of their
        # timer jobs, one update that moves them.
        self.assertEqual(
            queries_to_plan(deployments[10:]), queries_to_plan(deployments[:10])
        )
        jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(len(jobs), 12)
        self.assertEqual(set(jobs.mapped("eta")), {T0 + timedelta(hours=2)})
        self.assertEqual(jobs.mapped("user_id").ids, [SUPERUSER_ID])
        self.assertEqual(set(jobs.mapped("channel")), {"root.eyrie.timers"})

    def test_a_timer_job_planned_twice_is_kept_once(self):
        deployment = self._deployed_at(T0, 1)
        # Two transactions planned it at once, each with its job.
        deployment._delay_timer_jobs({deployment.id: T0 + timedelta(hours=1)})
        self.assertEqual(len(queued(self.env, "_run_due_timer")), 2)
        deployment._plan_timer_jobs()
        job = queued(self.env, "_run_due_timer")
        self.assertEqual(len(job), 1)
        self.assertEqual(
            job.identity_key, f"eyrie.timer:{deployment.id}:2026-05-04 10:00:00"
        )

    def test_cron_fires_a_batch_in_a_few_queries_per_deployment(self):
        deployments = self._deployed_at(T0, 40)
        before = self.env.cr.sql_log_count
        with freeze_time(T0 + timedelta(hours=1, seconds=30)):
            fired = self.env["eyrie.deployment"]._cron_apply_timers()
            # What the batch's commit does: its timer jobs follow.
            self._flush_tracking()
        queries = self.env.cr.sql_log_count - before
        self.assertEqual(fired, 40)
        self.assertLessEqual(queries / 40, QUERIES_PER_DUE, f"{queries} queries")
        # Each one paused once, by the timer, noted in its chatter, blocked
        # for an hour, its timer job moved to its next warning.
        jobs = self._pause_jobs(deployments)
        self.assertEqual(jobs.deployment_id, deployments)
        self.assertEqual(len(jobs), 40)
        self.assertEqual(set(jobs.mapped("trigger")), {"timer"})
        self.assertEqual(set(deployments.mapped("state")), {"pausing"})
        self.assertEqual(
            set(deployments.mapped("timer_blocked_until")),
            {T0 + timedelta(hours=2, seconds=30)},
        )
        for deployment in deployments:
            self.assertIn(
                "Automatic pause started by the Pause timer of scope Test scope "
                "(1 h after deploy, due at 2026-05-04 10:00:00 UTC), 30 s after it "
                "was due.",
                self._messages(deployment),
            )
        timer_jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(len(timer_jobs), 40)
        self.assertEqual(
            set(timer_jobs.mapped("eta")),
            {T0 + timedelta(days=7) - timedelta(hours=48)},
        )

    def test_one_refused_and_one_failing_do_not_stop_the_batch(self):
        deployments = self._deployed_at(T0, 5)
        refused, failing = deployments[1], deployments[3]
        refused.deployment_pause_book_id = False
        dispatch = type(failing)._dispatch

        def broken_dispatch(deployment, verb, **arguments):
            if deployment == failing:
                raise RuntimeError("the cluster is on fire")
            return dispatch(deployment, verb, **arguments)

        self.patch(type(failing), "_dispatch", broken_dispatch)
        with (
            freeze_time(T0 + timedelta(hours=1)),
            mute_logger(
                "odoo.addons.eyrie_deployment.models.eyrie_deployment_timer_cron"
            ),
        ):
            self.assertEqual(self.env["eyrie.deployment"]._cron_apply_timers(), 5)
            self._flush_tracking()
        started = deployments - refused - failing
        self.assertEqual(set(started.mapped("state")), {"pausing"})
        # The batch was tried again one by one: still one job each.
        self.assertEqual(self._pause_jobs(deployments).deployment_id, started)
        self.assertEqual(len(self._pause_jobs(deployments)), 3)
        self.assertFalse(started.filtered("timer_refusal"))
        self.assertIn("has no Pause Book", refused.timer_refusal)
        self.assertEqual(
            failing.timer_refusal, "pause failed: RuntimeError: the cluster is on fire"
        )
        for deployment in refused | failing:
            self.assertEqual(deployment.state, "deploy")
            self.assertEqual(deployment.timer_blocked_until, T0 + timedelta(hours=2))
            self.assertIn(
                "It will be tried again in an hour.", self._messages(deployment)
            )
        # Blocked for an hour: the next run has nothing to do.
        self.assertEqual(self._cron_at(T0 + timedelta(hours=1, minutes=5)), 0)

    def _cron_at(self, when):
        with freeze_time(when):
            return self.env["eyrie.deployment"]._cron_apply_timers()

    def test_a_scope_change_of_many_deployments_moves_them_in_queue_jobs(self):
        self.patch(eyrie_scope, "TIMERS_MOVED_INLINE", 2)
        self.patch(eyrie_scope, "TIMERS_MOVED_JOB_SIZE", 2)
        deployments = self._deployed_at(T0, 3)
        self.scope.deployment_pause_after_seconds = 2 * HOUR
        self._flush_tracking()
        # Stored at once: the cron and the timer jobs apply the new times.
        self.assertEqual(
            set(deployments.mapped("next_pause_at")), {T0 + timedelta(hours=2)}
        )
        # Their timer jobs follow in queue jobs of the timers' channel.
        self.assertEqual(
            set(queued(self.env, "_run_due_timer").mapped("eta")),
            {T0 + timedelta(hours=1)},
        )
        moves = queued(self.env, "_replan_timers")
        self.assertEqual(
            sorted(len(move.records) for move in moves), [1, 2], "jobs of 2 at most"
        )
        self.assertEqual(
            self.env["eyrie.deployment"].union(*(move.records for move in moves)),
            deployments,
        )
        self.assertEqual(set(moves.mapped("channel")), {"root.eyrie.timers"})
        self.assertEqual(moves.mapped("user_id").ids, [SUPERUSER_ID])
        run_queue_jobs(self.env, also=["_replan_timers"])
        jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(len(jobs), 3)
        self.assertEqual(set(jobs.mapped("eta")), {T0 + timedelta(hours=2)})


@tagged("post_install", "-at_install")
class TestTimersSkipHeldRows(CommittedCase):
    """Deployments another transaction holds (a user's action, a timer job,
    the cron on another server) are left to it, without waiting for it."""

    SCOPE_VALUES = {"deployment_pause_after_seconds": HOUR, "allow_drop": False}

    def test_a_held_deployment_is_left_to_its_transaction(self):
        with self.registry.cursor() as cr:
            env = self._env(cr)
            free = self._create(env, "timer-free")
            held = self._create(env, "timer-held")
            (free | held)._set_lifecycle(
                repository_state="deploy",
                state="deploy",
                deployed_at=fields.Datetime.now() - timedelta(hours=2),
            )
        free_id, held_id = self.deployment_ids
        holder = self.registry.cursor()
        self.addCleanup(holder.close)
        holder.execute(
            "SELECT id FROM eyrie_deployment WHERE id = %s FOR NO KEY UPDATE",
            [held_id],
        )
        with self.registry.cursor() as cr:
            # Waiting for the holder would fail the test, not hang it.
            cr.execute("SET LOCAL lock_timeout = '5s'")
            fired = self._env(cr)["eyrie.deployment"]._apply_due_timers(
                batch_size=200, commit=False
            )
            self.assertEqual(fired, 1)
            deployments = self._env(cr)["eyrie.deployment"]
            self.assertEqual(deployments.browse(free_id).state, "pausing")
            held = deployments.browse(held_id)
            self.assertEqual(held.state, "deploy")
            self.assertFalse(held.timer_blocked_until)
            self.assertFalse(held.timer_refusal)
        holder.rollback()
        with self.registry.cursor() as cr:
            deployments = self._env(cr)["eyrie.deployment"]
            self.assertEqual(
                deployments._apply_due_timers(batch_size=200, commit=False), 1
            )
            self.assertEqual(deployments.browse(held_id).state, "pausing")
