from unittest.mock import patch

from kubernetes.dynamic import client as dynamic_client

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .kube_common import PGO, KubernetesCase

NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ namespace }}\n"
CONFIG = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  size: "{{ values.get('size', '1') }}"
"""
SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: credentials
stringData:
  password: "{{ values.password }}"
"""
WEB = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
{%- if values.web_replicas is defined %}
  replicas: {{ values.web_replicas }}
{%- endif %}
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
"""
ROLLOUT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
wait:
  for: rollout
  timeout: 120
"""
SCALE_DOWN = "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 0\n"
POSTGRES = f"""apiVersion: {PGO}
kind: PostgresCluster
metadata:
  name: db
spec:
  postgresVersion: 16
  shutdown: false
  instances:
    - name: instance1
      replicas: 1
"""
POSTGRES_SHUTDOWN = f"""apiVersion: {PGO}
kind: PostgresCluster
metadata:
  name: db
spec:
  shutdown: true
"""
POSTGRES_READY = f"""apiVersion: {PGO}
kind: PostgresCluster
metadata:
  name: db
wait:
  for: field
  path: status.instances.0.readyReplicas
  value: 1
  timeout: 120
"""


def _delete(api_version, kind, name):
    return f"apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: {name}\n"


@tagged("post_install", "-at_install")
class TestKubernetesSteps(KubernetesCase):
    def _with_books(self, values="{}", **books):
        deployment = self._make_deployment(values=values)
        for action, steps in books.items():
            book = self._make_book(f"K8s {action}", steps)
            self._set_book(deployment, action, book)
        return deployment

    def _deploy_config(self):
        """Deploy a book creating the namespace, then the ConfigMap."""
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE), ("Config", "apply", CONFIG)],
        )
        deployment.action_deploy()
        self._settle()
        return deployment

    def test_apply_creates_labelled_objects_idempotently(self):
        deployment = self._with_books(
            values='{"size": "1"}',
            initialize=[("Namespace", "apply", NAMESPACE), ("Config", "apply", CONFIG)],
            deploy=[("Web", "apply", WEB)],
        )
        deployment.action_deploy()
        self._settle()
        self.assertEqual(deployment.state, "deploy", deployment.error_message)
        config = self.emulator.get("v1", "ConfigMap", "settings", namespace="acme")
        self.assertEqual(config["data"], {"size": "1"})
        self.assertEqual(
            config["metadata"]["labels"],
            {
                "app.kubernetes.io/managed-by": "eyrie",
                "eyrie.io/deployment": str(deployment.id),
            },
        )
        kinds = sorted(obj["kind"] for obj in self._labelled(deployment))
        self.assertEqual(kinds, ["ConfigMap", "Deployment", "Namespace"])
        self.assertIn(
            "applied ConfigMap settings in namespace acme",
            self._job(deployment, "initialize").log,
        )

        # Retry of the whole first deploy, then an update: nothing duplicated.
        deployment.values = '{"size": "2"}'
        deployment.action_deploy()
        self._settle()
        self.assertEqual(len(self._labelled(deployment)), 3)
        config = self.emulator.get("v1", "ConfigMap", "settings", namespace="acme")
        self.assertEqual(
            config["data"], {"size": "1"}
        )  # update runs the deploy book only
        self.assertEqual(deployment.state, "deploy")

    def test_pause_scales_to_zero_and_deploy_restores_replicas(self):
        deployment = self._with_books(
            values='{"web_replicas": 3}',
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Web", "apply", WEB)],
            pause=[("Scale down", "scale", SCALE_DOWN)],
        )
        deployment.action_deploy()
        self._settle()
        # The book stops naming replicas: the cluster's count is what counts.
        deployment.values = "{}"
        deployment.action_pause()
        self._settle()
        web = self.emulator.get("apps/v1", "Deployment", "web", namespace="acme")
        self.assertEqual(web["spec"]["replicas"], 0)
        self.assertEqual(
            web["metadata"]["annotations"]["eyrie.io/replicas-before-pause"], "3"
        )
        self.assertIn(
            "scaled Deployment web in namespace acme from 3 to 0",
            self._job(deployment, "pause").log,
        )

        deployment.action_deploy()
        self._settle()
        web = self.emulator.get("apps/v1", "Deployment", "web", namespace="acme")
        self.assertEqual(web["spec"]["replicas"], 3)
        self.assertNotIn(
            "eyrie.io/replicas-before-pause", web["metadata"].get("annotations") or {}
        )
        self.assertEqual(deployment.state, "deploy")

    def test_answers_are_read_as_plain_json(self):
        """Every answer of a step's requests (reads, lists, applies, patches,
        scales, deletes) is read as the JSON it is: none is wrapped in the
        dynamic client's ResourceInstance, field by field, only to be turned
        back into dicts or thrown away (most of the client's CPU per
        request)."""
        deployment = self._with_books(
            values='{"web_replicas": 2}',
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Config", "apply", CONFIG), ("Web", "apply", WEB)],
            pause=[
                ("Scale down", "scale", SCALE_DOWN),
                ("Config", "delete", _delete("v1", "ConfigMap", "settings")),
            ],
        )
        deployment.action_deploy()
        self._settle()
        built = []
        original = dynamic_client.ResourceInstance

        def counted(client, instance):
            built.append(instance.get("kind"))
            return original(client, instance)

        with patch.object(dynamic_client, "ResourceInstance", counted):
            deployment.action_pause()
            self._settle()
            self.assertEqual(deployment.state, "pause", deployment.error_message)
            self.assertIsNone(
                self.emulator.get("v1", "ConfigMap", "settings", namespace="acme")
            )
            deployment.action_deploy()
            self._settle()
        self.assertEqual(deployment.state, "deploy", deployment.error_message)
        web = self.emulator.get("apps/v1", "Deployment", "web", namespace="acme")
        self.assertEqual(web["spec"]["replicas"], 2)
        self.assertEqual(built, [])

    def test_patch_merges_into_custom_resource(self):
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Database", "apply", POSTGRES)],
            pause=[("Shut down", "patch", POSTGRES_SHUTDOWN)],
        )
        deployment.action_deploy()
        self._settle()
        deployment.action_pause()
        self._settle()
        self.assertEqual(deployment.state, "pause", deployment.error_message)
        db = self.emulator.get(PGO, "PostgresCluster", "db", namespace="acme")
        self.assertIs(db["spec"]["shutdown"], True)
        self.assertEqual(db["spec"]["postgresVersion"], 16)
        self.assertEqual(
            db["spec"]["instances"], [{"name": "instance1", "replicas": 1}]
        )

    def test_wait_yields_and_resumes_when_rolled_out(self):
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Web", "apply", WEB), ("Rollout", "wait", ROLLOUT)],
        )
        deployment.action_deploy()
        self._run_jobs()
        job = self._job(deployment, "deploy")
        # The worker is free: the job waits as pending, to be resumed later.
        self.assertEqual(job.state, "pending")
        self.assertTrue(job.not_before)
        self.assertEqual(job.step_index, 1)
        self.assertIn("Step 2 'Rollout' (wait): waiting up to 120 s", job.log)
        self.assertEqual(deployment.state, "deploying")

        def rollout(_round):
            web = self.emulator.get("apps/v1", "Deployment", "web", namespace="acme")
            self.emulator.set_status(
                "apps/v1",
                "Deployment",
                "web",
                {
                    "observedGeneration": web["metadata"].get("generation", 1),
                    "replicas": 1,
                    "updatedReplicas": 1,
                    "availableReplicas": 1,
                },
                namespace="acme",
            )

        self._settle(between_rounds=rollout)
        self.assertEqual(job.state, "done")
        self.assertEqual(deployment.state, "deploy")
        self.assertIn(
            "Deployment web in namespace acme: 1/1 replicas available", job.log
        )
        self.assertEqual(job.log.count("Book K8s deploy"), 1)

    def _settle_past_the_wait_deadline(self, deployment):
        """Run the jobs, the deploy job's wait deadline moved into the past
        once it is set: the wait times out."""

        def time_runs_out(_round):
            job = self._job(deployment, "deploy")
            if job.wait_deadline:
                job.wait_deadline = job.create_date  # long past

        self._settle(between_rounds=time_runs_out)

    def test_wait_on_a_field_times_out(self):
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Database", "apply", POSTGRES), ("Ready", "wait", POSTGRES_READY)],
        )
        deployment.action_deploy()

        self._settle_past_the_wait_deadline(deployment)
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("initialize", "error")
        )
        self.assertIn(
            "Step 2 'Ready' (wait) failed: timed out after 120 s",
            deployment.error_message,
        )
        self.assertIn(
            "status.instances.0.readyReplicas is None", deployment.error_message
        )
        # Only a rollout points at the logs: a field wait's error does not.
        self.assertNotIn("Logs button", deployment.error_message)

    def test_rollout_timeout_points_at_the_logs(self):
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Web", "apply", WEB), ("Rollout", "wait", ROLLOUT)],
        )
        deployment.action_deploy()

        self._settle_past_the_wait_deadline(deployment)
        self.assertEqual(deployment.state, "error")
        self.assertIn("timed out after 120 s", deployment.error_message)
        self.assertIn("the Logs button of the deployment", deployment.error_message)
        self.assertIn("the Logs button", self._job(deployment, "deploy").log)

    def test_field_wait_passes_once_the_operator_reports(self):
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Database", "apply", POSTGRES), ("Ready", "wait", POSTGRES_READY)],
        )
        deployment.action_deploy()
        self._settle(
            between_rounds=lambda _round: self.emulator.set_status(
                PGO,
                "PostgresCluster",
                "db",
                {
                    "instances": [
                        {"name": "instance1", "readyReplicas": 1, "replicas": 1}
                    ]
                },
                namespace="acme",
            )
        )
        self.assertEqual(deployment.state, "deploy", deployment.error_message)

    def test_delete_is_idempotent_and_tolerates_missing_kinds(self):
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE), ("Config", "apply", CONFIG)],
            deploy=[
                ("Config", "delete", _delete("v1", "ConfigMap", "settings")),
                ("Config again", "delete", _delete("v1", "ConfigMap", "settings")),
                ("Widget", "delete", _delete("example.com/v1", "Widget", "w")),
            ],
        )
        deployment.action_deploy()
        self._settle()
        self.assertEqual(deployment.state, "deploy", deployment.error_message)
        self.assertIsNone(
            self.emulator.get("v1", "ConfigMap", "settings", namespace="acme")
        )
        log = self._job(deployment, "deploy").log
        self.assertIn("deleted ConfigMap settings in namespace acme", log)
        self.assertIn("ConfigMap settings in namespace acme is already gone", log)
        self.assertIn("Widget example.com/v1 is not installed: nothing to delete", log)

    def test_missing_crd_fails_with_a_clear_message(self):
        self.emulator.reset()  # no PGO operator in this cluster
        deployment = self._with_books(
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[("Database", "apply", POSTGRES)],
        )
        deployment.action_deploy()
        self._settle()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("initialize", "error")
        )
        self.assertIn(
            "Step 1 'Database' (apply) failed: PostgresCluster "
            "postgres-operator.crunchydata.com/v1beta1 is not installed in the cluster",
            deployment.error_message,
        )

    def test_forbidden_fails_with_the_api_message(self):
        self.emulator.fail(
            "PATCH",
            "/configmaps/settings",
            403,
            message='configmaps "settings" is forbidden: User "eyrie" cannot patch',
            reason="Forbidden",
        )
        deployment = self._deploy_config()
        self.assertEqual(deployment.state, "error")
        self.assertIn(
            "Step 2 'Config' (apply) failed: apply ConfigMap settings in namespace "
            "acme: "
            'configmaps "settings" is forbidden: User "eyrie" cannot patch (HTTP 403)',
            deployment.error_message,
        )
        self.assertNotIn("retrying", self._job(deployment, "initialize").log)

    def test_conflict_fails_without_retry(self):
        self.emulator.fail(
            "PATCH", "/namespaces/acme", 409, message="conflict on metadata"
        )
        deployment = self._with_books(initialize=[("Namespace", "apply", NAMESPACE)])
        deployment.action_deploy()
        self._settle()
        self.assertEqual(deployment.state, "error")
        self.assertIn("conflict on metadata (HTTP 409)", deployment.error_message)

    def test_server_error_then_success(self):
        self.emulator.fail("PATCH", "/configmaps/settings", 500, message="etcd timeout")
        deployment = self._deploy_config()
        self.assertEqual(deployment.state, "deploy", deployment.error_message)
        log = self._job(deployment, "initialize").log
        self.assertIn("Step 2 'Config' (apply): attempt 1 of 5 failed", log)
        self.assertIn("etcd timeout (HTTP 500); retrying in 5 s", log)
        self.assertIsNotNone(
            self.emulator.get("v1", "ConfigMap", "settings", namespace="acme")
        )

    def test_server_errors_stop_after_five_attempts(self):
        self.emulator.fail(
            "PATCH", "/configmaps/settings", 503, times=10, message="unavailable"
        )
        deployment = self._deploy_config()
        self.assertEqual(deployment.state, "error")
        self.assertIn(
            "Step 2 'Config' (apply) failed after 5 attempts", deployment.error_message
        )
        self.assertEqual(
            self._job(deployment, "initialize").log.count("retrying in"), 4
        )

    def test_unreachable_cluster_fails_with_its_name_and_cause(self):
        kubeconfig = self.emulator.kubeconfig().replace(
            self.emulator.url, "http://127.0.0.1:9"
        )
        self.cluster.kubeconfig = kubeconfig
        deployment = self._with_books(initialize=[("Namespace", "apply", NAMESPACE)])
        deployment.action_deploy()
        self._settle()
        self.assertEqual(deployment.state, "error")
        self.assertIn(
            "Cluster connection failed after 5 attempts", deployment.error_message
        )
        self.assertIn("cluster Emulated cannot be reached", deployment.error_message)
        self.assertIn("refused", deployment.error_message.lower())

    def test_secret_values_stay_out_of_logs_and_errors(self):
        password = "pa55-w0rd-very-secret"
        self.emulator.fail(
            "PATCH", "/secrets/credentials", 422, message=f"invalid value {password!r}"
        )
        deployment = self._with_books(
            values=f'{{"password": "{password}"}}',
            initialize=[("Namespace", "apply", NAMESPACE), ("Secret", "apply", SECRET)],
        )
        deployment.action_deploy()
        self._settle()
        self.assertEqual(deployment.state, "error")
        job = self._job(deployment, "initialize")
        for text in (job.log, job.error_message, deployment.error_message):
            self.assertNotIn(password, text)
        self.assertIn("invalid value '***'", deployment.error_message)

        # Once applied, only the object and the verb are logged.
        deployment.action_deploy()
        self._settle()
        job = self._job(deployment, "initialize")
        self.assertIn("applied Secret credentials in namespace acme", job.log)
        self.assertNotIn(password, job.log)
        secret = self.emulator.get("v1", "Secret", "credentials", namespace="acme")
        self.assertTrue(secret)

    def test_test_connection_shows_version_or_error(self):
        action = self.cluster.action_test_connection()
        self.assertIn("Kubernetes v1.", action["params"]["message"])
        self.cluster.kubeconfig = self.emulator.kubeconfig().replace(
            self.emulator.url, "http://127.0.0.1:9"
        )
        with self.assertRaisesMessage(
            UserError,
            "Connection to cluster Emulated failed: cluster Emulated cannot be reached",
        ):
            self.cluster.action_test_connection()
        with self.assertRaises(AccessError):
            self.cluster.with_user(self.user).action_test_connection()

    def test_scale_by_label_selector(self):
        workers = WEB.replace("name: web", "name: worker")
        labelled = "  labels: {tier: app}\n"
        deployment = self._with_books(
            values='{"web_replicas": 2}',
            initialize=[("Namespace", "apply", NAMESPACE)],
            deploy=[
                (
                    "Web",
                    "apply",
                    WEB.replace("  name: web\n", "  name: web\n" + labelled),
                ),
                (
                    "Worker",
                    "apply",
                    workers.replace("  name: worker\n", "  name: worker\n" + labelled),
                ),
            ],
            pause=[
                (
                    "Scale tier",
                    "scale",
                    "kind: Deployment\nselector: {tier: app}\nspec:\n  replicas: 0\n",
                )
            ],
        )
        deployment.action_deploy()
        self._settle()
        deployment.action_pause()
        self._settle()
        self.assertEqual(deployment.state, "pause", deployment.error_message)
        for name in ("web", "worker"):
            obj = self.emulator.get("apps/v1", "Deployment", name, namespace="acme")
            self.assertEqual(obj["spec"]["replicas"], 0)
            annotations = obj["metadata"]["annotations"]
            self.assertEqual(annotations["eyrie.io/replicas-before-pause"], "2")
        log = self._job(deployment, "pause").log
        self.assertIn("scaled Deployment worker in namespace acme from 2 to 0", log)
