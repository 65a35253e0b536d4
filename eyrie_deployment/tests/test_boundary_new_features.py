"""The tenancy holes closed by "Issue 20, part 1", each tried again as a
plain user over XML-RPC against the emulated Kubernetes API:

1. a clone sent back to draft, moved to another cluster record, or whose
   source namespace is no longer its source's, copying someone else's
   database;
2. Logs reading a namespace that is not the deployment's (a foreign one
   named like it, or another company's on another cluster record of the
   same API server);
3. a hostname served twice (saved twice, or already served by an Ingress
   Eyrie did not create);
4. the bucket's keys in the errors an API server or a webhook quotes;
5. the deployment's secrets in the Logs of its pods.

Each test asserts what the user reads (the refusal, the state, the texts)
and what the cluster holds afterwards."""

import base64
import json
from xmlrpc.client import Fault

from kubernetes import client as k8s

from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from .kube_common import BUCKET, PGO
from .test_tenancy import TenancyCase

INGRESS = "networking.k8s.io/v1"
RUNNER_LOGGER = "odoo.addons.eyrie_deployment.models.eyrie_job_runner"
# The bucket's keys, in the s3.conf the books render into the pgbackrest-s3
# Secret.
KEY_ID = BUCKET["backup_s3_key_id"]
SECRET_KEY = BUCKET["backup_s3_secret_key"]
S3_CONF = f"[global]\nrepo2-s3-key={KEY_ID}\nrepo2-s3-key-secret={SECRET_KEY}\n"


def _b64(text):
    return base64.b64encode(text.encode()).decode()


