"""The tenancy boundary: a plain Eyrie user, over XML-RPC, against the
emulated Kubernetes API, can only ever affect their own deployment's objects.

Each test tries one hole as a user would and asserts what the API server
holds afterwards, or the refusal the user reads."""

import base64
import json
import os
import tempfile
from datetime import timedelta
from xmlrpc.client import Fault

from kubernetes import client as k8s

from odoo import fields
from odoo.exceptions import UserError, ValidationError
from odoo.tests import get_db_name, new_test_user, tagged
from odoo.tools import SQL, mute_logger

from .kube_common import MANAGED, PGO, KubernetesRpcCase, OperatorsMixin
from .queue_jobs import resume_waiting_jobs, run_queue_jobs

CLUSTER_ROLE_BINDING = """\
300
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: pwned}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}
subjects: [{kind: User, name: mallory}]"""


class TenancyCase(OperatorsMixin, KubernetesRpcCase):
    LOGIN = "eyrie_tenant"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scope = cls.env["eyrie.scope"].create(
            {
                "name": "Tenancy",
                "cluster_id": cls.cluster.id,
                "domain": "preview.example.com",
                "allow_drop": True,
            }
        )
        cls.other = new_test_user(
            cls.env, login="eyrie_other", groups="eyrie_deployment.group_eyrie_user"
        )

    def setUp(self):
        super().setUp()
        self.emulator.reset()
        self.emulator.add_crd(
            "postgres-operator.crunchydata.com",
            "v1beta1",
            "PostgresCluster",
            "postgresclusters",
        )
        self.emulator.add_crd(
            "externaldns.k8s.io", "v1alpha1", "DNSEndpoint", "dnsendpoints"
        )
        self.api = self.emulator.api_client()

    def rpc_as(self, user, model, method, *args, **kwargs):
        return self.xmlrpc_object.execute_kw(
            get_db_name(), user.id, user.login, model, method, list(args), kwargs
        )

    def _create(self, name, deployment_type="odoo", **vals):
        return self.rpc(
            "eyrie.deployment",
            "create",
            {
                "name": name,
                "deployment_type": deployment_type,
                "scope_id": self.scope.id,
            }
            | vals,
        )

    def _settle(self, play=True):
        Job = self.env["eyrie.job"]
        for _round in range(30):
            run_queue_jobs(self.env)
            if play:
                self._play_operators()
            active = Job.search([("state", "in", ("pending", "running"))])
            if not active:
                return
            resume_waiting_jobs(self.env)
        raise AssertionError("jobs still pending")

    def _act(self, deployment_id, verb, user=None, play=True):
        caller = self.rpc_as if user else (lambda _u, *a: self.rpc(*a))
        self.assertIs(
            caller(user, "eyrie.deployment", f"action_{verb}", [deployment_id]), True
        )
        self._settle(play=play)

    def _read(self, deployment_id, *names):
        found = self.rpc(
            "eyrie.deployment", "search_read", [("id", "=", deployment_id)], list(names)
        )
        return found[0] if found else None

    def _seed_foreign_namespace(self, namespace):
        """A team's namespace Eyrie never created, with an Odoo of theirs."""
        core, apps = k8s.CoreV1Api(self.api), k8s.AppsV1Api(self.api)
        core.create_namespace({"metadata": {"name": namespace}})
        apps.create_namespaced_deployment(
            namespace,
            {
                "metadata": {"name": "odoo", "labels": {"team": "x"}},
                "spec": {
                    "replicas": 3,
                    "selector": {"matchLabels": {"app": "theirs"}},
                    "template": {
                        "metadata": {"labels": {"app": "theirs"}},
                        "spec": {"containers": [{"name": "c", "image": "odoo:17"}]},
                    },
                },
            },
        )
        core.create_namespaced_service(
            namespace, {"metadata": {"name": "odoo"}, "spec": {"ports": [{"port": 80}]}}
        )
        return self._foreign_state(namespace)

    def _foreign_state(self, namespace):
        """What the team owns in ``namespace``: each object's labels and spec
        (the tests' operators may set a status; Eyrie must change nothing)."""
        objects = self.emulator.list(namespace=namespace)
        namespace_obj = self.emulator.get("v1", "Namespace", namespace)
        return {
            (obj["kind"], obj["metadata"]["name"]): (
                obj["metadata"].get("labels") or {},
                obj.get("spec"),
            )
            for obj in [*objects, *([namespace_obj] if namespace_obj else [])]
        }


