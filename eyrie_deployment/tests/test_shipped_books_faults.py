"""Two faults the shipped books showed against real peers, and how every
``wait`` of the shipped books ends, against the emulated cluster (the tests
play PGO, the Deployment and the Job controllers)."""

import base64
import re
from datetime import timedelta

from kubernetes import client as k8s

from odoo import fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from ..tools.passwords import generate_password
from .common import ShippedScopeMixin
from .kube_common import PGO, KubernetesCase, OperatorsMixin

SAFE_PASSWORD = re.compile(r"^[A-Za-z0-9]{32}$")


class ShippedBooksCase(ShippedScopeMixin, OperatorsMixin, KubernetesCase):
    """The shipped books on the emulated cluster."""


@tagged("post_install", "-at_install")
class TestGeneratedCredentials(ShippedBooksCase):
    def test_generated_passwords_suit_every_consumer(self):
        # token_urlsafe gave '-' or '_' in about two of three 32-character
        # passwords, and a leading '-' in one of 64.
        samples = [generate_password() for _ in range(2000)]
        self.assertTrue(all(SAFE_PASSWORD.match(sample) for sample in samples))
        self.assertEqual(len(set(samples)), len(samples))
        db = self._create("creds-db", "pgo", values='{"users": ["odoo", "shop"]}')
        odoo = self._create("creds-odoo")
        for deployment in (db, odoo):
            deployment.action_deploy()
        credentials = [
            *db.sudo().credentials.values(),
            *odoo.sudo().credentials.values(),
        ]
        self.assertEqual(len(credentials), 4)
        for password in credentials:
            self.assertRegex(password, SAFE_PASSWORD)

    def test_unsafe_credentials_are_regenerated_once(self):
        odoo = self._create("dash-odoo")
        odoo.action_deploy()
        broken = "-" + "a" * 31
        odoo._set_lifecycle(
            credentials={"admin_password": "-adminSetOnce", "db_password": broken}
        )
        changed = self.env["eyrie.deployment"]._regenerate_unsafe_credentials()
        self.assertEqual(changed, odoo)
        credentials = odoo.sudo().credentials
        self.assertRegex(credentials["db_password"], SAFE_PASSWORD)
        # Odoo set the admin password on its first start: it must not move.
        self.assertEqual(credentials["admin_password"], "-adminSetOnce")
        self.assertIn(
            "db_password could not be used by every consumer",
            " | ".join(odoo.message_ids.mapped("body")),
        )
        self.assertFalse(self.env["eyrie.deployment"]._regenerate_unsafe_credentials())

    def test_a_deploy_applies_regenerated_credentials(self):
        odoo = self._create("rotate")
        self._run(odoo, "deploy")
        odoo._set_lifecycle(
            credentials={**odoo.sudo().credentials, "db_password": "-x"}
        )
        self.env["eyrie.deployment"]._regenerate_unsafe_credentials()
        self._run(odoo, "deploy")
        password = odoo.sudo().credentials["db_password"]
        for name, key in (("odoo", "db-password"), ("db-pguser-odoo", "password")):
            secret = self.emulator.get("v1", "Secret", name, namespace="rotate")
            self.assertEqual(_decoded(secret, key), password, name)
        pguser = self.emulator.get("v1", "Secret", "db-pguser-odoo", namespace="rotate")
        # PGO sets the PostgreSQL password from 'password' when it is empty.
        self.assertEqual(pguser["data"]["verifier"], "")


@tagged("post_install", "-at_install")
class TestSharedDatabaseDrop(ShippedBooksCase):
    def test_drop_refused_while_the_database_is_paused(self):
        db, odoo = self._deployed_on_shared_database("paused-db", "paused-user")
        self._run(odoo, "pause")
        self._run(db, "pause")
        objects = sorted(
            (o["kind"], o["metadata"]["name"]) for o in self._labelled(odoo)
        )
        with self.assertRaisesMessage(
            UserError,
            "cannot be dropped now: its database is in PostgreSQL deployment "
            "paused-db, which is not running \\(Paused\\).*Deploy \\(resume\\) "
            "paused-db first",
        ):
            odoo.action_drop()
        self.assertEqual(odoo.state, "pause")
        self.assertFalse(self._job(odoo, "drop"))
        self.assertEqual(
            sorted((o["kind"], o["metadata"]["name"]) for o in self._labelled(odoo)),
            objects,
        )
        self._run(db, "deploy")
        self._run(odoo, "drop")
        self.assertFalse(odoo.exists())


