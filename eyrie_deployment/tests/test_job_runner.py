from datetime import timedelta

from odoo import fields
from odoo.tests import RecordCapturer, tagged

from .common import EyrieCase


@tagged("post_install", "-at_install")
class TestJobRunner(EyrieCase):
    def test_action_wakes_the_runner(self):
        deployment = self._make_deployment()
        cron = self.env.ref("eyrie_deployment.ir_cron_run_jobs")
        with RecordCapturer(
            self.env["ir.cron.trigger"].sudo(), [("cron_id", "=", cron.id)]
        ) as capture:
            deployment.with_user(self.user).action_deploy()
        self.assertEqual(len(capture.records), 1)
        self.assertLessEqual(capture.records.call_at, fields.Datetime.now())

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

    def test_stale_running_job_is_failed(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        job = deployment.job_ids.sorted("id")[:1]
        job.write({"state": "running", "worker": "host:42"})
        old = fields.Datetime.now() - timedelta(minutes=16)
        job.write({"started_at": old, "heartbeat_at": old})
        self._run_jobs()
        self.assertEqual(job.state, "failed")
        self.assertIn("(host:42) stopped answering", job.error_message)
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("initialize", "error")
        )
        self.assertEqual(deployment.job_ids.sorted("id")[1].state, "cancelled")

    def test_recent_running_job_is_left_alone(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        job = deployment.job_ids.sorted("id")[:1]
        job.write({"state": "running", "heartbeat_at": fields.Datetime.now()})
        self.assertEqual(self._run_jobs(), 0)
        self.assertEqual(job.state, "running")
        self.assertEqual(deployment.state, "initializing")

    def test_result_of_a_job_given_up_is_ignored(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        job = deployment.job_ids.sorted("id")[:1]
        job.write({"state": "failed", "error_message": "given up"})
        job._finish("done", ["late"], False)
        self.assertEqual((job.state, job.error_message), ("failed", "given up"))

    def test_chained_job_waits_for_its_predecessor(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        self.assertEqual(self.env["eyrie.job"]._count_runnable_jobs(), 1)
        self.assertEqual(self._run_jobs(), 2)

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

    def test_job_runner_cron_record_runs_jobs(self):
        cron = self.env.ref("eyrie_deployment.ir_cron_run_jobs")
        deployment = self._make_deployment()
        deployment.action_deploy()
        cron.method_direct_trigger()
        self.assertEqual(deployment.state, "deploy")

    def test_bad_system_parameters_fall_back_to_defaults(self):
        parameters = self.env["ir.config_parameter"].sudo()
        parameters.set_param("eyrie.job_runner_seconds", "fifty")
        parameters.set_param("eyrie.job_stale_minutes", "15 min")
        deployment = self._make_deployment()
        deployment.action_deploy()
        with self.assertLogs("odoo.addons.eyrie_deployment.tools.parameters") as logs:
            self._run_jobs()
        self.assertEqual(deployment.state, "deploy")
        self.assertIn("eyrie.job_runner_seconds is 'fifty'", " ".join(logs.output))