@tagged("post_install", "-at_install")
class TestValuesAreData(TenancyCase):
    def test_values_that_would_be_yaml_are_refused_on_save(self):
        cases = [
            ({"dns_ttl": CLUSTER_ROLE_BINDING}, "'dns_ttl' holds a control character"),
            ({"dns_ttl": "300 # x"}, "'dns_ttl' is '300 # x': use a whole number"),
            ({"dns_ttl": 5}, "'dns_ttl' is 5: use a whole number of seconds from 30"),
            ({"db_name": "shop\n---\nkind: Secret"}, "'db_name' holds a control"),
            ({"db_name": "postgres"}, "belongs to the PostgreSQL server"),
            ({"db_name": "Shop DB"}, "'db_name' is 'Shop DB': use a database name"),
            (
                {"nope": 1},
                (
                    "'nope' is not a value this deployment accepts; use one of "
                    "backup_storage, "
                ),
            ),
        ]
        for values, message in cases:
            with self.subTest(values=values), self.assertRaisesRegex(Fault, message):
                self._create("inject", values=json.dumps(values))
        self.assertFalse(self.env["eyrie.deployment"].search([("name", "=", "inject")]))
        with self.assertRaisesRegex(Fault, "'users' holds a control character"):
            self._create("inject-db", "pgo", values='{"users": ["a\\nb"]}')

    def test_control_characters_are_refused_in_every_string(self):
        self.scope.extra_value_keys = "note"
        with self.assertRaisesRegex(
            Fault, "'note' holds a control character .*write it on one line"
        ):
            self._create("ctl", values=json.dumps({"note": {"a": ["x\ty"]}}))
        self.assertTrue(self._create("ctl", values=json.dumps({"note": "one line"})))
        # Custom books may render the name: it is one line too.
        with self.assertRaisesRegex(Fault, "holds a control character"):
            self._create("evil\n---\nkind: Secret", namespace="evil")

    def test_scope_defaults_are_checked_for_the_type(self):
        with self.assertRaisesRegex(
            ValidationError, "'dns_ttl' is not a value this deployment accepts"
        ):
            self.scope.values = json.dumps({"pgo": {"dns_ttl": 300}})

    def test_shipped_books_render_values_as_data(self):
        # "1234" is a valid namespace that YAML reads as a number when
        # rendered bare: every object of the books must still be named "1234".
        deployment_id = self._create(
            "numbers", namespace="1234", values='{"dns_ttl": 600}'
        )
        self._act(deployment_id, "deploy")
        self.assertEqual(self._read(deployment_id, "state")["state"], "deploy")
        self.assertTrue(self.emulator.get("v1", "Namespace", "1234"))
        endpoint = self.emulator.get(
            "externaldns.k8s.io/v1alpha1", "DNSEndpoint", "odoo", namespace="1234"
        )
        self.assertEqual(endpoint["spec"]["endpoints"][0]["recordTTL"], 600)
        odoo = self.emulator.get("apps/v1", "Deployment", "odoo", namespace="1234")
        self.assertEqual(
            odoo["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"],
            "1234",
        )
        self.assertIn(
            "--db-filter=^1234$",
            odoo["spec"]["template"]["spec"]["containers"][0]["args"],
        )
        self.assertEqual(self.emulator.list("rbac.authorization.k8s.io/v1"), [])


