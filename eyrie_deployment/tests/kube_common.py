from odoo.tests import HttpCase, get_db_name, new_test_user

from .common import EyrieCase
from .kube_emulator import EmulatedCluster
from .queue_jobs import resume_waiting_jobs, run_queue_jobs

PGO = "postgres-operator.crunchydata.com/v1beta1"
DNS = "externaldns.k8s.io/v1alpha1"
MANAGED = {"app.kubernetes.io/managed-by": "eyrie"}


def seed_crds(emulator):
    emulator.seed_operator_crds()


# A scope's bucket target in the tests (the real-peer tests point its
# clients at their own S3 server).
BUCKET = {
    "backup_target": "s3",
    "backup_s3_bucket": "eyrie-backups",
    "backup_s3_endpoint": "s3.eu-west-1.amazonaws.com",
    "backup_s3_region": "eu-west-1",
    "backup_s3_key_id": "AKIAEYRIETEST",
    "backup_s3_secret_key": "k3y-s3cr3t-value",
}

# The status the Job controller gives a Job whose Pod failed (backoffLimit 0).
JOB_FAILED = {
    "failed": 1,
    "conditions": [
        {
            "type": "Failed",
            "status": "True",
            "reason": "BackoffLimitExceeded",
            "message": "Job has reached the specified backoff limit",
        }
    ],
}


def job_pod(emulator, namespace, job, container, log, name):
    """The pod ``name`` of Kubernetes Job ``job`` as the Job controller makes
    it, whose ``container`` printed ``log``; the Job's earlier pods gone
    (the garbage collector deletes a deleted Job's pods)."""
    from kubernetes import client

    core = client.CoreV1Api(emulator.api_client())
    for pod in core.list_namespaced_pod(
        namespace, label_selector=f"job-name={job}"
    ).items:
        core.delete_namespaced_pod(pod.metadata.name, namespace)
    core.create_namespaced_pod(
        namespace,
        {
            "metadata": {"name": name, "labels": {"job-name": job}},
            "spec": {"containers": [{"name": container, "image": "odoo:18.0"}]},
        },
    )
    emulator.set_logs(namespace, name, container, log)


class KubernetesCase(EyrieCase):
    """EyrieCase on a real Kubernetes API served in-process (one per class),
    reached through the official client with a kubeconfig."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.emulator = EmulatedCluster()
        cls.addClassCleanup(cls.emulator.stop)
        cls.cluster.write(
            {
                "name": "Emulated",
                "dry_run": False,
                "kubeconfig": cls.emulator.kubeconfig(),
                # The tests' own custom kind besides the shipped books' kinds.
                "allowed_kinds": cls.cluster.allowed_kinds + "\nexample.com/Widget",
            }
        )

    def setUp(self):
        super().setUp()
        self.emulator.reset()
        seed_crds(self.emulator)

    def _settle(self, rounds=30, between_rounds=None):
        """Run jobs until none is pending, letting time pass for waiting and
        retrying jobs (their not_before is moved to now) between rounds."""
        Job = self.env["eyrie.job"]
        for index in range(rounds):
            self._run_jobs()
            active = Job.search([("state", "in", ("pending", "running"))])
            if not active:
                return index + 1
            if between_rounds:
                between_rounds(index)
            resume_waiting_jobs(self.env)
        raise AssertionError(f"jobs still pending after {rounds} rounds")

    def _labelled(self, deployment):
        return self.emulator.list(
            labels={**MANAGED, "eyrie.io/deployment": str(deployment.id)}
        )

    def _job(self, deployment, action):
        return deployment.job_ids.filtered(lambda j: j.action == action).sorted("id")[
            -1:
        ]


class KubernetesRpcCase(HttpCase):
    """An Eyrie user (login ``LOGIN``, password the same) driving Eyrie over
    XML-RPC, with an emulated cluster for the class (``cls.cluster``)."""

    LOGIN = "eyrie_rpc_user"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.emulator = EmulatedCluster()
        cls.addClassCleanup(cls.emulator.stop)
        seed_crds(cls.emulator)
        cls.user = new_test_user(
            cls.env, login=cls.LOGIN, groups="eyrie_deployment.group_eyrie_user"
        )
        cls.cluster = cls.env["eyrie.cluster"].create(
            {
                "name": f"Emulated for {cls.LOGIN}",
                "kubeconfig": cls.emulator.kubeconfig(),
            }
        )

    def rpc(self, model, method, *args, **kwargs):
        return self.xmlrpc_object.execute_kw(
            get_db_name(), self.user.id, self.LOGIN, model, method, list(args), kwargs
        )

    def _settle_played(self):
        """Run the jobs the calls queued to their end, the operators played."""
        for _round in range(30):
            run_queue_jobs(self.env)
            self.emulator.play_operators()
            if not self.env["eyrie.job"].search(
                [("state", "in", ("pending", "running"))]
            ):
                return
            resume_waiting_jobs(self.env)
        raise AssertionError("jobs still pending")


class OperatorsMixin:
    """Plays the controllers a real cluster runs: PGO reports its instances
    ready unless shut down, the Deployment controller reports rollouts, the
    Job controller reports a finished Job."""

    def _run(self, deployment, action, play=True):
        """Run an action and its jobs to their end, the operators played."""
        getattr(deployment, f"action_{action}")()
        self._settle(between_rounds=self._play_operators if play else None)

    def _play_operators(self, _round=None):
        self.emulator.play_operators()

    def _deployed_on_shared_database(self, database_name, odoo_name):
        """A deployed PostgreSQL deployment and an Odoo deployed on it."""
        db = self._create(database_name, "pgo")
        self._run(db, "deploy")
        odoo = self._create(
            odoo_name, database_mode="shared", database_deployment_id=db.id
        )
        self._run(odoo, "deploy")
        return db, odoo


class TwoUsersRpcCase(OperatorsMixin, KubernetesRpcCase):
    """``cls.scope`` on the emulated cluster for the user, and another user
    (``cls.other``, login ``<LOGIN>_other``) whose calls ``_as_other`` makes."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scope = cls.env["eyrie.scope"].create(
            {
                "name": f"RPC {cls.LOGIN}",
                "cluster_id": cls.cluster.id,
                "domain": "preview.example.com",
            }
        )
        cls.other = new_test_user(
            cls.env,
            login=f"{cls.LOGIN}_other",
            groups="eyrie_deployment.group_eyrie_user",
        )

    def _as_other(self, method, *args, **kwargs):
        return self.xmlrpc_object.execute_kw(
            get_db_name(),
            self.other.id,
            self.other.login,
            "eyrie.deployment",
            method,
            list(args),
            kwargs,
        )