def _go_quoted(text):
    """``text`` as Go's %q writes it (an API server's field errors)."""
    return (
        '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    )


def _key_forms():
    """Every form of the bucket's keys a message may carry: raw (inside the
    JSON- and Go-quoted s3.conf too), base64 alone and the whole s3.conf in
    base64 (with and without its padding)."""
    forms = {KEY_ID, SECRET_KEY, _b64(KEY_ID), _b64(SECRET_KEY), _b64(S3_CONF)}
    return forms | {form.rstrip("=") for form in forms}


class BoundaryCase(TenancyCase):
    LOGIN = "eyrie_boundary"

    def setUp(self):
        super().setUp()
        self.emulator.seed_operator_crds()
        self.core = k8s.CoreV1Api(self.api)

    def _fault(self, call, *args, **kwargs):
        with self.assertRaises(Fault) as caught:
            call(*args, **kwargs)
        return caught.exception.faultString

    def _add_pod(self, namespace, name, log, container="main"):
        """A pod in ``namespace`` whose container printed ``log``."""
        self.core.create_namespaced_pod(
            namespace,
            {
                "metadata": {"name": name},
                "spec": {"containers": [{"name": container, "image": "busybox"}]},
            },
        )
        self.emulator.set_logs(namespace, name, container, log)

    def _deployed(self, name, deployment_type="odoo", **vals):
        deployment_id = self._create(name, deployment_type, **vals)
        self._act(deployment_id, "deploy")
        state = self._read(deployment_id, "state", "error_message")
        self.assertEqual(state["state"], "deploy", state["error_message"])
        return deployment_id


@tagged("post_install", "-at_install")
class TestCloneLineage(BoundaryCase):
    """Hole 1: a clone copies its source's database inside the source's
    cluster, from the namespace Eyrie created for the source, or not at all."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.clones = cls.env["eyrie.scope"].create(
            {
                "name": "Clones",
                "cluster_id": cls.cluster.id,
                "domain": "clones.example.com",
                "allow_drop": True,
                "neutralize_clones": False,
            }
        )
        # Another cluster record, on the same API server: someone else's
        # namespaces may be named like the source's there.
        cls.far_cluster = cls.env["eyrie.cluster"].create(
            {"name": "Far", "kubeconfig": cls.emulator.kubeconfig()}
        )
        cls.far = cls.env["eyrie.scope"].create(
            {
                "name": "Far away",
                "cluster_id": cls.far_cluster.id,
                "domain": "far.example.com",
                "allow_drop": True,
            }
        )

    def _clone(self, source_id, name):
        action = self.rpc(
            "eyrie.deployment",
            "action_clone",
            [source_id],
            name=name,
            scope_id=self.clones.id,
            neutralize=False,
        )
        return action["res_id"]

    def _cancelled_back_to_draft(self, clone_id, source_id):
        """The clone's initialize job cancelled before it ran: a draft again,
        which still remembers its source."""
        initialize = self.env["eyrie.job"].search(
            [("deployment_id", "=", clone_id), ("action", "=", "initialize")]
        )
        self.assertIs(self.rpc("eyrie.job", "action_cancel", initialize.ids), True)
        clone = self._read(clone_id, "repository_state", "cloned_from_id")
        self.assertEqual(clone["repository_state"], "draft")
        self.assertEqual(clone["cloned_from_id"][0], source_id)

    def test_a_draft_clone_cannot_move_to_a_scope_on_another_cluster(self):
        source_id = self._deployed("shop")
        clone_id = self._clone(source_id, "shop-copy")
        self._cancelled_back_to_draft(clone_id, source_id)
        message = self._fault(
            self.rpc,
            "eyrie.deployment",
            "write",
            [clone_id],
            {"scope_id": self.far.id},
        )
        self.assertIn(
            "Clone shop-copy copies its data from shop on cluster Emulated for "
            "eyrie_boundary, but its scope Far away is on cluster Far. Choose a "
            "scope on Emulated for eyrie_boundary for it.",
            message,
        )
        self.assertEqual(
            self._read(clone_id, "scope_id")["scope_id"][0], self.clones.id
        )
        self.assertIsNone(self.emulator.get("v1", "Namespace", "shop-copy"))

    def test_a_draft_clone_whose_scope_moved_to_another_cluster_is_not_deployed(
        self,
    ):
        source_id = self._deployed("store")
        clone_id = self._clone(source_id, "store-copy")
        self._cancelled_back_to_draft(clone_id, source_id)
        # The manager moves the scope, which holds only the draft clone.
        self.clones.cluster_id = self.far_cluster
        message = self._fault(self.rpc, "eyrie.deployment", "action_deploy", [clone_id])
        self.assertIn(
            "Clone store-copy copies its data from store on cluster Emulated for "
            "eyrie_boundary, but its scope Clones is on cluster Far.",
            message,
        )
        self._settle()
        self.assertIsNone(self.emulator.get("v1", "Namespace", "store-copy"))
        self.assertEqual(
            self.emulator.list(PGO, "PostgresCluster", namespace="store-copy"), []
        )

    def _clone_of_a_relabelled_source(self, name):
        """A deployed source whose namespace is then another team's (Eyrie's
        label gone), and a clone of it, whose first deploy ran."""
        source_id = self._deployed(name)
        self.core.patch_namespace(
            name,
            {"metadata": {"labels": {"eyrie.io/deployment": None, "team": "x"}}},
        )
        clone_id = self._clone(source_id, f"{name}-copy")
        self._settle()
        return source_id, clone_id

    @mute_logger(RUNNER_LOGGER)
    def test_a_clone_whose_source_namespace_is_someone_elses_copies_nothing(self):
        source_id, clone_id = self._clone_of_a_relabelled_source("ledger")
        state = self._read(clone_id, "repository_state", "state", "error_message")
        self.assertEqual(state["state"], "error")
        self.assertIn(
            f"namespace ledger on cluster Emulated for eyrie_boundary is not the "
            f"one Eyrie created for deployment {source_id} (its eyrie.io/deployment "
            "label is missing): nothing of it is read",
            state["error_message"],
        )
        initialize = self.env["eyrie.job"].search(
            [("deployment_id", "=", clone_id), ("action", "=", "initialize")]
        )
        self.assertEqual(initialize.state, "failed")
        # Refused before its first step: nothing of the clone on the cluster.
        self.assertEqual(
            self.emulator.list(PGO, "PostgresCluster", namespace="ledger-copy"), []
        )
        self.assertIsNone(self.emulator.get("v1", "Namespace", "ledger-copy"))

    # -- a clone the checks stopped is still dropped --------------------------

    def _dropped(self, deployment_id):
        """Drop over XML-RPC, as its user: the deployment is gone."""
        self._act(deployment_id, "drop")
        self.assertIsNone(
            self._read(deployment_id, "state"),
            self.env["eyrie.job"]
            .search([("deployment_id", "=", deployment_id)])
            .mapped("error_message"),
        )

    @mute_logger(RUNNER_LOGGER)
    def test_a_clone_stopped_by_the_source_namespace_check_can_be_dropped(self):
        """Out of draft, it can only go by Drop, whose book reads nothing of
        the source's namespace."""
        _source_id, clone_id = self._clone_of_a_relabelled_source("books")
        self.assertEqual(
            self._read(clone_id, "repository_state", "state"),
            {"id": clone_id, "repository_state": "initialize", "state": "error"},
        )
        before = self._foreign_state("books")
        self._dropped(clone_id)
        self.assertEqual(self._foreign_state("books"), before)

    @mute_logger(RUNNER_LOGGER)
    def test_a_clone_whose_source_was_dropped_before_it_started_can_be_dropped(self):
        """The message of its next deploy says "Drop this clone": Drop works."""
        source_id, clone_id = self._clone_of_a_relabelled_source("till")
        # The team hands the namespace back; the source's owner drops it.
        self.core.patch_namespace(
            "till", {"metadata": {"labels": {"eyrie.io/deployment": str(source_id)}}}
        )
        self._dropped(source_id)
        message = self._fault(self.rpc, "eyrie.deployment", "action_deploy", [clone_id])
        self.assertIn(
            "Clone till-copy cannot start: its source till was dropped before the "
            "clone copied its data. Drop this clone",
            message,
        )
        self._dropped(clone_id)