@tagged("post_install", "-at_install")
class TestConfinedExecutor(TenancyCase):
    def _book_deployment(self, template, name="confined"):
        book = self.env["eyrie.deployment.book"].create(
            {
                "name": f"Book of {name}",
                "step_ids": [
                    (0, 0, {"sequence": 1, "name": "Namespace", "kind": "apply",
                            "template": "apiVersion: v1\nkind: Namespace\n"
                            "metadata:\n  name: {{ namespace | to_json }}\n"}),
                    (0, 0, {"sequence": 2, "name": "Payload", "kind": "apply",
                            "template": template}),
                ],
            }
        )  # fmt: skip
        deployment_id = self._create(name, "pgo")
        self.env["eyrie.deployment"].browse(deployment_id).write(
            {"deployment_initialize_book_id": book.id}
        )
        return deployment_id

    def _refused(self, deployment_id):
        before = self.emulator.request_count()
        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        self._settle()
        job = self.env["eyrie.job"].search(
            [("deployment_id", "=", deployment_id), ("action", "=", "initialize")]
        )
        self.assertEqual(job.state, "failed")
        return job, self.emulator.request_count() - before

    def test_book_leaving_the_namespace_fails_before_the_first_call(self):
        crb = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
        secret = "apiVersion: v1\nkind: Secret\n"
        namespace = "apiVersion: v1\nkind: Namespace\n"
        cases = [
            (
                crb + "metadata: {name: pwned}\n",
                "kind rbac.authorization.k8s.io/ClusterRoleBinding is not allowed",
            ),
            (
                secret + "metadata: {name: x, namespace: kube-system}\n",
                (
                    "Step 2 'Payload' \\(apply\\), object 1 refused before "
                    "anything ran: Secret x in namespace kube-system is outside the "
                    "deployment's namespace"
                ),
            ),
            (
                namespace + "metadata: {name: someone-else}\n",
                (
                    "Namespace someone-else is cluster-wide; the only cluster-wide "
                    "object a deployment may touch is its own Namespace"
                ),
            ),
        ]
        for index, (template, message) in enumerate(cases):
            with self.subTest(message=message):
                deployment_id = self._book_deployment(template, f"confined-{index}")
                job, requests = self._refused(deployment_id)
                self.assertRegex(job.error_message, message)
                self.assertEqual(requests, 0, "the cluster was called")
                state = self._read(deployment_id, "state", "error_message")
                self.assertEqual(state["state"], "error")
        self.assertEqual(self.emulator.list(labels=MANAGED), [])

    def test_a_kind_the_cluster_says_is_cluster_wide_is_refused(self):
        self.emulator.add_crd("example.com", "v1", "Gadget", "gadgets", False)
        self.cluster.allowed_kinds += "\nexample.com/Gadget"
        deployment_id = self._book_deployment(
            "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g}\n"
        )
        job, _requests = self._refused(deployment_id)
        self.assertIn("Gadget g is cluster-wide on this cluster", job.error_message)
        # Refused as a whole: not even step 1's Namespace was created.
        self.assertIsNone(self.emulator.get("v1", "Namespace", "confined"))
        self.assertEqual(self.emulator.list("example.com/v1", "Gadget"), [])

    def test_allowed_kinds_are_checked_on_save(self):
        with self.assertRaisesRegex(ValidationError, "'apps Deployment' is not a kind"):
            self.cluster.allowed_kinds = "Namespace\napps Deployment"


