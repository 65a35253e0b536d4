import unittest
from datetime import date, datetime, timedelta

from freezegun import freeze_time
from lxml import etree

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import Form, HttpCase, tagged

from ..models.eyrie_deployment_timers import format_duration
from .common import EyrieCase

T0 = datetime(2026, 3, 2, 9, 0, 0)
HOUR = 3600
DAY = 24 * HOUR
# UTC+1 in March: 09:00 UTC reads 10:00.
TZ = "Europe/Brussels"
REFUSAL = (
    "pause refused: Deployment acme has no Pause Book: choose one on the "
    "deployment or set a default on scope Test scope"
)


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
        self.assertIn("(1 h after deploy", self._messages(deployment))
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

    # ------------------------------------------------------------------
    # A refused timer says what blocks it and when it is tried again
    # ------------------------------------------------------------------

    def _refused_pause(self):
        """acme, deployed at T0, whose pause the timer could not start at
        T0 + 1 h: it has no pause book."""
        deployment = self._deploy_at(T0)
        deployment.deployment_pause_book_id = False
        self.scope.deployment_pause_book_id = False
        self.assertEqual(self._cron(T0 + timedelta(hours=1)), 1)
        return deployment

    def _summary(self, deployment, when, **context):
        with freeze_time(when):
            deployment.invalidate_recordset(["timer_summary"])
            return deployment.with_context(**context).timer_summary

    def test_refused_timer_says_why_and_when_it_is_tried_again(self):
        deployment = self._refused_pause()
        soon = T0 + timedelta(hours=1, minutes=5)
        # Tried again at 11:00 UTC, in the reader's timezone.
        self.assertEqual(
            self._summary(deployment, soon, tz=TZ), f"{REFUSAL}; next try 12:00"
        )
        self.user.tz = "America/New_York"
        self.assertEqual(
            self._summary(deployment.with_user(self.user), soon),
            f"{REFUSAL}; next try 06:00",
        )
        self.user.tz = False
        self.assertEqual(
            self._summary(deployment.with_user(self.user), soon),
            f"{REFUSAL}; next try 11:00",
        )
        # Read on another day, the next try has its date.
        self.assertEqual(
            self._summary(deployment, T0 + timedelta(hours=16), tz=TZ),
            f"{REFUSAL}; next try Mar 2 12:00",
        )

    def test_failed_timer_says_why(self):
        deployment = self._deploy_at(T0)

        def broken(records, verb, trigger, **arguments):
            raise RuntimeError("the cluster is on fire")

        self.patch(type(deployment), "_run_action", broken)
        self.assertEqual(self._cron(T0 + timedelta(hours=1)), 1)
        self.assertEqual(
            self._summary(deployment, T0 + timedelta(hours=1), tz=TZ),
            "pause failed: RuntimeError: the cluster is on fire; next try 12:00",
        )

    def test_refusal_cleared_once_the_timer_is_no_longer_due(self):
        deployment = self._refused_pause()
        with freeze_time(T0 + timedelta(hours=1, minutes=5)):
            deployment.action_keep_awake()
            # The timers follow their move when the transaction commits.
            self._flush_tracking()
        self.assertFalse(deployment.timer_refusal)
        self.assertEqual(
            self._summary(deployment, T0 + timedelta(hours=1, minutes=5)),
            "pauses in 4 h · drops in 27 h",
        )

    def test_refusal_cleared_when_the_next_try_succeeds(self):
        deployment = self._refused_pause()
        deployment.deployment_pause_book_id = self.book_pause
        self.assertEqual(self._cron(T0 + timedelta(hours=2)), 1)
        self.assertEqual(deployment.state, "pausing")
        self.assertFalse(deployment.timer_refusal)

    def test_refusal_cleared_by_a_new_deploy(self):
        deployment = self._refused_pause()
        with freeze_time(T0 + timedelta(hours=1, minutes=10)):
            deployment.action_deploy()
            self._run_jobs()
        self.assertFalse(deployment.timer_refusal)
        self.assertEqual(
            self._summary(deployment, T0 + timedelta(hours=1, minutes=10)),
            "pauses in 1 h · drops in 24 h",
        )

    def test_users_cannot_write_the_refusal(self):
        deployment = self._refused_pause()
        with self.assertRaisesMessage(UserError, "set by the deployment lifecycle"):
            deployment.with_user(self.user).write({"timer_refusal": False})

    # ------------------------------------------------------------------
    # Resume, Keep Awake
    # ------------------------------------------------------------------

    def test_resume_clears_paused_at(self):
        deployment = self._deploy_at(T0)
        with freeze_time(T0 + timedelta(minutes=10)):
            deployment.action_pause()
            self._run_jobs()
        self.assertEqual(deployment.paused_at, T0 + timedelta(minutes=10))
        with freeze_time(T0 + timedelta(minutes=20)):
            deployment.action_deploy()
            self._run_jobs()
        self.assertEqual(deployment.resumed_at, T0 + timedelta(minutes=20))
        self.assertFalse(deployment.paused_at)

    def test_keep_awake_answers_with_the_new_times(self):
        deployment = self._deploy_at(T0)
        with freeze_time(T0 + timedelta(minutes=30)):
            answer = deployment.with_context(tz=TZ).action_keep_awake()
        # Pause at 09:00 + 1 h + 4 h UTC, drop at 09:00 + 1 day + 4 h, in
        # Brussels.
        self.assertEqual(
            answer,
            {
                "type": "ir.actions.client",
                "tag": "display_notification",
                "params": {
                    "title": "Kept awake",
                    "message": "acme kept awake: pauses at 15:00, drops on Mar 3 14:00",
                    "type": "success",
                    "next": {"type": "ir.actions.act_window_close"},
                },
            },
        )
        self.assertIn("Kept awake by", self._messages(deployment))
        self.assertIn(" for 4 h: ", self._messages(deployment))

    def test_durations_read_like_time(self):
        for seconds, text in (
            (0, "0 s"),
            (45, "45 s"),
            (90, "1 min 30 s"),
            (600, "10 min"),
            (3600, "1 h"),
            (5400, "1 h 30 min"),
            (14400, "4 h"),
            (DAY, "1 day"),
            (2 * DAY, "2 days"),
            (7 * DAY + 6 * HOUR, "7 days 6 h"),
        ):
            self.assertEqual(format_duration(seconds, self.env), text)


