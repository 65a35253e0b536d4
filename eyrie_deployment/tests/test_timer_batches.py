"""The timers at scale: moved timers planned once per transaction, the cron
firing a batch in one savepoint with a few queries per deployment, rows
another transaction holds left to it, a scope change of many deployments
moved in queue jobs."""

import importlib.util
from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo import SUPERUSER_ID, fields
from odoo.tests import tagged
from odoo.tools import mute_logger
from odoo.tools.misc import file_path

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
            self._flush_tracking()
            self.assertEqual(calls, [{first.id, second.id}])
        # Both at once. Moved later: their timer jobs stay where they were,
        # no queue job touched.
        self.assertEqual(queued(self.env, "_run_due_timer"), planned)
        self.assertEqual(set(planned.mapped("eta")), {T0 + timedelta(hours=1)})
        # At that time each fires nothing, and plans the next at the new time.
        with freeze_time(T0 + timedelta(hours=1)):
            self.assertEqual(run_queue_jobs(self.env, timers=True), 2)
        self.assertEqual(
            set(first.mapped("state") + second.mapped("state")), {"deploy"}
        )
        jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(len(jobs), 2)
        self.assertEqual(set(jobs.mapped("eta")), {T0 + timedelta(hours=5)})
        self.assertEqual(
            set(jobs.mapped("identity_key")),
            {
                f"eyrie.timer:{first.id}:2026-05-04 14:00:00",
                f"eyrie.timer:{second.id}:2026-05-04 14:00:00",
            },
        )
        self.assertEqual(
            set((first | second).mapped("timer_job_at")), {T0 + timedelta(hours=5)}
        )

    def test_timer_jobs_of_many_deployments_in_a_few_queries(self):
        deployments = self._deployed_at(T0, 12)

        def queries_to_plan(moved):
            # Their timers move half an hour earlier (as a shorter timer of
            # their scope would).
            moved._set_lifecycle(deployed_at=T0 - timedelta(minutes=30))
            self.env.flush_all()
            before = self.env.cr.sql_log_count
            moved._plan_timer_jobs()
            self.env.flush_all()
            return self.env.cr.sql_log_count - before

        # As many queries for 10 deployments as for 2: one search of their
        # timer jobs, one update that moves them, one that records it.
        with freeze_time(T0):
            self.assertEqual(
                queries_to_plan(deployments[10:]), queries_to_plan(deployments[:10])
            )
        jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(len(jobs), 12)
        self.assertEqual(set(jobs.mapped("eta")), {T0 + timedelta(minutes=30)})
        self.assertEqual(jobs.mapped("user_id").ids, [SUPERUSER_ID])
        self.assertEqual(set(jobs.mapped("channel")), {"root.eyrie.timers"})
        self.assertEqual(
            set(deployments.mapped("timer_job_at")), {T0 + timedelta(minutes=30)}
        )

    def test_timers_moved_later_touch_no_queue_job(self):
        deployments = self._deployed_at(T0, 10)
        deployments._set_lifecycle(timer_extension_seconds=HOUR)
        self.env.flush_all()
        before = self.env.cr.sql_log_count
        with freeze_time(T0 + timedelta(minutes=5)):
            deployments._plan_timer_jobs()
            self.env.flush_all()
        self.assertEqual(self.env.cr.sql_log_count - before, 0)
        self.assertEqual(
            set(queued(self.env, "_run_due_timer").mapped("eta")),
            {T0 + timedelta(hours=1)},
        )

    def test_a_timer_job_planned_twice_is_kept_once(self):
        deployment = self._deployed_at(T0, 1)
        # Two transactions planned it at once, each with its job.
        deployment._delay_timer_jobs({deployment.id: T0 + timedelta(hours=1)})
        self.assertEqual(len(queued(self.env, "_run_due_timer")), 2)
        # The first to run fires the pause and plans the next in the other.
        with freeze_time(T0 + timedelta(hours=1)):
            run_queue_jobs(self.env, timers=True)
        self.assertEqual(deployment.repository_state, "pause")
        job = queued(self.env, "_run_due_timer")
        self.assertEqual(len(job), 1)
        self.assertEqual(job.eta, deployment.drop_warning_due_at)
        self.assertEqual(deployment.timer_job_at, job.eta)

    def test_the_upgrade_records_when_each_timer_job_runs(self):
        """18.0.8.0.0: what the timer jobs planned before hold."""
        deployments = self._deployed_at(T0, 2)
        planned = queued(self.env, "_run_due_timer")
        self.env.flush_all()
        self.env.cr.execute("UPDATE eyrie_deployment SET timer_job_at = NULL")
        self.env.invalidate_all()
        spec = importlib.util.spec_from_file_location(
            "eyrie_migration_18_0_8",
            file_path("eyrie_deployment/migrations/18.0.8.0.0/post-migration.py"),
        )
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        migration.migrate(self.env.cr, "18.0.7.0.0")
        self.env.invalidate_all()
        self.assertEqual(len(planned), 2)
        self.assertEqual(
            set(deployments.mapped("timer_job_at")), {T0 + timedelta(hours=1)}
        )

    def test_a_lost_timer_job_is_planned_again_by_the_cron(self):
        deployment = self._deployed_at(T0, 1)
        # Deleted in queue_job's screens.
        queued(self.env, "_run_due_timer").unlink()
        with freeze_time(T0 + timedelta(minutes=30)):
            self.env["eyrie.deployment"]._cron_apply_timers()
        self.assertFalse(queued(self.env, "_run_due_timer"), "not lost yet")
        with freeze_time(T0 + timedelta(hours=1, minutes=5)):
            # Its pause is fired by the cron itself, minutes late at most.
            self.assertEqual(self.env["eyrie.deployment"]._cron_apply_timers(), 1)
            self._flush_tracking()
            run_queue_jobs(self.env)
        self.assertEqual(deployment.repository_state, "pause")
        self.assertFalse(queued(self.env, "_run_due_timer"))
        with freeze_time(T0 + timedelta(hours=1, minutes=11)):
            self.env["eyrie.deployment"]._cron_apply_timers()
            self._flush_tracking()
        job = queued(self.env, "_run_due_timer")
        self.assertEqual(len(job), 1)
        self.assertEqual(job.eta, deployment.drop_warning_due_at)

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
        # Their timer jobs, due, are left to run: each fires nothing (the
        # pause runs) and plans the next, the warning before the drop.
        timer_jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(len(timer_jobs), 40)
        self.assertEqual(set(timer_jobs.mapped("eta")), {T0 + timedelta(hours=1)})
        with freeze_time(T0 + timedelta(hours=1, seconds=31)):
            run_queue_jobs(self.env, timers=True)
        self.assertEqual(set(deployments.mapped("state")), {"pause"})
        self.assertEqual(len(self._pause_jobs(deployments)), 40)
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
        with freeze_time(T0 + timedelta(minutes=5)):
            self.scope.deployment_pause_after_seconds = HOUR // 2
            self._flush_tracking()
        # Stored at once: the cron and the timer jobs apply the new times.
        self.assertEqual(
            set(deployments.mapped("next_pause_at")), {T0 + timedelta(minutes=30)}
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
        with freeze_time(T0 + timedelta(minutes=6)):
            run_queue_jobs(self.env, also=["_replan_timers"])
        jobs = queued(self.env, "_run_due_timer")
        self.assertEqual(len(jobs), 3)
        self.assertEqual(set(jobs.mapped("eta")), {T0 + timedelta(minutes=30)})


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
