"""Kubernetes discovery of one cluster shared by the threads of a process
(and by two processes): in memory only, right while it is refreshed.

Against the in-process API, whose discovery is slow and partly gone: its
discovery paths answer late and the aggregated API ``metrics.k8s.io``,
listed by ``/apis``, answers 404 (its service went away).
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from kubernetes.dynamic.exceptions import ResourceNotFoundError

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, get_db_name, tagged
from odoo.tools import config

from ..tools import kubernetes_discovery
from ..tools.confinement import DEFAULT_ALLOWED_KINDS
from ..tools.kubernetes_executor import forget_clients, get_client
from .committed_data import queue_jobs_now, remove_committed
from .kube_emulator import EmulatedCluster
from .parallel_jobs import run_in_threads

PGO = "postgres-operator.crunchydata.com/v1beta1"
METRICS = "metrics.k8s.io/v1beta1"
DISCOVERY_DELAY = 0.05
DISCOVERY_PATHS = (
    "/version",
    "/api/v1",
    "/apis",
    "/apis/apps/v1",
    "/apis/batch/v1",
    "/apis/networking.k8s.io/v1",
    f"/apis/{PGO}",
    f"/apis/{METRICS}",
)
# What the threads look up, all served by the API.
KINDS = (
    ("v1", "ConfigMap"),
    ("v1", "Namespace"),
    ("apps/v1", "Deployment"),
    ("batch/v1", "Job"),
    ("networking.k8s.io/v1", "Ingress"),
    (PGO, "PostgresCluster"),
)
THREADS = 16


def slow_and_partly_gone(emulator):
    """Discovery answers late; ``metrics.k8s.io`` is listed but gone."""
    emulator.reset()
    emulator.seed_operator_crds()
    emulator.add_crd("metrics.k8s.io", "v1beta1", "PodMetrics", "pods")
    emulator.fail("GET", f"/apis/{METRICS}", 404, times=None)
    for path in DISCOVERY_PATHS:
        emulator.delay(path, DISCOVERY_DELAY)


def served(emulator, path):
    """How many requests the API served for ``path``."""
    return sum(1 for request in emulator.emulator if request.url.path == path)


class PrivateTempDirMixin:
    """The process's temporary directory is an empty one of the test's
    (where the client library would write its ``osrcp-*.json``)."""

    def _use_private_tempdir(self):
        self.tmp = tempfile.mkdtemp(prefix="eyrie-discovery-")
        previous = tempfile.tempdir
        tempfile.tempdir = self.tmp

        def restore():
            tempfile.tempdir = previous
            shutil.rmtree(self.tmp, ignore_errors=True)

        self.addCleanup(restore)

    def assertNoDiscoveryFile(self):
        self.assertEqual(glob.glob(os.path.join(self.tmp, "osrcp-*.json")), [])


@tagged("post_install", "-at_install")
class TestDiscoveryThreads(PrivateTempDirMixin, BaseCase):
    """Eyrie's client of one cluster, used by many threads at once."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.emulator = EmulatedCluster()
        cls.addClassCleanup(cls.emulator.stop)

    def setUp(self):
        super().setUp()
        self._use_private_tempdir()
        slow_and_partly_gone(self.emulator)
        # A client of its own per test: a new cluster key.
        self.key = ("discovery-test", self.id())
        self.addCleanup(forget_clients, self.key)

    def _client(self):
        return get_client("Emulated", self.key, self.emulator.kubeconfig(), None)

    def _in_threads(self, work, count=THREADS):
        """Run ``work(index)`` in ``count`` threads started together; the
        errors they raised, as text."""
        barrier = threading.Barrier(count)
        errors = []

        def run(index):
            barrier.wait()
            try:
                work(index)
            except Exception as error:  # noqa: BLE001 - the test reports them all
                errors.append(f"{type(error).__name__}: {error}")

        threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        self.assertFalse(any(thread.is_alive() for thread in threads))
        return errors

    def _check_lookup(self, client, api_version, kind):
        resource = client.resources.get(api_version=api_version, kind=kind)
        served_as = self.emulator.emulator.find_type(api_version, kind)
        self.assertEqual(
            (resource.group_version, resource.kind, resource.name, resource.namespaced),
            (api_version, kind, served_as.plural, served_as.namespaced),
        )

    def test_lookups_stay_right_while_discovery_refreshes(self):
        client = self._client()

        def work(index):
            for _round in range(3):
                for api_version, kind in KINDS:
                    self._check_lookup(client, api_version, kind)
                # Misses: a kind not installed, a kind of the API that is gone.
                for api_version, kind in (
                    ("example.com/v1", "Widget"),
                    (METRICS, "PodMetrics"),
                ):
                    with self.assertRaises(ResourceNotFoundError):
                        client.resources.get(api_version=api_version, kind=kind)
                if index % 2:
                    # As the executor does when a kind answers 404.
                    client.resources.invalidate_cache()

        self.assertEqual(self._in_threads(work), [])
        self.assertNoDiscoveryFile()

    def test_threads_of_a_new_client_share_one_discovery(self):
        clients = []
        errors = self._in_threads(lambda _index: clients.append(self._client()))
        self.assertEqual(errors, [])
        self.assertEqual(len({id(client) for client in clients}), 1)
        self.assertEqual(served(self.emulator, "/apis"), 1)
        self.assertNoDiscoveryFile()

    def _refresh_every(self, seconds):
        previous = kubernetes_discovery.REFRESH_INTERVAL
        kubernetes_discovery.REFRESH_INTERVAL = seconds
        self.addCleanup(setattr, kubernetes_discovery, "REFRESH_INTERVAL", previous)

    def _widget_is_not_found(self, client):
        with self.assertRaises(ResourceNotFoundError):
            client.resources.get(api_version="example.com/v1", kind="Widget")

    def test_a_kind_not_installed_is_asked_for_at_most_once_per_interval(self):
        self._refresh_every(1)
        client = self._client()
        for _attempt in range(20):
            self._widget_is_not_found(client)
        self.assertEqual(served(self.emulator, "/apis"), 1)
        time.sleep(1)
        self._widget_is_not_found(client)
        self.assertEqual(served(self.emulator, "/apis"), 2)
        # Installed since: found at the first miss after the interval.
        self.emulator.add_crd("example.com", "v1", "Widget", "widgets")
        time.sleep(1)
        self._check_lookup(client, "example.com/v1", "Widget")
        self.assertEqual(served(self.emulator, "/apis"), 3)

    def test_an_invalidation_asks_again_at_once(self):
        client = self._client()
        self._widget_is_not_found(client)
        self.emulator.add_crd("example.com", "v1", "Widget", "widgets")
        # As the executor does when a kind that discovery lists answers 404.
        client.resources.invalidate_cache()
        self._check_lookup(client, "example.com/v1", "Widget")

    def test_a_group_version_gone_serves_nothing(self):
        client = self._client()
        # A lookup by kind alone goes through every group version, the gone
        # one too.
        self.assertEqual(
            client.resources.get(kind="Deployment").group_version, "apps/v1"
        )
        with self.assertRaises(ResourceNotFoundError):
            client.resources.get(api_version=METRICS, kind="PodMetrics")
        kinds = {(r.group_version, r.kind) for r in client.resources}
        self.assertTrue(set(KINDS) <= kinds)
        self.assertNotIn((METRICS, "PodMetrics"), kinds)
        self.assertIn("metrics.k8s.io", client.resources.api_groups)


