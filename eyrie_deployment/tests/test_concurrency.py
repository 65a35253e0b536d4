from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, get_db_name, tagged

from .committed_data import make_dry_run_scope, queue_jobs_now, remove_committed
from .parallel_jobs import run_in_threads

DEPLOYMENTS = 25
RUNNERS = 2


@tagged("post_install", "-at_install")
class TestConcurrentRunners(BaseCase):
    """Several job runners on one database: each job runs exactly once.

    The runners work as in production, each on its own cursor with its own
    commits, so this test commits its data and removes it afterwards.
    """

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        self.addCleanup(self._cleanup)
        with self.registry.cursor() as cr:
            self.queue_jobs_before = queue_jobs_now(cr)
            env = api.Environment(cr, SUPERUSER_ID, {})
            cluster, book, scope = make_dry_run_scope(
                env, "Concurrency", "test.example.com"
            )
            deployments = env["eyrie.deployment"].create(
                [
                    {
                        "name": f"conc-{i}",
                        "deployment_type": "odoo",
                        "scope_id": scope.id,
                    }
                    for i in range(DEPLOYMENTS)
                ]
            )
            deployments.action_deploy()
            self.cluster_id, self.book_id, self.scope_id = cluster.id, book.id, scope.id
            self.deployment_ids = deployments.ids
            self.job_ids = set(deployments.job_ids.ids)

    def _cleanup(self):
        with self.registry.cursor() as cr:
            remove_committed(
                cr,
                self.deployment_ids,
                [self.scope_id],
                [self.book_id],
                [self.cluster_id],
                self.queue_jobs_before,
            )

    def test_each_job_runs_exactly_once(self):
        gauge = run_in_threads(self.registry, self.deployment_ids, RUNNERS)
        self.assertEqual(gauge.ran, len(self.job_ids), "a job ran twice, or never")
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            deployments = env["eyrie.deployment"].browse(self.deployment_ids)
            self.assertEqual(set(deployments.mapped("state")), {"deploy"})
            jobs = env["eyrie.job"].browse(list(self.job_ids))
            self.assertEqual(set(jobs.mapped("state")), {"done"})
            self.assertEqual(set(jobs.mapped("restarts")), {0})
            # Each runner took a share.
            self.assertEqual(len(set(jobs.mapped("worker"))), RUNNERS)