@tagged("post_install", "-at_install")
class TestOwnership(TenancyCase):
    def test_a_foreign_namespace_is_never_claimed_nor_dropped(self):
        before = self._seed_foreign_namespace("team-x")
        deployment_id = self._create("intruder", namespace="team-x")
        self._act(deployment_id, "deploy")
        state = self._read(deployment_id, "repository_state", "state", "error_message")
        self.assertEqual(
            (state["repository_state"], state["state"]), ("initialize", "error")
        )
        self.assertIn(
            "apply Namespace team-x refused: it exists and has no eyrie.io/deployment "
            "label: Eyrie did not create it",
            state["error_message"],
        )
        self._act(deployment_id, "drop")
        state = self._read(deployment_id, "state", "error_message")
        self.assertEqual(state["state"], "error")
        self.assertIn(
            "delete Service odoo in namespace team-x refused", state["error_message"]
        )
        self.assertEqual(self._foreign_state("team-x"), before)
        namespace = self.emulator.get("v1", "Namespace", "team-x")
        self.assertNotIn("eyrie.io/deployment", namespace["metadata"].get("labels", {}))

    def test_drop_from_draft_leaves_foreign_objects(self):
        before = self._seed_foreign_namespace("team-y")
        deployment_id = self._create("draft-intruder", namespace="team-y")
        self._act(deployment_id, "drop")
        self.assertIn(
            "refused: it exists and has no eyrie.io/deployment label",
            self._read(deployment_id, "error_message")["error_message"],
        )
        self.assertEqual(self._foreign_state("team-y"), before)

    def test_pause_leaves_an_object_relabelled_by_someone_else(self):
        deployment_id = self._create("relabelled")
        self._act(deployment_id, "deploy")
        k8s.AppsV1Api(self.api).patch_namespaced_deployment(
            "odoo", "relabelled", {"metadata": {"labels": {"eyrie.io/deployment": "1"}}}
        )
        self._act(deployment_id, "pause")
        state = self._read(deployment_id, "repository_state", "state", "error_message")
        self.assertEqual(
            (state["repository_state"], state["state"]), ("deploy", "error")
        )
        self.assertIn(
            "scale Deployment odoo in namespace relabelled refused: it exists and "
            "carries the label eyrie.io/deployment=1 of another deployment",
            state["error_message"],
        )
        odoo = self.emulator.get(
            "apps/v1", "Deployment", "odoo", namespace="relabelled"
        )
        self.assertEqual(odoo["spec"]["replicas"], 1)

    def test_objects_read_together_are_checked_one_by_one(self):
        # The credentials step applies two Secrets, read with one list call.
        deployment_id = self._create("listed")
        self._act(deployment_id, "deploy")
        k8s.CoreV1Api(self.api).patch_namespaced_secret(
            "db-pguser-odoo",
            "listed",
            {"metadata": {"labels": {"eyrie.io/deployment": None}}},
        )
        before = self.emulator.get("v1", "Secret", "db-pguser-odoo", namespace="listed")
        self._act(deployment_id, "deploy")
        self.assertIn(
            "Step 1 'Credentials' (apply) failed: apply Secret db-pguser-odoo in "
            "namespace listed refused: it exists and has no eyrie.io/deployment label",
            self._read(deployment_id, "error_message")["error_message"],
        )
        after = self.emulator.get("v1", "Secret", "db-pguser-odoo", namespace="listed")
        self.assertEqual(
            after["metadata"]["resourceVersion"], before["metadata"]["resourceVersion"]
        )


