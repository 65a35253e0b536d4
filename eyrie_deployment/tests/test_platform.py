from datetime import datetime, timedelta

from freezegun import freeze_time

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user

from .common import EyrieCase
from .queue_jobs import queued, run_queue_jobs

T0 = datetime(2026, 11, 2, 9, 0, 0)
HOUR = 3600
DAY = 24 * HOUR


class TestPlatformTimers(EyrieCase):
    """Visible timers, keep awake, grace after resume, drop protection and
    warnings, all with frozen time."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scope.write(
            {
                "deployment_pause_after_seconds": 2 * HOUR,
                "deployment_drop_after_seconds": 7 * DAY,
                "keep_awake_seconds": 4 * HOUR,
                "drop_warning_hours": "48, 2",
            }
        )
        cls.timers_cron = cls.env.ref("eyrie_deployment.ir_cron_deployment_timers")

    def _deploy_at(self, when, name="acme", **values):
        with freeze_time(when):
            return self._deployed(name, **values)

    def _cron_at(self, when):
        with freeze_time(when):
            return self.env["eyrie.deployment"]._cron_apply_timers()

    def test_timers_are_visible(self):
        deployment = self._deploy_at(T0)
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(hours=2))
        self.assertEqual(deployment.next_drop_at, T0 + timedelta(days=7))
        with freeze_time(T0 + timedelta(minutes=1)):
            deployment.invalidate_recordset(["timer_summary"])
            self.assertEqual(deployment.timer_summary, "pauses in 2 h · drops in 7 d")
        with freeze_time(T0 + timedelta(hours=1, minutes=50)):
            Deployment = self.env["eyrie.deployment"]
            soon = Deployment.search(
                [("next_pause_at", "<=", T0 + timedelta(hours=1, minutes=50, days=1))]
            )
            self.assertIn(deployment, soon)
            deployment.invalidate_recordset(["timer_summary"])
            self.assertEqual(
                deployment.timer_summary, "pauses in 10 min · drops in 7 d"
            )

    def test_keep_awake_postpones_both_timers_up_to_max_lifetime(self):
        deployment = self._deploy_at(T0)
        with freeze_time(T0 + timedelta(hours=1)):
            deployment.with_user(self.user).action_keep_awake()
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(hours=6))
        self.assertEqual(deployment.next_drop_at, T0 + timedelta(days=7, hours=4))
        self.assertIn("Kept awake by", self._messages(deployment))
        self.assertIn("for 4 h:", self._messages(deployment))

        # The cap: no timer beyond creation + 7 days 6 hours.
        self.env.cr.execute(
            "UPDATE eyrie_deployment SET create_date = %s WHERE id = %s",
            (T0, deployment.id),
        )
        deployment.invalidate_recordset(["create_date"])
        self.scope.max_lifetime_seconds = 7 * DAY + 6 * HOUR
        deployment.action_keep_awake()
        self.assertEqual(deployment.next_drop_at, T0 + timedelta(days=7, hours=6))
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(hours=8))
        with self.assertRaisesMessage(UserError, "reached the maximum lifetime"):
            deployment.action_keep_awake()
        self.assertEqual(deployment.timer_extension_seconds, 6 * HOUR)

        # A new deploy restarts the timers from scratch.
        with freeze_time(T0 + timedelta(hours=3)):
            deployment.action_deploy()
            self._run_jobs()
        self.assertEqual(deployment.timer_extension_seconds, 0)
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(hours=5))

    def test_keep_awake_needs_a_running_timer(self):
        self.scope.deployment_pause_after_seconds = 0
        self.scope.allow_drop = False
        deployment = self._deploy_at(T0)
        with self.assertRaisesMessage(UserError, "nothing to postpone"):
            deployment.action_keep_awake()

    def test_grace_after_resume(self):
        self.scope.write(
            {"deployment_pause_after_seconds": 600, "resume_grace_seconds": HOUR}
        )
        deployment = self._deploy_at(T0)
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(minutes=10))
        self._cron_at(T0 + timedelta(minutes=11))
        self._run_jobs()
        self.assertEqual(deployment.repository_state, "pause")

        resumed = T0 + timedelta(hours=2)
        with freeze_time(resumed):
            deployment.action_deploy()
            self._run_jobs()
        self.assertEqual(deployment.resumed_at, resumed)
        self.assertEqual(deployment.next_pause_at, resumed + timedelta(hours=1))
        self.assertEqual(self._cron_at(resumed + timedelta(minutes=30)), 0)
        self.assertEqual(deployment.repository_state, "deploy")
        self.assertEqual(self._cron_at(resumed + timedelta(minutes=61)), 1)

    def test_automatic_action_says_which_timer_and_lateness(self):
        deployment = self._deploy_at(T0)
        self._cron_at(T0 + timedelta(hours=2, seconds=40))
        self.assertIn(
            "Automatic pause started by the Pause timer of scope Test scope "
            "(2 h after deploy, due at 2026-11-02 11:00:00 UTC), 40 s after it "
            "was due.",
            self._messages(deployment),
        )

    def test_one_timer_job_per_deployment_at_its_next_timer(self):
        self.scope.deployment_pause_after_seconds = 90
        deployment = self._deploy_at(T0)
        timer_job = queued(self.env, "_run_due_timer")
        self.assertEqual(timer_job.eta, T0 + timedelta(seconds=90))
        self.assertEqual(timer_job.records, deployment)
        self.assertEqual(timer_job.channel, "root.eyrie.timers")
        # Keep Awake moves the timer later: the job stays, still one.
        with freeze_time(T0 + timedelta(seconds=30)):
            deployment.action_keep_awake()
            # The timers follow their move when the transaction commits.
            self._flush_tracking()
        self.assertEqual(queued(self.env, "_run_due_timer"), timer_job)
        self.assertEqual(timer_job.eta, T0 + timedelta(seconds=90))
        due = deployment.next_pause_at
        # At its time it fires nothing, and plans the next at the new time.
        with freeze_time(T0 + timedelta(seconds=90)):
            run_queue_jobs(self.env, timers=True, limit=1)
        self.assertEqual(deployment.repository_state, "deploy")
        timer_job = queued(self.env, "_run_due_timer")
        self.assertEqual(len(timer_job), 1)
        self.assertEqual(timer_job.eta, due)

        # Never early: run a second before its time, it fires nothing and
        # stays planned at the due time.
        with freeze_time(due - timedelta(seconds=1)):
            run_queue_jobs(self.env, timers=True, limit=1)
        self.assertEqual(deployment.repository_state, "deploy")
        self.assertEqual(queued(self.env, "_run_due_timer").eta, due)

        with freeze_time(due + timedelta(seconds=1)):
            run_queue_jobs(self.env, timers=True, limit=1)
        self.assertEqual(deployment.state, "pausing")
        self.assertIn(
            "Automatic pause started by the Pause timer", self._messages(deployment)
        )
        # While the pause runs, only the warning before the drop is planned;
        # the drop's own time comes back once paused.
        self.assertEqual(
            queued(self.env, "_run_due_timer").eta, deployment.drop_warning_due_at
        )
        with freeze_time(due + timedelta(seconds=2)):
            self._run_jobs()
        self.assertEqual(deployment.repository_state, "pause")
        self.assertEqual(
            queued(self.env, "_run_due_timer").eta, deployment.drop_warning_due_at
        )

    def test_a_dropped_deployment_leaves_no_timer_job(self):
        deployment = self._deploy_at(T0)
        other = self._deploy_at(T0, name="other")
        self.assertEqual(len(queued(self.env, "_run_due_timer")), 2)
        deployment.action_drop()
        self._run_jobs()
        self.assertFalse(deployment.exists())
        self.assertEqual(queued(self.env, "_run_due_timer").records, other)

    def test_timer_jobs_follow_the_scope(self):
        deployment = self._deploy_at(T0)
        self.assertEqual(
            queued(self.env, "_run_due_timer").eta, T0 + timedelta(hours=2)
        )
        with freeze_time(T0 + timedelta(minutes=5)):
            self.scope.deployment_pause_after_seconds = HOUR
            self._flush_tracking()
        self.assertEqual(
            queued(self.env, "_run_due_timer").mapped("eta"), [T0 + timedelta(hours=1)]
        )
        self.assertEqual(deployment.next_pause_at, T0 + timedelta(hours=1))

    def test_drop_protection(self):
        deployment = self._deploy_at(T0)
        with self.assertRaisesMessage(AccessError, "Only Eyrie managers"):
            deployment.with_user(self.user).drop_protected = True
        deployment.with_user(self.manager).drop_protected = True
        self.assertFalse(deployment.next_drop_at)
        self.assertTrue(deployment.next_pause_at)
        with self.assertRaisesMessage(UserError, "is protected against drop"):
            deployment.with_user(self.user).action_drop()
        self.assertEqual(self._cron_at(T0 + timedelta(days=8)), 1)  # the pause
        self._run_jobs()
        self.assertEqual(deployment.repository_state, "pause")
        self.assertEqual(self._cron_at(T0 + timedelta(days=9)), 0)
        self.assertTrue(deployment.exists())
        # Unprotected again: the drop timer is back, already due.
        deployment.with_user(self.manager).drop_protected = False
        self.assertEqual(deployment.next_drop_at, T0 + timedelta(days=7))

    def test_warnings_before_drop_once_each(self):
        owner = new_test_user(
            self.env, login="eyrie_owner", groups="eyrie_deployment.group_eyrie_user"
        )
        deployment = self._deploy_at(T0, user_id=owner.id)
        drop_at = T0 + timedelta(days=7)
        self.assertEqual(deployment.drop_warning_due_at, drop_at - timedelta(hours=48))

        def warnings():
            return deployment.activity_ids.filtered(
                lambda a: (
                    a.activity_type_id
                    == self.env.ref("mail.mail_activity_data_warning")
                )
            )

        self._cron_at(drop_at - timedelta(hours=49))
        self.assertFalse(warnings())
        self._cron_at(drop_at - timedelta(hours=47))
        self.assertEqual(len(warnings()), 1)
        self.assertEqual(warnings().user_id, owner)
        self.assertIn("will be dropped in 47 h", warnings().summary)
        self._cron_at(drop_at - timedelta(hours=46))
        self.assertEqual(len(warnings()), 1)
        self.assertEqual(deployment.drop_warning_due_at, drop_at - timedelta(hours=2))
        self._cron_at(drop_at - timedelta(hours=1))
        # The later warning updates the one activity.
        self.assertEqual(len(warnings()), 1)
        self.assertIn("will be dropped in 1 h", warnings().summary)
        self.assertFalse(deployment.drop_warning_due_at)
        # Keep awake moves the drop: the warnings start over for the new time,
        # the one already due at once (it moves the activity), the 2-hour one
        # at its time.
        with freeze_time(drop_at - timedelta(minutes=30)):
            deployment.action_keep_awake()
            self._flush_tracking()
        self.assertEqual(len(warnings()), 1)
        self.assertIn("will be dropped in 4 h", warnings().summary)
        self.assertEqual(
            deployment.drop_warning_due_at,
            drop_at + timedelta(hours=4) - timedelta(hours=2),
        )


class TestJobs(EyrieCase):
    def test_cancel_pending_jobs_back_to_draft(self):
        deployment = self._make_deployment()
        deployment.with_user(self.user).action_deploy()
        initialize, deploy = deployment.job_ids.sorted("id")
        initialize.with_user(self.user).action_cancel()
        self.assertEqual((initialize.state, deploy.state), ("cancelled", "cancelled"))
        self.assertIn("Cancelled by", initialize.error_message)
        self.assertIn("before it was cancelled", deploy.error_message)
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("draft", "draft")
        )
        self.assertIn("cancelled the initialize job", self._messages(deployment))
        # The deployment can be deployed again.
        deployment.action_deploy()
        self._run_jobs()
        self.assertEqual(deployment.state, "deploy")

    def test_cancel_deploy_after_initialize_ran(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize, deploy = deployment.job_ids.sorted("id")
        run_queue_jobs(self.env, limit=1)
        self.assertEqual((initialize.state, deploy.state), ("done", "pending"))
        deploy.action_cancel()
        # The namespace exists on the cluster: not a draft any more.
        self.assertEqual(
            (deployment.repository_state, deployment.state),
            ("initialize", "initialize"),
        )

    def test_cancel_chained_deploy_while_initialize_waits(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize, deploy = deployment.job_ids.sorted("id")
        deploy.action_cancel()
        self.assertEqual(deployment.state, "initializing")
        self._run_jobs()
        self.assertEqual(initialize.state, "done")
        self.assertEqual(deployment.state, "initialize")
        self.assertIn("Cancelled by", deploy.error_message)

    def test_timer_fields_are_not_writable(self):
        deployment = self._deployed()
        with self.assertRaisesMessage(UserError, "set by the deployment lifecycle"):
            deployment.with_user(self.user).write({"next_drop_at": "2030-01-01"})

    def test_cancel_pause_job_keeps_deployment_deployed(self):
        deployment = self._deployed()
        deployment.action_pause()
        deployment.active_job_id.action_cancel()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "deploy")
        )

    def test_only_pending_jobs_can_be_cancelled(self):
        deployment = self._deployed()
        with self.assertRaisesMessage(
            UserError, "only a pending job can, and it is done"
        ):
            deployment.job_ids[:1].action_cancel()

    def test_retention_keeps_recent_and_last_per_deployment(self):
        deployment = self._deployed()
        parameters = self.env["ir.config_parameter"].sudo()
        parameters.set_param("eyrie.job_retention_days", 30)
        parameters.set_param("eyrie.job_keep_per_deployment", 3)
        for _update in range(6):
            deployment.action_deploy()
            self._run_jobs()
        jobs = deployment.job_ids.sorted("id")
        self.assertEqual(len(jobs), 8)
        old = jobs[:6]
        old.write({"ended_at": datetime.now() - timedelta(days=40)})
        deleted = self.env["eyrie.job"]._cron_clean_jobs()
        # 6 old ones, but the last 3 of the deployment (2 of them recent) stay.
        self.assertEqual(deleted, 5)
        self.assertEqual(deployment.job_ids, jobs[5:])


class TestMultiCompany(EyrieCase):
    def test_deployments_of_other_companies_are_hidden(self):
        other_company = self.env["res.company"].create({"name": "Other Co"})
        other_scope = self.scope.copy(
            {"name": "Other scope", "company_id": other_company.id}
        )
        theirs = self._make_deployment("theirs", scope_id=other_scope.id)
        ours = self._make_deployment("ours")
        self.assertEqual(theirs.company_id, other_company)
        Deployment = self.env["eyrie.deployment"].with_user(self.user)
        visible = Deployment.search([("name", "in", ("theirs", "ours"))])
        self.assertEqual(visible, ours.with_user(self.user))
        self.user.write({"company_ids": [(4, other_company.id)]})
        visible = Deployment.with_context(
            allowed_company_ids=[self.env.company.id, other_company.id]
        ).search([("name", "in", ("theirs", "ours"))])
        self.assertEqual(len(visible), 2)
        theirs.action_deploy()
        self.assertEqual(theirs.job_ids.company_id, other_company)