@tagged("post_install", "-at_install")
class TestDropWarnings(EyrieCase):
    """At most one drop warning per deployment, true to its drop time."""

    # A drop at 22:00 UTC: 4 more hours move it to the next day.
    T1 = datetime(2026, 3, 2, 22, 0, 0)
    DROP_AT = T1 + timedelta(days=7)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scope.write(
            {
                "deployment_pause_after_seconds": 0,
                "deployment_drop_after_seconds": 7 * DAY,
                "keep_awake_seconds": 4 * HOUR,
                "drop_warning_hours": "48, 2",
            }
        )

    def _cron(self, when):
        with freeze_time(when):
            return self.env["eyrie.deployment"]._cron_apply_timers()

    def _deploy_at(self, when, name="acme"):
        with freeze_time(when):
            return self._deployed(name)

    def _warnings(self, deployment_id):
        return self.env["mail.activity"].search(
            [
                ("res_model", "=", "eyrie.deployment"),
                ("res_id", "=", deployment_id),
                (
                    "activity_type_id",
                    "=",
                    self.env.ref("mail.mail_activity_data_warning").id,
                ),
            ]
        )

    def _warned(self):
        """acme, deployed at T1, warned 47 h then 1 h before its drop."""
        deployment = self._deploy_at(self.T1)
        self._cron(self.DROP_AT - timedelta(hours=47))
        self._cron(self.DROP_AT - timedelta(hours=1))
        return deployment

    def test_later_warnings_update_the_one_activity(self):
        deployment = self._deploy_at(self.T1)
        self._cron(self.DROP_AT - timedelta(hours=47))
        warning = self._warnings(deployment.id)
        self.assertEqual(warning.summary, "acme will be dropped in 47 h")
        self._cron(self.DROP_AT - timedelta(hours=1))
        warning = self._warnings(deployment.id)
        self.assertEqual(len(warning), 1)
        self.assertEqual(warning.summary, "acme will be dropped in 1 h")
        self.assertEqual(warning.date_deadline, date(2026, 3, 9))
        self.assertIn("2026-03-09 22:00:00", warning.note)
        # Its user heard of each warning, as of a new activity.
        notices = self.env["mail.message"].search(
            [
                ("model", "=", "eyrie.deployment"),
                ("res_id", "=", deployment.id),
                ("message_type", "=", "user_notification"),
                ("subject", "like", "will be dropped"),
            ]
        )
        self.assertEqual(
            notices.mapped("subject"),
            [
                '"acme: acme will be dropped in 1 h" assigned to you',
                '"acme: acme will be dropped in 47 h" assigned to you',
            ],
        )
        self.assertEqual(notices.partner_ids, self.user.partner_id)

    def test_earlier_warnings_become_one(self):
        deployment = self._deploy_at(self.T1)
        # As older versions left them: one activity per warning.
        for hours in (48, 24, 2):
            deployment.activity_schedule(
                "mail.mail_activity_data_warning",
                summary=f"acme will be dropped in {hours} h",
                user_id=self.user.id,
            )
        self._cron(self.DROP_AT - timedelta(hours=1))
        warning = self._warnings(deployment.id)
        self.assertEqual(len(warning), 1)
        self.assertEqual(warning.summary, "acme will be dropped in 1 h")

    def test_keep_awake_moves_the_warning(self):
        deployment = self._warned()
        with freeze_time(self.DROP_AT - timedelta(hours=1)):
            deployment.action_keep_awake()
            self._flush_tracking()
        warning = self._warnings(deployment.id)
        self.assertEqual(len(warning), 1)
        self.assertEqual(warning.summary, "acme will be dropped in 5 h")
        self.assertEqual(warning.date_deadline, date(2026, 3, 10))
        self.assertIn("2026-03-10 02:00:00", warning.note)
        # Its own 2-hour warning updates it again.
        self._cron(self.DROP_AT + timedelta(hours=3))
        warning = self._warnings(deployment.id)
        self.assertEqual(len(warning), 1)
        self.assertEqual(warning.summary, "acme will be dropped in 1 h")

    def test_drop_protection_withdraws_the_warning(self):
        deployment = self._warned()
        deployment.with_user(self.manager).drop_protected = True
        self._flush_tracking()
        self.assertFalse(self._warnings(deployment.id))
        self.assertIn("Drop warning withdrawn", self._messages(deployment))
        self.assertIn("protected against drop", self._messages(deployment))

    def test_redeploy_withdraws_the_warning_until_its_time(self):
        deployment = self._warned()
        redeployed = self.DROP_AT - timedelta(minutes=30)
        with freeze_time(redeployed):
            deployment.action_deploy()
            self._run_jobs()
        self.assertFalse(self._warnings(deployment.id))
        self.assertIn(
            "the drop moved to 2026-03-16 21:30:00 UTC", self._messages(deployment)
        )
        self._cron(redeployed + timedelta(days=5, hours=1))
        self.assertEqual(
            self._warnings(deployment.id).summary, "acme will be dropped in 47 h"
        )

    def test_scope_changes_move_or_withdraw_the_warning(self):
        deployment = self._warned()
        with freeze_time(self.DROP_AT - timedelta(hours=1)):
            self.scope.deployment_drop_after_seconds = 7 * DAY + 3 * HOUR
            self._flush_tracking()
        warning = self._warnings(deployment.id)
        self.assertEqual(len(warning), 1)
        self.assertEqual(warning.summary, "acme will be dropped in 4 h")
        self.assertEqual(warning.date_deadline, date(2026, 3, 10))
        self.scope.allow_drop = False
        self._flush_tracking()
        self.assertFalse(self._warnings(deployment.id))
        self.assertIn("does not allow drop", self._messages(deployment))

    def test_drop_removes_the_warning(self):
        deployment = self._warned()
        deployment_id = deployment.id
        self._cron(self.DROP_AT)
        self._run_jobs()
        self.assertFalse(deployment.exists())
        self.assertFalse(self._warnings(deployment_id))