@tagged("post_install", "-at_install")
class TestNamespaces(TenancyCase):
    def test_cluster_namespaces_are_refused(self):
        for namespace in ("default", "kube-system", "kube-public", "kube-anything"):
            with (
                self.subTest(namespace=namespace),
                self.assertRaisesRegex(
                    Fault,
                    "belongs to the cluster itself .*choose a namespace of your own",
                ),
            ):
                self._create("sys", namespace=namespace)

    def test_scope_namespace_pattern(self):
        self.scope.namespace_pattern = "^team-a-"
        with self.assertRaisesRegex(
            Fault, "'acme' .* does not match the namespace pattern \\^team-a- of scope"
        ):
            self._create("acme")
        self.assertTrue(self._create("acme", namespace="team-a-acme"))
        with self.assertRaisesRegex(ValidationError, "not a valid regular expression"):
            self.scope.namespace_pattern = "team-("

    def test_namespace_unique_across_companies(self):
        company_b = self.env["res.company"].create({"name": "Company B"})
        user_b = new_test_user(
            self.env,
            login="eyrie_company_b",
            groups="eyrie_deployment.group_eyrie_user",
            company_id=company_b.id,
            company_ids=[(6, 0, company_b.ids)],
        )
        scope_b = self.env["eyrie.scope"].create(
            {
                "name": "Tenancy B",
                "cluster_id": self.cluster.id,
                "company_id": company_b.id,
                "domain": "b.example.com",
                "allow_drop": True,
            }
        )
        deployment_a = self._create("shop-live")
        self._act(deployment_a, "deploy")
        with self.assertRaisesRegex(Fault, "already uses this namespace"):
            self.rpc_as(
                user_b,
                "eyrie.deployment",
                "create",
                {
                    "name": "b-shop",
                    "namespace": "shop-live",
                    "deployment_type": "odoo",
                    "scope_id": scope_b.id,
                },
            )
        self.assertEqual(
            self.rpc_as(
                user_b, "eyrie.deployment", "search", [("id", "=", deployment_a)]
            ),
            [],
        )
        self.assertEqual(self._read(deployment_a, "state")["state"], "deploy")
        self.assertTrue(self.emulator.get("v1", "Namespace", "shop-live"))

    def test_scope_cluster_is_fixed_while_deployments_live(self):
        deployment_id = self._create("pinned")
        self._act(deployment_id, "deploy")
        other = self.env["eyrie.cluster"].create({"name": "Other", "dry_run": True})
        with self.assertRaisesRegex(UserError, "has deployments on cluster"):
            self.scope.cluster_id = other


@tagged("post_install", "-at_install")
class TestKubeconfig(TenancyCase):
    def _marker(self):
        path = os.path.join(tempfile.mkdtemp(), "touched")
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        return path

    def _exec_kubeconfig(self, marker):
        config = self.emulator.kubeconfig()
        return config.replace(
            "token: eyrie-test-token",
            "exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n"
            f"      command: /bin/sh\n      args: [-c, 'touch {marker}; echo {{}}']",
        )

    def test_exec_plugin_never_runs(self):
        marker = self._marker()
        kubeconfig = self._exec_kubeconfig(marker)
        self.assertIn("exec:", kubeconfig)
        cluster = self.env["eyrie.cluster"].create({"name": "Exec"})
        with self.assertRaisesRegex(
            ValidationError,
            "user 'emulator' uses 'exec', which runs a program on the Odoo server: use "
            "a token",
        ):
            cluster.kubeconfig = kubeconfig
        # Written around the ORM (an old row, a manual UPDATE): refused at use.
        self.env.cr.execute(
            SQL(
                "UPDATE eyrie_cluster SET kubeconfig = %s WHERE id = %s",
                kubeconfig,
                cluster.id,
            )
        )
        cluster.invalidate_recordset()
        with self.assertRaisesRegex(UserError, "uses 'exec'"):
            cluster.action_test_connection()
        self.assertFalse(os.path.exists(marker))

    def test_file_paths_are_refused(self):
        secret_file = self._marker()
        with open(secret_file, "w") as handle:
            handle.write("server-local-token")
        config = self.emulator.kubeconfig()
        cases = {
            "tokenFile": config.replace(
                "token: eyrie-test-token", f"tokenFile: {secret_file}"
            ),
            "client-key": config.replace(
                "token: eyrie-test-token", f"client-key: {secret_file}"
            ),
            "certificate-authority": config.replace(
                f"server: {self.emulator.url}",
                f"server: {self.emulator.url}\n"
                f"    certificate-authority: {secret_file}",
            ),
        }
        for key, kubeconfig in cases.items():
            with (
                self.subTest(key=key),
                self.assertRaisesRegex(
                    ValidationError,
                    f"uses '{key}', which reads a file on the Odoo server",
                ),
            ):
                self.cluster.kubeconfig = kubeconfig