# Each process runs this many jobs at once, one per thread: the test process
# and a second Odoo process, 16 jobs at once in all, on one cluster.
JOBS_AT_ONCE = 8
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ namespace }}\n"
CONFIG_MAP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"
    "data:\n  deployment: '{{{{ deployment.name }}}}'\n"
)
DELETE = "apiVersion: {api_version}\nkind: {kind}\nmetadata:\n  name: gone\n"
# Steps of the books: the ConfigMaps (each a lookup), and deletes of a kind
# the cluster does not serve and of one whose API is gone (each a miss).
INITIALIZE_STEPS = [
    ("Namespace", "apply", NAMESPACE),
    ("Settings", "apply", CONFIG_MAP.format(name="settings")),
]
DEPLOY_STEPS = [
    ("Features", "apply", CONFIG_MAP.format(name="features")),
    ("Widget", "delete", DELETE.format(api_version="example.com/v1", kind="Widget")),
    ("Metrics", "delete", DELETE.format(api_version=METRICS, kind="PodMetrics")),
    ("Limits", "apply", CONFIG_MAP.format(name="limits")),
]


@tagged("post_install", "-at_install")
class TestParallelJobsOneCluster(PrivateTempDirMixin, BaseCase):
    """Many jobs of one real cluster at once, in the threads of this process
    and of a second one, as queue_job runs them on two Odoo servers.

    The jobs commit as in production, so the test commits its data and
    removes it afterwards."""

    maxDiff = None

    def setUp(self):
        super().setUp()
        self._use_private_tempdir()
        self.emulator = EmulatedCluster()
        self.addCleanup(self.emulator.stop)
        slow_and_partly_gone(self.emulator)
        self.registry = Registry(get_db_name())
        self.addCleanup(self._cleanup)
        with self.registry.cursor() as cr:
            self.queue_jobs_before = queue_jobs_now(cr)
            self._create(api.Environment(cr, SUPERUSER_ID, {}))

    def _create(self, env):
        kinds = [
            *DEFAULT_ALLOWED_KINDS,
            "example.com/Widget",
            "metrics.k8s.io/PodMetrics",
        ]
        cluster = env["eyrie.cluster"].create(
            {
                "name": "Parallel discovery",
                "dry_run": False,
                "kubeconfig": self.emulator.kubeconfig(),
                "allowed_kinds": "\n".join(kinds),
            }
        )
        books = env["eyrie.deployment.book"].create(
            [
                {
                    "name": f"Parallel {action}",
                    "step_ids": [
                        (0, 0, {"name": name, "kind": kind, "template": template})
                        for name, kind, template in steps
                    ],
                }
                for action, steps in (
                    ("initialize", INITIALIZE_STEPS),
                    ("deploy", DEPLOY_STEPS),
                )
            ]
        )
        scope = env["eyrie.scope"].create(
            {
                "name": "Parallel discovery",
                "domain": "test.example.com",
                "cluster_id": cluster.id,
                "deployment_initialize_book_id": books[0].id,
                "deployment_deploy_book_id": books[1].id,
            }
        )
        deployments = env["eyrie.deployment"].create(
            [
                {"name": f"par-{i}", "deployment_type": "odoo", "scope_id": scope.id}
                for i in range(2 * JOBS_AT_ONCE)
            ]
        )
        deployments.action_deploy()
        self.cluster_id, self.book_ids, self.scope_id = cluster.id, books.ids, scope.id
        self.client_key = cluster._client_key()
        self.deployment_ids = deployments.ids
        self.namespaces = deployments.mapped("namespace")
        self.job_ids = deployments.job_ids.ids

    def _cleanup(self):
        with self.registry.cursor() as cr:
            remove_committed(
                cr,
                self.deployment_ids,
                [self.scope_id],
                self.book_ids,
                [self.cluster_id],
                self.queue_jobs_before,
            )
        forget_clients(self.client_key)

    def _start_second_process(self, deployment_ids):
        """A second Odoo process on the database, its registry loaded,
        waiting for a line on its standard input to run the jobs of
        ``deployment_ids`` in ``JOBS_AT_ONCE`` threads."""
        script = os.path.join(os.path.dirname(__file__), "parallel_jobs.py")
        process = subprocess.Popen(
            [
                sys.executable,
                script,
                "-c",
                config.rcfile,
                "-d",
                get_db_name(),
                "--deployments",
                ",".join(map(str, deployment_ids)),
                "--threads",
                str(JOBS_AT_ONCE),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ, TMPDIR=self.tmp),
        )
        self.addCleanup(process.kill)
        # Loading its registry takes seconds; stop it if it never gets there.
        timeout = threading.Timer(120, process.kill)
        timeout.start()
        try:
            for line in process.stdout:
                if line.strip() == "ready":
                    return process
        finally:
            timeout.cancel()
        self.fail(f"the second process ended (exit code {process.wait()})")

    def test_jobs_of_one_cluster_at_once_in_two_processes(self):
        # 16 deployments, 32 jobs (an initialize and a deploy each): 8 jobs
        # run at once in 8 threads of this process and 8 in a second process,
        # 16 at once on one cluster, half of the deployments each.
        mine, theirs = self.deployment_ids[::2], self.deployment_ids[1::2]
        process = self._start_second_process(theirs)
        process.stdin.write("go\n")
        process.stdin.flush()
        gauge = run_in_threads(self.registry, mine, JOBS_AT_ONCE)
        output, _ = process.communicate(timeout=180)
        self.assertEqual(process.returncode, 0, output)
        second = json.loads(output.strip().splitlines()[-1])

        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            jobs = env["eyrie.job"].browse(self.job_ids)
            failures = {
                f"{job.deployment_name} {job.action}": job.error_message
                for job in jobs
                if job.state != "done"
            }
            self.assertEqual(failures, {})
            self.assertEqual(len(jobs), 4 * JOBS_AT_ONCE)
            deployments = env["eyrie.deployment"].browse(self.deployment_ids)
            self.assertEqual(set(deployments.mapped("state")), {"deploy"})
        for namespace in self.namespaces:
            names = {
                obj["metadata"]["name"]
                for obj in self.emulator.list("v1", "ConfigMap", namespace=namespace)
            }
            self.assertEqual(names, {"settings", "features", "limits"}, namespace)
        # Each process ran its half, JOBS_AT_ONCE of them at once.
        self.assertEqual(
            (gauge.ran, second["ran"]), (2 * JOBS_AT_ONCE, 2 * JOBS_AT_ONCE)
        )
        self.assertEqual((gauge.peak, second["peak"]), (JOBS_AT_ONCE, JOBS_AT_ONCE))
        self.assertNoDiscoveryFile()