@tagged("post_install", "-at_install")
class TestLogsBoundary(BoundaryCase):
    """Holes 2 and 5: Logs read only the namespace Eyrie created for the
    deployment, and never show its secrets."""

    FOREIGN_LOG = "INFO team-x payroll export: ssn=078-05-1120\n"

    def test_logs_of_a_foreign_namespace_named_like_the_deployment(self):
        self._seed_foreign_namespace("team-x")
        self._add_pod("team-x", "payroll", self.FOREIGN_LOG)
        deployment_id = self._create("intruder", namespace="team-x")
        self._act(deployment_id, "deploy")
        # Its deploy was refused, but it left draft.
        self.assertEqual(
            self._read(deployment_id, "repository_state", "state"),
            {"id": deployment_id, "repository_state": "initialize", "state": "error"},
        )
        message = self._fault(
            self.rpc, "eyrie.deployment", "read_logs", [deployment_id]
        )
        self.assertIn(
            "The logs of intruder could not be read: namespace team-x on cluster "
            f"Emulated for eyrie_boundary is not the one Eyrie created for "
            f"deployment {deployment_id} (its eyrie.io/deployment label is "
            "missing)",
            message,
        )
        self.assertNotIn("payroll", message)
        self.assertNotIn("078-05-1120", message)

    def test_logs_of_another_companys_namespace_on_another_cluster_record(self):
        shop_id = self._deployed("shop-a")
        self._add_pod("shop-a", "odoo-a", "INFO company A invoice INV/0042 paid\n")
        company_b = self.env["res.company"].create({"name": "Company B"})
        user_b = new_test_user(
            self.env,
            login="eyrie_boundary_b",
            groups="eyrie_deployment.group_eyrie_user",
            company_id=company_b.id,
            company_ids=[(6, 0, company_b.ids)],
        )
        # Company B's cluster record: the same API server, another name.
        cluster_b = self.env["eyrie.cluster"].create(
            {"name": "Same server, B", "kubeconfig": self.emulator.kubeconfig()}
        )
        scope_b = self.env["eyrie.scope"].create(
            {
                "name": "Scope B",
                "cluster_id": cluster_b.id,
                "company_id": company_b.id,
                "domain": "b.example.com",
                "allow_drop": True,
            }
        )
        b_id = self.rpc_as(
            user_b,
            "eyrie.deployment",
            "create",
            {
                "name": "b-shop",
                "namespace": "shop-a",
                "deployment_type": "odoo",
                "scope_id": scope_b.id,
            },
        )
        self._act(b_id, "deploy", user=user_b)
        found = self.rpc_as(
            user_b,
            "eyrie.deployment",
            "search_read",
            [("id", "=", b_id)],
            ["repository_state", "state", "error_message"],
        )[0]
        self.assertEqual(
            (found["repository_state"], found["state"]), ("initialize", "error")
        )
        self.assertIn(
            f"carries the label eyrie.io/deployment={shop_id} of another deployment",
            found["error_message"],
        )
        message = self._fault(
            self.rpc_as, user_b, "eyrie.deployment", "read_logs", [b_id]
        )
        self.assertIn(
            "The logs of b-shop could not be read: namespace shop-a on cluster Same "
            f"server, B is not the one Eyrie created for deployment {b_id} (its "
            f"eyrie.io/deployment label is {shop_id})",
            message,
        )
        self.assertNotIn("INV/0042", message)
        self.assertNotIn("odoo-a", message)
        # Company A's own user still reads them.
        logs = self.rpc("eyrie.deployment", "read_logs", [shop_id])
        self.assertIn(
            "INFO company A invoice INV/0042 paid",
            next(c["log"] for p in logs["pods"] for c in p["containers"]),
        )

    def test_logs_mask_the_deployments_secrets(self):
        scope = self.env["eyrie.scope"].create(
            {
                "name": "Bucket",
                "cluster_id": self.cluster.id,
                "domain": "preview.example.com",
                "allow_drop": True,
            }
            | BUCKET
        )
        deployment_id = self._deployed("chatty", scope_id=scope.id)
        credentials = self.env["eyrie.deployment"].browse(deployment_id).sudo()
        credentials = credentials.credentials
        admin, db = credentials["admin_password"], credentials["db_password"]
        self._add_pod(
            "chatty",
            "odoo-debug",
            f"INFO admin login with password {admin} ok\n"
            f"DEBUG dsn=postgresql://odoo:{db}@db-primary/chatty\n"
            f"DEBUG s3 key {KEY_ID} secret {SECRET_KEY} region eu-west-1\n"
            f"DEBUG env AWS_SECRET_ACCESS_KEY={_b64(SECRET_KEY)} (base64)\n"
            "INFO HTTP service running on 0.0.0.0:8069\n",
        )
        self.core.create_namespaced_event(
            "chatty",
            {
                "metadata": {"name": "odoo-debug.1"},
                "involvedObject": {"kind": "Pod", "name": "odoo-debug"},
                "reason": "Failed",
                "type": "Warning",
                "message": f"Error: exec: ADMIN_PASSWORD={admin} not found",
            },
        )
        logs = self.rpc("eyrie.deployment", "read_logs", [deployment_id])
        log = logs["pods"][0]["containers"][0]["log"]
        self.assertEqual(
            log.splitlines(),
            [
                "INFO admin login with password *** ok",
                "DEBUG dsn=postgresql://odoo:***@db-primary/chatty",
                "DEBUG s3 key *** secret *** region eu-west-1",
                "DEBUG env AWS_SECRET_ACCESS_KEY=*** (base64)",
                "INFO HTTP service running on 0.0.0.0:8069",
            ],
        )
        self.assertEqual(
            logs["events"][0]["message"], "Error: exec: ADMIN_PASSWORD=*** not found"
        )
        text = json.dumps(logs)
        for secret in (admin, db, KEY_ID, SECRET_KEY, _b64(KEY_ID), _b64(SECRET_KEY)):
            self.assertNotIn(secret, text)

    def test_logs_mask_the_bucket_keys_as_their_secret_holds_them(self):
        """The pgbackrest-s3 Secret holds both keys in one base64 value: a
        container printing it (a debug Job's ``kubectl get secret -o yaml``)
        shows both keys to whoever decodes it."""
        scope = self.env["eyrie.scope"].create(
            {
                "name": "Bucket",
                "cluster_id": self.cluster.id,
                "domain": "preview.example.com",
                "allow_drop": True,
            }
            | BUCKET
        )
        deployment_id = self._deployed("dumper", scope_id=scope.id)
        self._add_pod(
            "dumper",
            "debug",
            f"apiVersion: v1\ndata:\n  s3.conf: {_b64(S3_CONF)}\nkind: Secret\n",
        )
        logs = self.rpc("eyrie.deployment", "read_logs", [deployment_id])
        self.assertEqual(
            logs["pods"][0]["containers"][0]["log"].splitlines(),
            ["apiVersion: v1", "data:", "  s3.conf: ***", "kind: Secret"],
        )