@tagged("post_install", "-at_install")
class TestLifecycleOwnsItsFields(TenancyCase):
    def test_timers_cannot_be_escaped(self):
        self.scope.write(
            {"deployment_pause_after_seconds": 0, "deployment_drop_after_seconds": 60}
        )
        noop = self.env["eyrie.deployment.book"].create({"name": "Deletes nothing"})
        deployment_id = self._create("timed")
        self._act(deployment_id, "deploy")
        with self.assertRaisesRegex(Fault, "would escape its scope's timers"):
            self.rpc("eyrie.deployment", "write", [deployment_id], {"active": False})
        with self.assertRaisesRegex(Fault, "Only Eyrie managers choose a deployment"):
            self.rpc(
                "eyrie.deployment",
                "write",
                [deployment_id],
                {"deployment_drop_book_id": noop.id},
            )
        deployment = self.env["eyrie.deployment"].browse(deployment_id)
        self.assertEqual(
            deployment.deployment_drop_book_id,
            self.env.ref("eyrie_deployment.eyrie_book_odoo_drop"),
        )
        deployment._set_lifecycle(
            deployed_at=fields.Datetime.now() - timedelta(seconds=120)
        )
        self.env["eyrie.deployment"]._cron_apply_timers()
        self._settle()
        self.assertFalse(deployment.exists())
        self.assertIsNone(self.emulator.get("v1", "Namespace", "timed"))

    def test_another_users_deployment_is_out_of_reach(self):
        deployment_id = self._create("mine")
        for method, args in (
            ("action_deploy", ()),
            ("action_drop", ()),
            ("write", ({"values": '{"replicas": 0}'},)),
            ("unlink", ()),
        ):
            with (
                self.subTest(method=method),
                self.assertRaisesRegex(
                    Fault,
                    "You cannot (deploy|drop) deployment mine: it is|"
                    "doesn't have 'write' access|doesn't have 'unlink' access",
                ),
            ):
                self.rpc_as(
                    self.other, "eyrie.deployment", method, [deployment_id], *args
                )
        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        job_ids = self._read(deployment_id, "job_ids")["job_ids"]
        with self.assertRaisesRegex(
            Fault, "You cannot cancel a job of deployment mine"
        ):
            self.rpc_as(self.other, "eyrie.job", "action_cancel", job_ids[-1:])
        self.assertEqual(self._read(deployment_id, "state")["state"], "initializing")

    def test_a_duplicate_of_another_users_deployment_is_the_copiers(self):
        deployment_id = self._create("theirs")
        self.other.partner_id.email = "other@example.com"
        copy_id = self.rpc_as(self.other, "eyrie.deployment", "copy", deployment_id)
        copy = self.env["eyrie.deployment"].browse(copy_id)
        # Not put on the first user's list, under their name, by someone else.
        self.assertEqual(copy.user_id, self.other)
        self.assertEqual(copy.repository_state, "draft")
        original = self.env["eyrie.deployment"].browse(deployment_id)
        self.assertEqual(original.user_id, self.user)