@tagged("post_install", "-at_install")
class TestScopeTimerViews(EyrieCase):
    """The scope's timers in its views: durations, not seconds."""

    DURATIONS = {
        "deployment_pause_after_seconds",
        "deployment_drop_after_seconds",
        "resume_grace_seconds",
        "keep_awake_seconds",
        "max_lifetime_seconds",
    }

    def test_every_timer_reads_as_a_duration(self):
        Scope = self.env["eyrie.scope"]
        # Those of the addons installed beside (sleep and wake) too.
        durations = {name for name in Scope._fields if name.endswith("_seconds")}
        self.assertLessEqual(self.DURATIONS, durations)
        for name in durations:
            label = Scope._fields[name].string
            self.assertNotRegex(label, r"(?i)second|\(s\)", name)
        for view_type, shown in (("form", durations), ("list", self.DURATIONS)):
            arch = etree.fromstring(Scope.get_view(view_type=view_type)["arch"])
            widgets = {
                node.get("name"): node.get("widget")
                for node in arch.iter("field")
                if node.get("name").endswith("_seconds")
            }
            self.assertEqual(widgets, dict.fromkeys(shown, "eyrie_duration"), view_type)

    def test_scope_form_and_list_without_javascript(self):
        views = self.env["eyrie.scope"].get_views([(False, "list"), (False, "form")])
        self.assertEqual(set(views["views"]), {"list", "form"})
        with Form(self.scope) as form:
            form.deployment_pause_after_seconds = 600
            form.keep_awake_seconds = 2 * HOUR
        self.assertEqual(self.scope.deployment_pause_after_seconds, 600)
        self.assertEqual(self.scope.keep_awake_seconds, 2 * HOUR)