@tagged("post_install", "-at_install")
class TestWaitEndings(ShippedBooksCase):
    """Every kind of status the shipped books wait on, each way it ends."""

    def _expire_waits(self):
        self.env["eyrie.job"].search([("wait_deadline", "!=", False)]).write(
            {"wait_deadline": fields.Datetime.now() - timedelta(seconds=1)}
        )

    def _play_until_rollout(self, odoo):
        self._run(odoo, "deploy")
        self.assertEqual(odoo.state, "deploy")

    def test_postgrescluster_ready_replicas(self):
        db = self._create("wait-db", "pgo", values='{"replicas": 2}')
        self._run(db, "deploy")
        self.assertEqual(db.state, "deploy")
        self.assertIn(
            "status.instances.0.readyReplicas is 2", self._job(db, "deploy").log
        )
        # Never ready: the wait ends at its timeout, with what it saw.
        never = self._create("never-db", "pgo")
        never.action_deploy()
        self._settle(between_rounds=lambda _round: self._expire_waits())
        self.assertEqual(never.state, "error")
        self.assertRegex(
            never.error_message,
            "Step 3 'Wait until ready' \\(wait\\) failed: timed out after 900 s: "
            "PostgresCluster db in namespace never-db: "
            "status.instances.0.readyReplicas is None",
        )

    def test_deployment_rollout(self):
        odoo = self._create("rolled")
        self._play_until_rollout(odoo)
        self.assertIn(
            "Deployment odoo in namespace rolled: 1/1 replicas available",
            self._job(odoo, "deploy").log,
        )

    def test_deployment_past_its_progress_deadline_fails_at_once(self):
        odoo = self._create("stuck")

        def stuck(_round):
            self._play_operators()
            workload = self.emulator.get("apps/v1", "Deployment", "odoo", "stuck")
            if workload:
                self.emulator.set_status(
                    "apps/v1",
                    "Deployment",
                    "odoo",
                    {
                        "observedGeneration": 1,
                        "replicas": 1,
                        "updatedReplicas": 1,
                        "availableReplicas": 0,
                        "conditions": [
                            {
                                "type": "Progressing",
                                "status": "False",
                                "reason": "ProgressDeadlineExceeded",
                                "message": 'ReplicaSet "odoo-1" has timed out '
                                "progressing.",
                            }
                        ],
                    },
                    namespace="stuck",
                )

        odoo.action_deploy()
        rounds = self._settle(between_rounds=stuck)
        self.assertEqual(odoo.state, "error")
        # Its number depends on the steps addons add before it.
        rollout = odoo.deployment_deploy_book_id.step_ids.filtered(
            lambda step: step.name == "Wait for the rollout"
        )
        number = list(odoo.deployment_deploy_book_id.step_ids).index(rollout) + 1
        self.assertIn(
            f"Step {number} 'Wait for the rollout' (wait) failed: Deployment odoo in "
            'namespace stuck failed: ProgressDeadlineExceeded: ReplicaSet "odoo-1" '
            "has timed out progressing.",
            odoo.error_message,
        )
        self.assertLess(rounds, 10, "it waited for the timeout")

    def test_dropdb_job_succeeded_or_failed(self):
        db = self._create("jobs-db", "pgo")
        self._run(db, "deploy")
        ok = self._create(
            "job-ok", database_mode="shared", database_deployment_id=db.id
        )
        self._run(ok, "deploy")
        self._run(ok, "drop")
        self.assertFalse(ok.exists())

        failing = self._create(
            "job-ko", database_mode="shared", database_deployment_id=db.id
        )
        self._run(failing, "deploy")
        failing.action_drop()

        def job_fails(_round):
            job = self.emulator.get(
                "batch/v1", "Job", f"dropdb-{failing.id}", namespace="jobs-db"
            )
            if job:
                self.emulator.set_status(
                    "batch/v1",
                    "Job",
                    job["metadata"]["name"],
                    {
                        "failed": 4,
                        "conditions": [
                            {
                                "type": "Failed",
                                "status": "True",
                                "reason": "BackoffLimitExceeded",
                                "message": "Job has reached the specified backoff "
                                "limit",
                            }
                        ],
                    },
                    namespace="jobs-db",
                )

        rounds = self._settle(between_rounds=job_fails)
        self.assertEqual(failing.state, "error")
        self.assertIn(
            f"Job dropdb-{failing.id} in namespace jobs-db failed: "
            "BackoffLimitExceeded: Job has reached the specified backoff limit",
            failing.error_message,
        )
        self.assertLess(rounds, 10, "it waited for the timeout")
        # Nothing after the failed database drop ran: the namespace stays.
        self.assertTrue(self.emulator.get("v1", "Namespace", "job-ko"))

    def test_deletion(self):
        gone = self._create("gone-db", "pgo")
        self._run(gone, "deploy")
        self._run(gone, "drop")
        self.assertFalse(gone.exists())
        self.assertIsNone(self.emulator.get("v1", "Namespace", "gone-db"))

        stays = self._create("stays-db", "pgo")
        self._run(stays, "deploy")
        # A finalizer nobody removes: the cluster is never gone.
        k8s.CustomObjectsApi(self.emulator.api_client()).patch_namespaced_custom_object(
            "postgres-operator.crunchydata.com",
            "v1beta1",
            "stays-db",
            "postgresclusters",
            "db",
            {"metadata": {"finalizers": ["example.com/keep"]}},
        )
        stays.action_drop()
        self._settle(between_rounds=lambda _round: self._expire_waits())
        self.assertEqual(stays.state, "error")
        self.assertIn(
            "Step 2 'Wait until the cluster is gone' (wait) failed: timed out after "
            "600 s: PostgresCluster db in namespace stays-db: still exists",
            stays.error_message,
        )
        self.assertTrue(self.emulator.get(PGO, "PostgresCluster", "db", "stays-db"))


def _decoded(secret, key):
    return base64.b64decode(secret["data"][key]).decode()