@tagged("post_install", "-at_install")
class TestCancel(TenancyCase):
    def setUp(self):
        super().setUp()
        # A user without an email address cancels too.
        self.user.partner_id.email = False

    def _jobs(self, deployment_id):
        return self.env["eyrie.job"].search(
            [("deployment_id", "=", deployment_id)], order="id"
        )

    def test_a_job_that_ran_cannot_be_cancelled(self):
        deployment_id = self._create("waiting")
        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        # Nobody plays PGO: the deploy job waits for the database, after the
        # initialize job created the namespace and the PostgresCluster.
        run_queue_jobs(self.env)
        run_queue_jobs(self.env)
        deploy = self._jobs(deployment_id)[-1]
        self.assertEqual((deploy.action, deploy.state), ("deploy", "pending"))
        self.assertTrue(deploy.started_at)
        with self.assertRaisesRegex(
            Fault, "cannot be cancelled: it already ran on the cluster"
        ):
            self.rpc("eyrie.job", "action_cancel", deploy.ids)
        self.assertEqual(deploy.state, "pending")
        self.assertTrue(self.emulator.get("v1", "Namespace", "waiting"))
        self.assertEqual(
            self._read(deployment_id, "repository_state")["repository_state"],
            "initialize",
        )

    def test_cancel_before_anything_ran(self):
        deployment_id = self._create("early")
        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        initialize = self._jobs(deployment_id)[0]
        self.assertIs(self.rpc("eyrie.job", "action_cancel", initialize.ids), True)
        self.assertEqual(
            self._read(deployment_id, "repository_state", "state"),
            {"id": deployment_id, "repository_state": "draft", "state": "draft"},
        )
        deployment = self.env["eyrie.deployment"].browse(deployment_id)
        self.assertIn(
            "cancelled the initialize job",
            " | ".join(deployment.message_ids.mapped("body")),
        )
        self.assertIsNone(self.emulator.get("v1", "Namespace", "early"))

    def test_a_failed_deploy_of_a_user_without_an_email_address_says_why(self):
        self.emulator.fail("PATCH", "/secrets/odoo", 422, message="refused")
        deployment_id = self._create("no-mail")
        self._act(deployment_id, "deploy")
        found = self._read(deployment_id, "state", "error_message")
        self.assertEqual(found["state"], "error")
        self.assertIn("refused", found["error_message"])
        deployment = self.env["eyrie.deployment"].browse(deployment_id)
        self.assertIn("job failed", " | ".join(deployment.message_ids.mapped("body")))

    def test_cancel_after_a_failed_first_deploy_stays_out_of_draft(self):
        self.emulator.fail("PATCH", "/secrets/odoo", 422, message="refused")
        deployment_id = self._create("retried")
        self._act(deployment_id, "deploy")
        self.assertTrue(self.emulator.get("v1", "Namespace", "retried"))
        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        initialize = self._jobs(deployment_id).filtered(
            lambda j: j.state == "pending" and j.action == "initialize"
        )
        self.rpc("eyrie.job", "action_cancel", initialize.ids)
        self.assertEqual(
            self._read(deployment_id, "repository_state")["repository_state"],
            "initialize",
        )
        with self.assertRaisesRegex(Fault, "has left draft"):
            self.rpc(
                "eyrie.deployment", "write", [deployment_id], {"namespace": "elsewhere"}
            )


