import threading
import time

from psycopg2.errors import SerializationFailure

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, get_db_name, tagged

from odoo.addons.queue_job.controllers.main import RunJobController

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
            cr.execute("SELECT COALESCE(max(id), 0) FROM queue_job")
            self.queue_jobs_before = cr.fetchone()[0]
            env = api.Environment(cr, SUPERUSER_ID, {})
            cluster = env["eyrie.cluster"].create(
                {"name": "Concurrency", "dry_run": True}
            )
            step = {
                "name": "cm",
                "kind": "apply",
                "template": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
            }
            book = env["eyrie.deployment.book"].create(
                {"name": "Concurrency", "step_ids": [(0, 0, step)]}
            )
            scope = env["eyrie.scope"].create(
                {
                    "name": "Concurrency",
                    "domain": "test.example.com",
                    "cluster_id": cluster.id,
                    "deployment_initialize_book_id": book.id,
                    "deployment_deploy_book_id": book.id,
                }
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
            ids = tuple(self.deployment_ids)
            cr.execute("DELETE FROM eyrie_job WHERE deployment_id IN %s", [ids])
            cr.execute(
                "DELETE FROM mail_message "
                "WHERE model = 'eyrie.deployment' AND res_id IN %s",
                [ids],
            )
            cr.execute("DELETE FROM eyrie_deployment WHERE id IN %s", [ids])
            cr.execute("DELETE FROM eyrie_scope WHERE id = %s", [self.scope_id])
            cr.execute(
                "DELETE FROM eyrie_deployment_book WHERE id = %s", [self.book_id]
            )
            cr.execute("DELETE FROM eyrie_cluster WHERE id = %s", [self.cluster_id])
            cr.execute("DELETE FROM queue_job WHERE id > %s", [self.queue_jobs_before])
            cr.execute(
                "DELETE FROM queue_job_channel WHERE name = %s",
                [f"cluster_{self.cluster_id}"],
            )

    def _runner(self, executed, barrier):
        """One Odoo server's share of queue_job: take a due Eyrie queue job
        as its job runner does (pending to enqueued), then run it as its
        /queue_job/runjob route does (acquire, perform)."""
        barrier.wait()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            idle = 0
            while idle < 20:
                try:
                    cr.execute(
                        "SELECT uuid FROM queue_job WHERE state = 'pending' "
                        "AND channel LIKE 'root.eyrie%%' "
                        "AND (eta IS NULL OR eta <= now() at time zone 'utc') "
                        "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                        log_exceptions=False,
                    )
                except SerializationFailure:
                    # The other runner took that row after this snapshot.
                    cr.rollback()  # pylint: disable=invalid-commit
                    continue
                row = cr.fetchone()
                if not row:
                    # Chained jobs are queued when another runner ends their
                    # predecessor: look again, on a fresh snapshot.
                    cr.commit()  # pylint: disable=invalid-commit
                    idle += 1
                    time.sleep(0.05)
                    continue
                idle = 0
                cr.execute(
                    "UPDATE queue_job SET state = 'enqueued' WHERE uuid = %s", row
                )
                cr.commit()  # pylint: disable=invalid-commit
                try:
                    job = RunJobController._acquire_job(env, row[0])
                except SerializationFailure:
                    cr.rollback()  # pylint: disable=invalid-commit
                    continue
                if job is None:
                    continue
                executed.append(job.recordset.id)
                RunJobController._runjob(env, job)
                cr.commit()  # pylint: disable=invalid-commit
                env.invalidate_all()

    def test_each_job_runs_exactly_once(self):
        executed = [[] for _ in range(RUNNERS)]
        barrier = threading.Barrier(RUNNERS)
        threads = [
            threading.Thread(
                target=self._runner, args=(executed[i], barrier), name=f"runner-{i}"
            )
            for i in range(RUNNERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        self.assertFalse(any(thread.is_alive() for thread in threads))

        all_runs = [job_id for runs in executed for job_id in runs]
        self.assertEqual(len(all_runs), len(set(all_runs)), "a job ran twice")
        self.assertEqual(set(all_runs), self.job_ids)
        self.assertTrue(all(executed), "one runner took every job")
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            deployments = env["eyrie.deployment"].browse(self.deployment_ids)
            self.assertEqual(set(deployments.mapped("state")), {"deploy"})
            jobs = env["eyrie.job"].browse(list(self.job_ids))
            self.assertEqual(set(jobs.mapped("state")), {"done"})
            self.assertEqual(len(set(jobs.mapped("worker"))), RUNNERS)
