from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo.tests import tagged

from .common import EyrieCase

T0 = datetime(2026, 3, 2, 9, 0, 0)


@tagged("post_install", "-at_install")
class TestTimers(EyrieCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scope.write(
            {
                "deployment_pause_after_seconds": 3600,
                "deployment_drop_after_seconds": 86400,
            }
        )

    def _deploy_at(self, when, name="acme"):
        with freeze_time(when):
            return self._deployed(name)

    def _cron(self, when, **kwargs):
        with freeze_time(when):
            return self.env["eyrie.deployment"]._cron_apply_timers(**kwargs)

    def test_due_dates_follow_deploy_and_scope(self):
        deployment = self._deploy_at(T0)
        self.assertEqual(deployment.deployed_at, T0)
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(hours=1))
        self.assertEqual(deployment.next_drop_at, T0 + timedelta(days=1))
        self.scope.allow_drop = False
        self.assertFalse(deployment.next_drop_at)
        self.scope.deployment_pause_after_seconds = 0
        self.assertFalse(deployment.next_pause_at)

    def test_pause_timer(self):
        deployment = self._deploy_at(T0)
        self.assertEqual(self._cron(T0 + timedelta(minutes=59)), 0)
        self.assertEqual(deployment.state, "deploy")

        self.assertEqual(self._cron(T0 + timedelta(hours=1)), 1)
        self.assertEqual(deployment.state, "pausing")
        job = deployment.active_job_id
        self.assertEqual((job.action, job.trigger), ("pause", "timer"))
        self.assertIn("Pause timer of scope Test scope", self._messages(deployment))
        self.assertIn("3600 s after deploy", self._messages(deployment))
        with freeze_time(T0 + timedelta(hours=1, minutes=1)):
            self._run_jobs()
        self.assertEqual(deployment.repository_state, "pause")
        self.assertFalse(deployment.next_pause_at)
        # A paused deployment is not paused again.
        self.assertEqual(self._cron(T0 + timedelta(hours=2)), 0)

    def test_drop_timer_applies_to_paused_deployments(self):
        deployment = self._deploy_at(T0)
        with freeze_time(T0 + timedelta(minutes=5)):
            deployment.action_pause()
            self._run_jobs()
        self.assertEqual(self._cron(T0 + timedelta(hours=23)), 0)
        self.assertEqual(self._cron(T0 + timedelta(days=1)), 1)
        self.assertEqual(deployment.active_job_id.action, "drop")
        self.assertIn("Drop timer", self._messages(deployment))
        self._run_jobs()
        self.assertFalse(deployment.exists())

    def test_drop_wins_when_both_are_due(self):
        deployment = self._deploy_at(T0)
        self.assertEqual(self._cron(T0 + timedelta(days=2)), 1)
        self.assertEqual(deployment.active_job_id.action, "drop")
        self.assertEqual(
            len(deployment.job_ids.filtered(lambda j: j.action == "pause")), 0
        )

    def test_no_drop_timer_without_allow_drop(self):
        self.scope.allow_drop = False
        deployment = self._deploy_at(T0)
        self._cron(T0 + timedelta(days=2))
        self.assertEqual(deployment.active_job_id.action, "pause")

    def test_deployment_with_job_in_flight_waits(self):
        deployment = self._deploy_at(T0)
        with freeze_time(T0 + timedelta(minutes=30)):
            deployment.values = '{"replicas": 2}'
            deployment.action_deploy()
        self.assertEqual(self._cron(T0 + timedelta(hours=2)), 0)
        self.assertEqual(deployment.active_job_id.action, "deploy")
        # The update succeeds: the timer now counts from the new deploy.
        with freeze_time(T0 + timedelta(hours=2, minutes=1)):
            self._run_jobs()
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(hours=3, minutes=1))

    def test_deployment_in_error_stays_subject_to_timers(self):
        deployment = self._deploy_at(T0)
        self._set_book(deployment, "deploy", self.book_broken)
        with freeze_time(T0 + timedelta(minutes=10)):
            deployment.action_deploy()
            self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "error")
        )
        self.assertEqual(self._cron(T0 + timedelta(hours=1)), 1)
        self.assertEqual(deployment.active_job_id.action, "pause")

    def test_failed_automatic_action_retried_once_an_hour(self):
        deployment = self._deploy_at(T0)
        self._set_book(deployment, "pause", self.book_broken)
        self.assertEqual(self._cron(T0 + timedelta(hours=1)), 1)
        with freeze_time(T0 + timedelta(hours=1)):
            self._run_jobs()
        self.assertEqual(deployment.state, "error")
        self.assertEqual(self._cron(T0 + timedelta(hours=1, minutes=5)), 0)
        self.assertEqual(self._cron(T0 + timedelta(hours=1, minutes=59)), 0)
        self.assertEqual(self._cron(T0 + timedelta(hours=2)), 1)
        self.assertEqual(
            len(deployment.job_ids.filtered(lambda j: j.action == "pause")), 2
        )

    def test_refused_automatic_action_is_noted_and_not_retried_at_once(self):
        deployment = self._deploy_at(T0)
        deployment.deployment_pause_book_id = False
        self.scope.deployment_pause_book_id = False
        self.assertEqual(self._cron(T0 + timedelta(hours=1)), 1)
        self.assertIn("was refused", self._messages(deployment))
        self.assertIn("has no Pause Book", self._messages(deployment))
        self.assertEqual(deployment.state, "deploy")
        self.assertEqual(self._cron(T0 + timedelta(hours=1, minutes=5)), 0)

    def test_batches(self):
        deployments = self.env["eyrie.deployment"]
        for index in range(5):
            deployments |= self._deploy_at(
                T0 + timedelta(seconds=index), f"batch-{index}"
            )
        when = T0 + timedelta(hours=1, minutes=1)
        self.assertEqual(self._cron(when, batch_size=2), 2)
        # Oldest due first.
        self.assertEqual(
            set(deployments.filtered(lambda d: d.state == "pausing").mapped("name")),
            {"batch-0", "batch-1"},
        )
        with freeze_time(when):
            self.assertEqual(self.env["eyrie.deployment"]._count_due_timers(when), 3)
        self.assertEqual(self._cron(when, batch_size=2), 2)
        self.assertEqual(self._cron(when, batch_size=2), 1)
        self.assertEqual(self._cron(when, batch_size=2), 0)
        self.assertEqual(set(deployments.mapped("state")), {"pausing"})

    def test_due_filters(self):
        deployment = self._deploy_at(T0)
        Deployment = self.env["eyrie.deployment"]
        with freeze_time(T0 + timedelta(minutes=30)):
            self.assertNotIn(
                deployment, Deployment.search([("is_pause_due", "=", True)])
            )
        with freeze_time(T0 + timedelta(hours=2)):
            self.assertIn(deployment, Deployment.search([("is_pause_due", "=", True)]))
            self.assertNotIn(
                deployment, Deployment.search([("is_drop_due", "=", True)])
            )
            self.assertIn(deployment, Deployment.search([("is_drop_due", "=", False)]))

    def test_timer_cron_record_runs_the_timers(self):
        cron = self.env.ref("eyrie_deployment.ir_cron_deployment_timers")
        self.assertEqual((cron.interval_number, cron.interval_type), (5, "minutes"))
        deployment = self._deploy_at(T0)
        with freeze_time(T0 + timedelta(hours=1)):
            cron.method_direct_trigger()
        self.assertEqual(deployment.state, "pausing")
        self.assertEqual(deployment.active_job_id.trigger, "timer")