@tagged("post_install", "-at_install")
class TestSharedDatabase(TenancyCase):
    def test_another_users_database_only_with_its_owners_consent(self):
        """Another user of the company picks this user's PostgreSQL
        deployment for their Odoo: refused until the owner allows it, then
        their Odoo gets a role of its own, never the owner's password, and
        cannot name the role it connects as."""
        db_id = self._create("owners-db", "pgo")
        self._act(db_id, "deploy")

        def borrower(**vals):
            return self.rpc_as(
                self.other,
                "eyrie.deployment",
                "create",
                {
                    "name": "borrower",
                    "deployment_type": "odoo",
                    "scope_id": self.scope.id,
                    "database_mode": "shared",
                    "database_deployment_id": db_id,
                }
                | vals,
            )

        with self.assertRaisesRegex(Fault, "connects with a role of its own"):
            borrower(values='{"db_user": "odoo"}')
        odoo_id = borrower()
        with self.assertRaisesRegex(
            Fault, "its owner \\(eyrie_tenant.*\\) has not allowed it"
        ):
            self.rpc_as(self.other, "eyrie.deployment", "action_deploy", [odoo_id])
        # Nor can the borrower allow itself: the list is the owner's.
        with self.assertRaises(Fault):
            self.rpc_as(
                self.other,
                "eyrie.deployment",
                "write",
                [db_id],
                {"database_consumer_ids": [(4, odoo_id)]},
            )
        self.rpc(
            "eyrie.deployment",
            "write",
            [db_id],
            {"database_consumer_ids": [(4, odoo_id)]},
        )
        # Allowed, but its role is created by the owner's next deploy.
        with self.assertRaisesRegex(
            Fault, "its owner \\(or an Eyrie manager\\) updates \\(deploys\\)"
        ):
            self.rpc_as(self.other, "eyrie.deployment", "action_deploy", [odoo_id])
        self.assertIsNone(self.emulator.get("v1", "Namespace", "borrower"))
        self._act(db_id, "deploy")
        self._act(odoo_id, "deploy", user=self.other)
        self.assertEqual(self._read(odoo_id, "state")["state"], "deploy")
        role = f"eyrie-odoo-{odoo_id}"
        db = self.env["eyrie.deployment"].browse(db_id)
        secret = self.emulator.get("v1", "Secret", "odoo", namespace="borrower")
        password = base64.b64decode(secret["data"]["db-password"]).decode()
        self.assertEqual(password, db.sudo().credentials[f"pguser_{role}"])
        self.assertNotEqual(password, db.sudo().credentials["pguser_odoo"])
        users = self.emulator.get(PGO, "PostgresCluster", "db", namespace="owners-db")
        self.assertEqual(
            [user["name"] for user in users["spec"]["users"]], ["odoo", role]
        )

    def test_an_owner_deploying_on_their_own_database_updates_it_first(self):
        db_id = self._create("own-db", "pgo")
        self._act(db_id, "deploy")
        odoo_id = self._create(
            "own-shop", database_mode="shared", database_deployment_id=db_id
        )
        # Allowed at once (the same owner), the role created by an update of
        # the database chained before the Odoo's jobs.
        self._act(odoo_id, "deploy")
        self.assertEqual(self._read(odoo_id, "state")["state"], "deploy")
        jobs = self.env["eyrie.job"].search(
            [("deployment_id", "in", (db_id, odoo_id))], order="id"
        )
        self.assertEqual(
            [(job.deployment_name, job.action) for job in jobs],
            [
                ("own-db", "initialize"),
                ("own-db", "deploy"),
                ("own-db", "deploy"),
                ("own-shop", "initialize"),
                ("own-shop", "deploy"),
            ],
        )

    def test_shared_database_is_named_after_the_namespace(self):
        db_id = self._create("pg-shared", "pgo")
        with self.assertRaisesRegex(Fault, "remove 'db_name' from its values"):
            self._create(
                "thief",
                database_mode="shared",
                database_deployment_id=db_id,
                values='{"db_name": "victim"}',
            )

    def test_the_dropdb_job_is_the_one_object_outside(self):
        db_id = self._create("pg-drop", "pgo")
        self._act(db_id, "deploy")
        odoo_id = self._create(
            "on-shared", database_mode="shared", database_deployment_id=db_id
        )
        self._act(odoo_id, "deploy")
        self._act(odoo_id, "drop")
        self.assertIsNone(self._read(odoo_id, "state"))
        self.assertIsNone(self.emulator.get("v1", "Namespace", "on-shared"))
        self.assertEqual(
            self.emulator.list(PGO, "PostgresCluster", "pg-drop")[0]["metadata"][
                "name"
            ],
            "db",
        )


@tagged("post_install", "-at_install")
class TestNoRawApiAnswers(TenancyCase):
    @mute_logger("odoo.addons.eyrie_deployment.models.eyrie_job_runner")
    def test_errors_carry_the_api_message_only(self):
        self.emulator.fail(
            "PATCH",
            "/secrets/odoo",
            403,
            message='secrets "odoo" is forbidden',
            headers={"X-Leak": "marker-headers-123"},
        )
        deployment_id = self._create("leaky")
        self._act(deployment_id, "deploy")
        deployment = self.env["eyrie.deployment"].browse(deployment_id)
        job = deployment.job_ids.filtered(lambda j: j.action == "initialize")
        self.assertIn('secrets "odoo" is forbidden (HTTP 403)', job.error_message)
        texts = "\n".join([job.log, job.error_message, self._messages(deployment)])
        for leak in ("marker-headers-123", "HTTP response headers", "Traceback"):
            self.assertNotIn(leak, texts)

    def _messages(self, deployment):
        return " | ".join(deployment.message_ids.mapped("body"))