@tagged("post_install", "-at_install")
class TestHostnames(BoundaryCase):
    """Hole 3: one deployment per hostname on a cluster, and never a host an
    Ingress Eyrie did not create for the deployment already serves."""

    def test_a_hostname_is_saved_once_per_cluster(self):
        shop_id = self._deployed("brand")
        hostname = self._read(shop_id, "hostname")["hostname"]
        self.assertEqual(hostname, "brand.preview.example.com")
        message = self._fault(
            self.rpc_as,
            self.other,
            "eyrie.deployment",
            "create",
            {
                "name": "lookalike",
                "deployment_type": "odoo",
                "scope_id": self.scope.id,
                "values": json.dumps({"hostname": hostname}),
            },
        )
        self.assertIn(
            "Another deployment on this cluster is already served at this hostname",
            message,
        )
        self.assertFalse(
            self.env["eyrie.deployment"].search([("name", "=", "lookalike")])
        )
        # Nor by changing the values of a deployment of their own.
        own_id = self.rpc_as(
            self.other,
            "eyrie.deployment",
            "create",
            {"name": "lookalike", "deployment_type": "odoo", "scope_id": self.scope.id},
        )
        message = self._fault(
            self.rpc_as,
            self.other,
            "eyrie.deployment",
            "write",
            [own_id],
            {"values": json.dumps({"hostname": hostname})},
        )
        self.assertIn("already served at this hostname", message)
        self.assertEqual(
            self._read(own_id, "hostname")["hostname"],
            "lookalike.preview.example.com",
        )

    def _foreign_ingress(self, host):
        """An Ingress Eyrie did not create, serving ``host``, in namespace
        team-web."""
        self.core.create_namespace({"metadata": {"name": "team-web"}})
        backend = {"service": {"name": "site", "port": {"number": 80}}}
        path = {"path": "/", "pathType": "Prefix", "backend": backend}
        rule = {"host": host, "http": {"paths": [path]}}
        k8s.NetworkingV1Api(self.api).create_namespaced_ingress(
            "team-web", {"metadata": {"name": "site"}, "spec": {"rules": [rule]}}
        )

    @mute_logger(RUNNER_LOGGER)
    def test_a_host_served_by_a_foreign_ingress_is_refused(self):
        host = "web.preview.example.com"
        self._foreign_ingress(host)
        before = self.emulator.get(INGRESS, "Ingress", "site", namespace="team-web")
        deployment_id = self._create("web")
        self.assertEqual(self._read(deployment_id, "hostname")["hostname"], host)
        self._act(deployment_id, "deploy")
        state = self._read(deployment_id, "state", "error_message")
        self.assertEqual(state["state"], "error")
        self.assertIn(
            f"host {host} is already served on cluster Emulated for eyrie_boundary "
            "by an Ingress Eyrie did not create for this deployment: set another "
            "'hostname' in its values",
            state["error_message"],
        )
        after = self.emulator.get(INGRESS, "Ingress", "site", namespace="team-web")
        self.assertEqual(after, before)
        serving = [
            (ingress["metadata"]["namespace"], ingress["metadata"]["name"])
            for ingress in self.emulator.list(INGRESS, "Ingress")
            if host in {rule.get("host") for rule in ingress["spec"]["rules"]}
        ]
        self.assertEqual(serving, [("team-web", "site")])

    @mute_logger(RUNNER_LOGGER)
    def test_a_fleet_update_lists_the_clusters_ingresses_once(self):
        first, second = self._create("web-one"), self._create("web-two")
        self._act(first, "deploy")
        self.assertEqual(self._read(first, "state")["state"], "deploy")
        # Within seconds, the next deploy checks its host against that list:
        # it no longer asks for every Ingress of the cluster.
        self.emulator.fail("GET", "networking.k8s.io/v1/ingresses", 500, times=None)
        self._act(second, "deploy")
        self.assertEqual(self._read(second, "state")["state"], "deploy")

    @mute_logger(RUNNER_LOGGER)
    def test_a_host_seen_taken_is_checked_again(self):
        self._foreign_ingress("web.preview.example.com")
        deployment_id = self._create("web")
        self._act(deployment_id, "deploy")
        self.assertEqual(self._read(deployment_id, "state")["state"], "error")
        # The site moved away: the list that saw it is not trusted again.
        k8s.NetworkingV1Api(self.api).delete_namespaced_ingress("site", "team-web")
        self._act(deployment_id, "deploy")
        self.assertEqual(self._read(deployment_id, "state")["state"], "deploy")


