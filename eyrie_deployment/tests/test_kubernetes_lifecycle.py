from odoo.tests import tagged

from .kube_common import MANAGED, KubernetesRpcCase
from .queue_jobs import resume_waiting_jobs, run_queue_jobs
from .test_kubernetes_steps import CONFIG, NAMESPACE, ROLLOUT, SCALE_DOWN, SECRET, WEB

DROP = [
    (
        "Web",
        "delete",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n",
    ),
    ("Namespace", "delete", NAMESPACE),
    (
        "Gone",
        "wait",
        NAMESPACE + "wait:\n  for: deleted\n  timeout: 300\n",
    ),
]


@tagged("post_install", "-at_install")
class TestKubernetesLifecycleXmlRpc(KubernetesRpcCase):
    """The seed's lifecycle, driven over XML-RPC by an Eyrie user, against a
    Kubernetes API reached through the official client."""

    LOGIN = "eyrie_k8s"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cluster = cls.cluster
        books = {
            "initialize": [
                ("Namespace", "apply", NAMESPACE),
                ("Config", "apply", CONFIG),
                ("Secret", "apply", SECRET),
            ],
            "deploy": [("Web", "apply", WEB), ("Rollout", "wait", ROLLOUT)],
            "pause": [("Scale down", "scale", SCALE_DOWN)],
            "drop": DROP,
        }
        scope_vals = {
            "name": "RPC k8s",
            "cluster_id": cluster.id,
            "allow_drop": True,
            "domain": "test.example.com",
            # Keys the custom books above read.
            "extra_value_keys": "web_replicas, password",
        }
        for action, steps in books.items():
            book = cls.env["eyrie.deployment.book"].create(
                {
                    "name": f"RPC k8s {action}",
                    "step_ids": [
                        (0, 0, {"sequence": i, "name": n, "kind": k, "template": t})
                        for i, (n, k, t) in enumerate(steps)
                    ],
                }
            )
            scope_vals[f"deployment_{action}_book_id"] = book.id
        cls.scope = cls.env["eyrie.scope"].create(scope_vals)

    def _state(self, deployment_id):
        record = self.rpc(
            "eyrie.deployment", "read", [deployment_id], ["repository_state", "state"]
        )[0]
        return record["repository_state"], record["state"]

    def _settle(self):
        """Run the job runner as its cron would, playing the Deployment
        controller (rollout status) and letting waiting jobs' time pass."""
        Job = self.env["eyrie.job"]
        for _round in range(20):
            run_queue_jobs(self.env)
            self._report_rollout()
            active = Job.search([("state", "in", ("pending", "running"))])
            if not active:
                return
            resume_waiting_jobs(self.env)
        raise AssertionError("jobs still pending")

    def _report_rollout(self):
        web = self.emulator.get("apps/v1", "Deployment", "web", namespace="rpc-k8s")
        if web:
            replicas = web["spec"].get("replicas", 1)
            self.emulator.set_status(
                "apps/v1",
                "Deployment",
                "web",
                {
                    "observedGeneration": web["metadata"].get("generation", 1),
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "availableReplicas": replicas,
                },
                namespace="rpc-k8s",
            )

    def test_deploy_pause_resume_drop(self):
        deployment_id = self.rpc(
            "eyrie.deployment",
            "create",
            {
                "name": "rpc-k8s",
                "deployment_type": "odoo",
                "scope_id": self.scope.id,
                "values": '{"web_replicas": 2, "password": "s3cr3t-pw"}',
            },
        )
        labels = {**MANAGED, "eyrie.io/deployment": str(deployment_id)}

        self.assertIs(
            self.rpc("eyrie.deployment", "action_deploy", [deployment_id]), True
        )
        self.assertEqual(self._state(deployment_id), ("initialize", "initializing"))
        self._settle()
        self.assertEqual(self._state(deployment_id), ("deploy", "deploy"))
        kinds = sorted(obj["kind"] for obj in self.emulator.list(labels=labels))
        self.assertEqual(kinds, ["ConfigMap", "Deployment", "Namespace", "Secret"])
        web = self.emulator.get("apps/v1", "Deployment", "web", namespace="rpc-k8s")
        self.assertEqual(web["spec"]["replicas"], 2)

        self.rpc("eyrie.deployment", "action_pause", [deployment_id])
        self._settle()
        self.assertEqual(self._state(deployment_id), ("pause", "pause"))
        web = self.emulator.get("apps/v1", "Deployment", "web", namespace="rpc-k8s")
        self.assertEqual(web["spec"]["replicas"], 0)
        # Data objects survive a pause.
        self.assertTrue(
            self.emulator.get("v1", "Secret", "credentials", namespace="rpc-k8s")
        )

        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        self._settle()
        self.assertEqual(self._state(deployment_id), ("deploy", "deploy"))
        web = self.emulator.get("apps/v1", "Deployment", "web", namespace="rpc-k8s")
        self.assertEqual(web["spec"]["replicas"], 2)

        self.rpc("eyrie.deployment", "action_drop", [deployment_id])
        self._settle()
        self.assertFalse(
            self.rpc("eyrie.deployment", "search", [("id", "=", deployment_id)])
        )
        self.assertEqual(self.emulator.list(labels=labels), [])
        jobs = self.rpc(
            "eyrie.job",
            "search_read",
            [("deployment_name", "=", "rpc-k8s")],
            ["action", "state", "log", "error_message"],
        )
        self.assertEqual(
            sorted(job["action"] for job in jobs),
            ["deploy", "deploy", "drop", "initialize", "pause"],
        )
        self.assertEqual({job["state"] for job in jobs}, {"done"})
        self.assertFalse(any("s3cr3t-pw" in (job["log"] or "") for job in jobs))

    def test_failure_reads_clearly_over_xmlrpc(self):
        self.emulator.fail(
            "PATCH",
            "/configmaps/settings",
            403,
            times=1,
            message='configmaps "settings" is forbidden',
        )
        deployment_id = self.rpc(
            "eyrie.deployment",
            "create",
            {
                "name": "rpc-k8s",
                "deployment_type": "pgo",
                "scope_id": self.scope.id,
                "values": '{"password": "x"}',
            },
        )
        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        self._settle()
        self.assertEqual(self._state(deployment_id), ("initialize", "error"))
        error = self.rpc(
            "eyrie.deployment", "read", [deployment_id], ["error_message"]
        )[0]
        self.assertIn(
            "Step 2 'Config' (apply) failed: apply ConfigMap settings in namespace "
            "rpc-k8s: "
            'configmaps "settings" is forbidden (HTTP 403)',
            error["error_message"],
        )
