from datetime import timedelta

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import tagged

from odoo.addons.queue_job.job import Job

from .common import EyrieCase
from .queue_jobs import queued, run_queue_jobs


@tagged("post_install", "-at_install")
class TestJobRunner(EyrieCase):
    def test_one_failing_job_does_not_stop_others(self):
        broken = self._make_deployment("broken")
        self._set_book(broken, "initialize", self.book_broken)
        healthy = self._make_deployment("healthy")
        (broken | healthy).action_deploy()
        self._run_jobs()
        self.assertEqual(broken.state, "error")
        self.assertEqual(healthy.state, "deploy")

    def test_unusable_cluster_fails_with_its_name(self):
        real = self.env["eyrie.cluster"].create({"name": "Prod EU", "dry_run": False})
        self.scope.cluster_id = real
        deployment = self._make_deployment()
        deployment.action_deploy()
        self._run_jobs()
        self.assertEqual(deployment.state, "error")
        # No kubeconfig and not inside a cluster: nothing to connect with.
        self.assertIn(
            "Cluster connection failed: cluster Prod EU: its configuration is not "
            "usable",
            deployment.error_message,
        )

    def test_result_of_a_job_given_up_is_ignored(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        job = deployment.job_ids.sorted("id")[:1]
        job.write({"state": "failed", "error_message": "given up"})
        job._finish("done", ["late"], False)
        self.assertEqual((job.state, job.error_message), ("failed", "given up"))

    def test_log_lists_every_step(self):
        book = self._make_book(
            "Two steps",
            [
                (
                    "First",
                    "apply",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n",
                ),
                (
                    "Second",
                    "patch",
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n"
                    + "data: {a: b}\n",
                ),
            ],
        )
        deployment = self._make_deployment()
        self._set_book(deployment, "deploy", book)
        deployment.action_deploy()
        self._run_jobs()
        log = deployment.job_ids.sorted("id")[1].log
        self.assertIn("Book Two steps on cluster Test dry run: 2 step(s)", log)
        self.assertIn(
            "Step 1 'First' (apply):\n  would apply ConfigMap one in namespace acme",
            log,
        )
        self.assertIn(
            "Step 2 'Second' (patch):\n  would patch ConfigMap one in namespace acme",
            log,
        )

    def test_action_queues_one_job_in_the_cluster_channel(self):
        deployment = self._make_deployment()
        deployment.with_user(self.user).action_deploy()
        initialize, deploy = deployment.job_ids.sorted("id")
        queue_job = queued(self.env, "_run_queued")
        # The deploy job is chained: its queue job waits for the initialize
        # job's (queue_job's dependencies).
        self.assertEqual(len(queue_job), 1)
        self.assertEqual(queue_job.records, initialize)
        self.assertEqual(queue_job.channel, f"root.eyrie.cluster_{self.cluster.id}")
        self.assertEqual(initialize.queue_job_uuid, queue_job.uuid)
        waiting = self.env["queue.job"].search([("uuid", "=", deploy.queue_job_uuid)])
        self.assertEqual(waiting.state, "wait_dependencies")
        self.assertEqual(waiting.dependencies["depends_on"], [queue_job.uuid])
        self.assertEqual(run_queue_jobs(self.env), 2)
        self.assertEqual((initialize.state, deploy.state), ("done", "done"))
        self.assertEqual(deployment.state, "deploy")
        done = self.env["queue.job"].search(
            [("uuid", "in", [initialize.queue_job_uuid, deploy.queue_job_uuid])]
        )
        self.assertEqual(done.mapped("state"), ["done", "done"])

    def test_cluster_capacity_is_its_channel_capacity(self):
        cluster = self.env["eyrie.cluster"].create(
            {"name": "Capped", "dry_run": True, "job_capacity": 2}
        )
        channel = cluster.job_channel_id
        self.assertEqual(channel.complete_name, f"root.eyrie.cluster_{cluster.id}")
        self.assertEqual(channel.capacity, 2)
        cluster.job_capacity = 6
        self.assertEqual(channel.capacity, 6)
        with self.assertRaisesMessage(ValidationError, "set at least 1"):
            cluster.job_capacity = 0
        self.assertEqual(channel.capacity, 6)

    def test_job_left_running_by_a_dead_worker_resumes(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize = deployment.job_ids.sorted("id")[:1]
        # Its worker took it, then died: queue_job requeues the queue job.
        initialize.write({"state": "running", "worker": "host:42:main"})
        self.assertEqual(run_queue_jobs(self.env), 2)
        self.assertEqual(initialize.state, "done")
        self.assertEqual(initialize.restarts, 1)
        self.assertIn(
            "Resumed after step 0: the run on host:42:main stopped mid-way",
            initialize.log,
        )
        self.assertEqual(deployment.state, "deploy")

    def test_job_that_keeps_dying_fails(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize, deploy = deployment.job_ids.sorted("id")
        initialize.write({"state": "running", "worker": "host:42:main", "restarts": 3})
        run_queue_jobs(self.env)
        self.assertEqual(initialize.state, "failed")
        self.assertIn("stopped mid-way 4 times", initialize.error_message)
        self.assertEqual(deploy.state, "cancelled")
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("initialize", "error")
        )

    def test_a_resume_run_early_waits_for_its_time(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize = deployment.job_ids.sorted("id")[:1]
        later = fields.Datetime.now() + timedelta(minutes=5)
        initialize.not_before = later
        # Its queue job run before the time (a manual requeue, say): queue_job
        # postpones it to that time, without counting a retry.
        self.assertEqual(run_queue_jobs(self.env), 1)
        self.assertEqual(initialize.state, "pending")
        self.assertFalse(initialize.started_at)
        queue_job = queued(self.env, "_run_queued")
        self.assertEqual(queue_job.uuid, initialize.queue_job_uuid)
        self.assertGreaterEqual(queue_job.eta, later.replace(microsecond=0))
        self.assertLess(queue_job.eta, later + timedelta(seconds=2))
        self.assertEqual(queue_job.retry, 0)

    def test_job_whose_queue_job_was_cancelled_in_queue_job_fails(self):
        lost = self._make_deployment("lost")
        alive = self._make_deployment("alive")
        (lost | alive).action_deploy()
        lost_job = lost.job_ids.sorted("id")[:1]
        self.env["queue.job"].search(
            [("uuid", "=", lost_job.queue_job_uuid)]
        ).button_cancelled()
        failed = self.env["eyrie.job"]._cron_fail_lost_jobs(grace_minutes=0)
        self.assertEqual(failed, lost_job)
        self.assertIn("its queue job is cancelled", lost_job.error_message)
        self.assertEqual(lost.state, "error")
        self.assertEqual(alive.state, "initializing")
        run_queue_jobs(self.env)
        self.assertEqual(alive.state, "deploy")

    def test_queue_job_given_up_fails_the_job(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize = deployment.job_ids.sorted("id")[:1]
        initialize.write({"state": "running"})
        job = Job.load(self.env, initialize.queue_job_uuid)
        # What queue_job calls when it stops retrying (the job function's
        # on-fail method).
        job.on_fail({"exc_name": "psycopg2.errors.SerializationFailure"})
        self.assertEqual(initialize.state, "failed")
        self.assertIn(
            "The job queue gave up on this job (SerializationFailure)",
            initialize.error_message,
        )
        self.assertEqual(deployment.state, "error")

    def test_queue_job_given_up_on_a_deleted_job_ends_quietly(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize = deployment.job_ids.sorted("id")[:1]
        job = Job.load(self.env, initialize.queue_job_uuid)
        # Deleted behind the ORM's back (a partial restore, a clean-up
        # script): queue_job still holds the queue job and gives up on it.
        self.env.cr.execute("DELETE FROM eyrie_job WHERE id = %s", [initialize.id])
        self.env.invalidate_all()
        # Raised MissingError before: queue_job's own on-fail broke.
        job.on_fail({"exc_name": "odoo.exceptions.MissingError"})
        self.assertEqual(deployment.state, "initializing")

    def test_upgrade_queues_what_the_old_runner_would_have_run(self):
        first = self._make_deployment("first")
        chained = self._make_deployment("chained")
        (first | chained).action_deploy()
        # As 18.0.2.0.0 left them: jobs without a queue job.
        self.env["queue.job"].search([("method_name", "=", "_run_queued")]).unlink()
        self.env["eyrie.job"].search([]).write({"queue_job_uuid": False})
        running = first.job_ids.sorted("id")[:1]
        running.write({"state": "running"})
        queued_jobs = self.env["eyrie.job"]._enqueue_after_upgrade()
        # Every job in progress; the deploy jobs wait for the initialize ones.
        self.assertEqual(
            sorted(queued_jobs.mapped("action")),
            ["deploy", "deploy", "initialize", "initialize"],
        )
        self.assertEqual(len(queued(self.env, "_run_queued")), 2)
        run_queue_jobs(self.env)
        self.assertEqual(set((first | chained).mapped("state")), {"deploy"})

    def test_cancel_cancels_the_queue_job(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize = deployment.job_ids.sorted("id")[:1]
        initialize.action_cancel()
        queue_job = self.env["queue.job"].search(
            [("uuid", "=", initialize.queue_job_uuid)]
        )
        self.assertEqual(queue_job.state, "cancelled")
        self.assertEqual(run_queue_jobs(self.env), 0)
        self.assertEqual(deployment.repository_state, "draft")