@tagged("post_install", "-at_install")
class TestBucketKeysScrubbed(BoundaryCase):
    """Hole 4: the bucket's keys, quoted by an API server (Go's %q) or an
    admission webhook (JSON, base64), never reach a text a user reads."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bucket = cls.env["eyrie.scope"].create(
            {
                "name": "Bucket",
                "cluster_id": cls.cluster.id,
                "domain": "preview.example.com",
                "allow_drop": True,
            }
            | BUCKET
        )

    def _texts_the_company_reads(self, deployment_id):
        """What another user of the company reads of the deployment over
        XML-RPC: its jobs' logs and errors, its error message, its chatter."""
        jobs = self.rpc_as(
            self.other,
            "eyrie.job",
            "search_read",
            [("deployment_id", "=", deployment_id)],
            ["action", "state", "log", "error_message"],
        )
        deployment = self.rpc_as(
            self.other,
            "eyrie.deployment",
            "read",
            [deployment_id],
            ["error_message"],
        )[0]
        messages = self.rpc_as(
            self.other,
            "mail.message",
            "search_read",
            [("model", "=", "eyrie.deployment"), ("res_id", "=", deployment_id)],
            ["body"],
        )
        return jobs, deployment, messages

    @mute_logger(RUNNER_LOGGER)
    def test_keys_quoted_by_the_api_server_or_a_webhook_are_masked(self):
        # The API server quotes the invalid value Go-style, newlines escaped.
        self.emulator.fail(
            "PATCH",
            "/secrets/pgbackrest-s3",
            422,
            message=(
                'Secret "pgbackrest-s3" is invalid: data[s3.conf]: Invalid value: '
                f"{_go_quoted(S3_CONF)}: must not contain the key in clear"
            ),
        )
        deployment_id = self._create("vault", scope_id=self.bucket.id)
        self._act(deployment_id, "deploy")
        # An admission webhook quotes the object it refuses: JSON, and base64.
        refused = {
            "kind": "Secret",
            "metadata": {"name": "pgbackrest-s3"},
            "stringData": {"s3.conf": S3_CONF},
            "data": {"s3.conf": _b64(S3_CONF)},
        }
        self.emulator.fail(
            "PATCH",
            "/secrets/pgbackrest-s3",
            400,
            message=(
                'admission webhook "secrets.policy.example.com" denied the '
                f"request: {json.dumps(refused)} holds an access key"
            ),
        )
        self._act(deployment_id, "deploy")
        jobs, deployment, messages = self._texts_the_company_reads(deployment_id)
        self.assertEqual(
            sorted((job["action"], job["state"]) for job in jobs),
            [("deploy", "cancelled")] * 2 + [("initialize", "failed")] * 2,
        )
        errors = "\n".join(job["error_message"] for job in jobs)
        # The messages are kept, the keys masked.
        self.assertIn(
            'Secret "pgbackrest-s3" is invalid: data[s3.conf]: Invalid value: "***',
            errors,
        )
        self.assertIn('admission webhook "secrets.policy.example.com"', errors)
        self.assertIn("(HTTP 422)", errors)
        self.assertIn("(HTTP 400)", errors)
        self.assertIn("admission webhook", deployment["error_message"])
        texts = {
            "job logs": "\n".join(job["log"] or "" for job in jobs),
            "job errors": errors,
            "deployment error": deployment["error_message"],
            "chatter": "\n".join(message["body"] for message in messages),
        }
        self.assertIn("admission webhook", texts["chatter"])
        for where, text in texts.items():
            for form in _key_forms():
                with self.subTest(where=where, form=form):
                    self.assertNotIn(form, text)
        # The Secret was never applied: nothing of it on the cluster.
        self.assertIsNone(
            self.emulator.get("v1", "Secret", "pgbackrest-s3", namespace="vault")
        )