@tagged("post_install", "-at_install")
class TestTimersInTheBrowser(HttpCase):
    """The scope's timers read as durations and entered as a number and a
    unit; Keep Awake answers and the form follows."""

    def _start_tour(self, url, tour):
        try:
            self.start_tour(url, tour, login="admin", timeout=120)
        except unittest.SkipTest as skip:
            # Skipped when Chrome is missing: this test must run.
            self.fail(f"The browser tour could not run ({skip}).")

    def test_scope_timers_in_the_browser(self):
        scope = self.env["eyrie.scope"].create(
            {
                "name": "Duration scope",
                "cluster_id": self.env.ref("eyrie_deployment.eyrie_cluster_dry_run").id,
                "deployment_pause_after_seconds": 600,
                "deployment_drop_after_seconds": 0,
                "keep_awake_seconds": 4 * HOUR,
            }
        )
        self._start_tour(
            "/odoo/action-eyrie_deployment.eyrie_scope_action",
            "eyrie_scope_duration_tour",
        )
        self.assertEqual(scope.deployment_pause_after_seconds, 2 * HOUR)
        self.assertEqual(scope.keep_awake_seconds, 4 * HOUR)

    def test_keep_awake_in_the_browser(self):
        scope = self.env["eyrie.scope"].create(
            {
                "name": "Keep awake scope",
                "cluster_id": self.env.ref("eyrie_deployment.eyrie_cluster_dry_run").id,
                "deployment_pause_after_seconds": 600,
            }
        )
        deployment = self.env["eyrie.deployment"].create(
            {"name": "tour-awake", "deployment_type": "odoo", "scope_id": scope.id}
        )
        # As a deploy leaves it; the dry-run cluster holds nothing to keep.
        deployment._set_lifecycle(
            repository_state="deploy", state="deploy", deployed_at=fields.Datetime.now()
        )
        self._start_tour(
            f"/odoo/action-eyrie_deployment.eyrie_deployment_action/{deployment.id}",
            "eyrie_keep_awake_tour",
        )
        self.assertEqual(deployment.timer_extension_seconds, 4 * HOUR)
