from datetime import datetime, time, timedelta

from freezegun import freeze_time

from odoo import fields
from odoo.tests import tagged

from odoo.addons.eyrie_deployment.tests.kube_common import (
    PGO,
    KubernetesCase,
    OperatorsMixin,
)

from .common import GATEWAY, WakerMixin


@tagged("post_install", "-at_install")
class TestSleep(WakerMixin, OperatorsMixin, KubernetesCase):
    """The two-stage pause and the wake on the emulated cluster, with the
    shipped books: the route goes to the waker before Odoo stops, the
    database stops later, and a wake brings the route back once Odoo runs."""

    def test_pause_routes_to_the_waker_then_stops_the_database_later(self):
        odoo = self._deployed("sleepy")
        self.assertEqual(self._ingress_services(odoo), ["odoo"])

        self._run(odoo, "pause")
        self.assertEqual((odoo.repository_state, odoo.state), ("pause", "pause"))
        self.assertEqual(odoo.pause_stage, "instance")
        workload = self._get("apps/v1", "Deployment", "odoo", odoo.namespace)
        self.assertEqual(workload["spec"]["replicas"], 0)
        # Its route points to the waker, through a Service of its namespace.
        self.assertEqual(self._ingress_services(odoo), ["eyrie-waker"])
        stand_in = self._get("v1", "Service", "eyrie-waker", odoo.namespace)
        self.assertEqual(stand_in["spec"]["type"], "ExternalName")
        self.assertEqual(
            stand_in["spec"]["externalName"], "waker.eyrie-waker.svc.cluster.local"
        )
        database = self._get(PGO, "PostgresCluster", "db", odoo.namespace)
        self.assertFalse(database["spec"].get("shutdown"))
        self.assertEqual(
            odoo.database_pause_at, odoo.paused_at + timedelta(seconds=600)
        )
        self.assertIn("its database keeps running until", self._notes(odoo))

        # The cron before the delay: nothing; after it: the database.
        self.assertEqual(self.env["eyrie.deployment"]._cron_sleep_and_wake(), 0)
        with freeze_time(odoo.database_pause_at + timedelta(seconds=1)):
            self.assertEqual(self.env["eyrie.deployment"]._cron_sleep_and_wake(), 1)
            self._settle(between_rounds=self._play_operators)
        database = self._get(PGO, "PostgresCluster", "db", odoo.namespace)
        self.assertIs(database["spec"]["shutdown"], True)
        self.assertEqual((odoo.repository_state, odoo.state), ("pause", "pause"))
        self.assertEqual(odoo.pause_stage, "database")
        self.assertFalse(odoo.database_pause_at)
        self.assertIn("Its database is shut down too, 10 min", self._notes(odoo))
        self.assertEqual(self._ingress_services(odoo), ["eyrie-waker"])

    def test_a_wake_resumes_once_and_routes_back_after_the_rollout(self):
        odoo = self._deployed("wakeful")
        self._run(odoo, "pause")

        state, message = odoo._wake_on_request(odoo.hostname, "browser")
        self.assertEqual(state, "waking")
        self.assertIn("starting", message)
        # A second request while it starts: no second job.
        self.assertEqual(odoo._wake_on_request(odoo.hostname, "api")[0], "waking")
        self.assertEqual(len(odoo.job_ids.filtered(lambda j: j.trigger == "wake")), 1)
        job = odoo.active_job_id
        self.assertEqual((job.action, job.trigger), ("deploy", "wake"))

        # Until the rollout ends, the route stays at the waker.
        self._run_jobs()
        self.assertEqual(self._ingress_services(odoo), ["eyrie-waker"])
        self._settle(between_rounds=self._play_operators)
        self.assertEqual((odoo.repository_state, odoo.state), ("deploy", "deploy"))
        self.assertEqual(self._ingress_services(odoo), ["odoo"])
        self.assertEqual(odoo.woken_by, "request")
        self.assertFalse(odoo.pause_stage)
        self.assertEqual(odoo._wake_on_request(odoo.hostname, "browser")[0], "serving")
        self.assertIn(f"Woken by a request to {odoo.hostname}", self._notes(odoo))

    def test_the_cron_forgets_nonces_no_call_can_replay(self):
        Nonce = self.env["eyrie.wake.nonce"]
        self.assertTrue(Nonce._claim("cluster 1", "ab" * 16))
        self.assertFalse(Nonce._claim("cluster 1", "ab" * 16))
        with freeze_time(fields.Datetime.now() + timedelta(minutes=11)):
            self.env["eyrie.deployment"]._cron_sleep_and_wake()
        # Its timestamp is refused by now; its nonce is gone.
        self.assertFalse(Nonce.search([("name", "=", "cluster 1:" + "ab" * 16)]))

    def test_a_scope_that_does_not_wake_refuses_and_says_why(self):
        odoo = self._deployed("sound-asleep")
        self._run(odoo, "pause")
        self.shipped.wake_on_request = False
        self.addCleanup(setattr, self.shipped, "wake_on_request", True)
        state, message = odoo._wake_on_request(odoo.hostname, "browser")
        self.assertEqual(state, "refused")
        self.assertIn("does not wake by itself", message)
        self.assertFalse(odoo.active_job_id)
        self.assertEqual(odoo.state, "pause")

    def test_httproute_scope_routes_through_a_reference_grant(self):
        self.shipped.write(
            {
                "route_kind": "httproute",
                "gateway_name": "public",
                "gateway_namespace": "gateway-system",
            }
        )
        self.addCleanup(self.shipped.write, {"route_kind": "ingress"})
        odoo = self._deployed("gated")
        route = self._get(f"{GATEWAY}/v1", "HTTPRoute", "odoo", odoo.namespace)
        self.assertEqual(
            [
                ref["name"]
                for rule in route["spec"]["rules"]
                for ref in rule["backendRefs"]
            ],
            ["odoo", "odoo"],
        )
        self.assertFalse(
            self._get("networking.k8s.io/v1", "Ingress", "odoo", odoo.namespace)
        )
        self._run(odoo, "pause")
        route = self._get(f"{GATEWAY}/v1", "HTTPRoute", "odoo", odoo.namespace)
        self.assertEqual(
            route["spec"]["rules"][0]["backendRefs"],
            [{"name": "waker", "namespace": "eyrie-waker", "port": 80}],
        )
        grant = self._get(
            f"{GATEWAY}/v1beta1",
            "ReferenceGrant",
            f"from-{odoo.namespace}",
            "eyrie-waker",
        )
        self.assertEqual(grant["spec"]["from"][0]["namespace"], odoo.namespace)
        self.assertEqual(
            grant["metadata"]["labels"]["eyrie.io/deployment"], str(odoo.id)
        )
        # The drop removes the grant outside the deployment's namespace.
        namespace = odoo.namespace
        self._run(odoo, "drop")
        self.assertFalse(odoo.exists())
        self.assertFalse(
            self._get(
                f"{GATEWAY}/v1beta1",
                "ReferenceGrant",
                f"from-{namespace}",
                "eyrie-waker",
            )
        )
        self.assertTrue(self._get("apps/v1", "Deployment", "waker", "eyrie-waker"))

    def test_a_scope_that_changes_its_route_removes_the_old_one(self):
        odoo = self._deployed("rerouted")
        self.assertEqual(odoo.routed_by, "ingress")
        ingress = ("networking.k8s.io/v1", "Ingress", "odoo", odoo.namespace)
        self.assertTrue(self._get(*ingress))
        self.shipped.write(
            {
                "route_kind": "httproute",
                "gateway_name": "public",
                "gateway_namespace": "gateway-system",
            }
        )
        self.addCleanup(self.shipped.write, {"route_kind": "ingress"})
        self._run(odoo, "deploy")
        self.assertEqual(odoo.routed_by, "httproute")
        self.assertFalse(self._get(*ingress))
        self.assertTrue(self._get(f"{GATEWAY}/v1", "HTTPRoute", "odoo", odoo.namespace))
        # Deployed again the same way: the step asks nothing of the cluster.
        self._run(odoo, "deploy")
        log = self._job(odoo, "deploy").log
        self.assertIn("Route: remove the other kind", log)
        self.assertIn("the route kind did not change", log)

    def test_the_waker_is_installed_in_its_own_namespace(self):
        kinds = sorted(
            (obj["kind"], obj["metadata"]["name"])
            for obj in self.emulator.list(
                labels={"eyrie.io/waker": str(self.cluster.id)}
            )
        )
        self.assertEqual(
            kinds,
            [
                ("ConfigMap", "waker-script"),
                ("Deployment", "waker"),
                ("Namespace", "eyrie-waker"),
                ("PodDisruptionBudget", "waker"),
                ("Secret", "waker-key"),
                ("Service", "waker"),
            ],
        )
        waker = self._get("apps/v1", "Deployment", "waker", "eyrie-waker")
        self.assertEqual(waker["spec"]["replicas"], 2)
        container = waker["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["image"], "python:3.13-alpine")
        self.assertEqual(container["command"], ["python3", "/waker/waker.py"])
        self.assertEqual(self.cluster.waker_state, "installed")
        # Removing it is refused while an instance sleeps behind it.
        odoo = self._deployed("behind-waker")
        self._run(odoo, "pause")
        with self.assertRaisesRegex(Exception, "paused Odoo deployments"):
            self.cluster.action_remove_waker()
        self.assertTrue(self._get("v1", "Namespace", "eyrie-waker", None))


@tagged("post_install", "-at_install")
class TestActivityTimers(WakerMixin, OperatorsMixin, KubernetesCase):
    """Inactivity moves the pause timer; a scheduled action wakes a
    sleeping instance at most N times a day, which then pauses again."""

    SHIPPED_SCOPE_VALUES = {"deployment_pause_after_seconds": 3600}

    def test_pause_counts_from_the_last_activity(self):
        self.shipped.pause_on_inactivity = True
        odoo = self._deployed("busy")
        deployed = odoo.deployed_at
        self.assertEqual(odoo.next_pause_at, deployed + timedelta(hours=1))
        later = deployed + timedelta(minutes=50)
        with freeze_time(later + timedelta(seconds=5)):
            odoo._record_activity(later, None)
        self.assertEqual(odoo.last_activity_at, later)
        self.assertEqual(odoo.next_pause_at, later + timedelta(hours=1))
        # The chatter line of the timer's pause says what it counted from.
        with freeze_time(odoo.next_pause_at):
            timer, _late = odoo._timer_description("pause")
        self.assertIn("1 h after its last activity", timer)
        # A report within 5 minutes of the last does not move the timer.
        with freeze_time(later + timedelta(minutes=3)):
            odoo._record_activity(later + timedelta(minutes=2), None)
        self.assertEqual(odoo.last_activity_at, later)
        # Without pause on inactivity, from the deploy again.
        self.shipped.pause_on_inactivity = False
        self.assertEqual(odoo.next_pause_at, deployed + timedelta(hours=1))

    def test_scheduled_action_wakes_at_most_n_times_a_day(self):
        self.shipped.write(
            {"wake_for_scheduled_actions": True, "scheduled_wakes_per_day": 1}
        )
        odoo = self._deployed("nightly")
        # Tomorrow 10:00 UTC: the wake and the check an hour later fall on
        # the same day, whenever the test runs.
        tomorrow = fields.Datetime.now().date() + timedelta(days=1)
        due = datetime.combine(tomorrow, time(10, 0))
        odoo._record_activity(None, due)
        self.assertEqual(odoo.next_scheduled_action_at, due)
        self._run(odoo, "pause")
        Deployment = self.env["eyrie.deployment"]
        self.assertEqual(Deployment._cron_sleep_and_wake(), 0)
        with freeze_time(due + timedelta(seconds=30)):
            self.assertEqual(Deployment._cron_sleep_and_wake(), 1)
            self._settle(between_rounds=self._play_operators)
            self.assertEqual(odoo.state, "deploy", self._notes(odoo))
            self.assertEqual(odoo.woken_by, "schedule")
            # Awake for the scope's 15 minutes, then paused again.
            self.assertEqual(
                odoo.next_pause_at, odoo.resumed_at + timedelta(seconds=900)
            )
        self.assertIn("Woken for its scheduled action", self._notes(odoo))
        # It reports its next action, then pauses; today's one wake is used.
        odoo._record_activity(None, due + timedelta(hours=1))
        self._run(odoo, "pause")
        with freeze_time(due + timedelta(hours=1, seconds=30)):
            Deployment._cron_sleep_and_wake()
        scheduled = odoo.job_ids.filtered(lambda job: job.trigger == "schedule")
        self.assertEqual(len(scheduled), 1)
        self.assertEqual(odoo.repository_state, "pause")
        self.assertIn("(wake 1 of 1 today)", self._notes(odoo))

    def test_an_action_that_did_not_run_does_not_wake_it_again(self):
        self.shipped.wake_for_scheduled_actions = True
        odoo = self._deployed("stuck-cron")
        due = fields.Datetime.now() + timedelta(minutes=30)
        odoo._record_activity(None, due)
        self._run(odoo, "pause")
        Deployment = self.env["eyrie.deployment"]
        with freeze_time(due + timedelta(seconds=30)):
            self.assertEqual(Deployment._cron_sleep_and_wake(), 1)
            self._settle(between_rounds=self._play_operators)
            # Up, it reports the same action still due (it did not run).
            odoo._record_activity(None, due)
            self._run(odoo, "pause")
            Deployment._cron_sleep_and_wake()
        self.assertEqual(odoo.repository_state, "pause")
        self.assertEqual(
            len(odoo.job_ids.filtered(lambda job: job.trigger == "schedule")), 1
        )
        self.assertFalse(odoo.next_scheduled_action_at)
        self.assertIn("Not woken again for its scheduled action", self._notes(odoo))
