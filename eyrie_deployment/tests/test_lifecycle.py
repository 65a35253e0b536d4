from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import EyrieCase


@tagged("post_install", "-at_install")
class TestLifecycle(EyrieCase):
    def test_first_deploy_initializes_then_deploys(self):
        deployment = self._make_deployment()
        self.assertEqual(deployment.namespace, "acme")
        self.assertIs(deployment.action_deploy(), True)

        self.assertEqual(deployment.repository_state, "initialize")
        self.assertEqual(deployment.state, "initializing")
        initialize_job, deploy_job = deployment.job_ids.sorted("id")
        self.assertEqual(
            (initialize_job.action, initialize_job.book_id, initialize_job.state),
            ("initialize", self.book_initialize, "pending"),
        )
        self.assertEqual(
            (deploy_job.action, deploy_job.book_id, deploy_job.state),
            ("deploy", self.book_deploy, "pending"),
        )
        self.assertEqual(deploy_job.previous_job_id, initialize_job)

        self.assertEqual(self._run_jobs(), 2)
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "deploy")
        )
        self.assertEqual(deployment.job_ids.mapped("state"), ["done", "done"])
        self.assertEqual(deployment.deployed_at, deploy_job.ended_at)
        self.assertIn("would apply Namespace acme", initialize_job.log)
        self.assertIn("would apply Deployment acme in namespace acme", deploy_job.log)
        self.assertFalse(deployment.error_message)

    def test_each_job_records_who_and_when(self):
        deployment = self._make_deployment().with_user(self.user)
        deployment.action_deploy()
        job = deployment.job_ids[:1]
        self.assertEqual((job.trigger, job.user_id), ("user", self.user))
        self.assertEqual(job.deployment_name, "acme")
        self.assertEqual(job.cluster_id, self.cluster)
        self._run_jobs()
        self.assertTrue(
            job.started_at and job.ended_at and job.started_at <= job.ended_at
        )

    def test_pause_then_resume(self):
        deployment = self._deployed()
        first_deployed_at = deployment.deployed_at
        deployment.action_pause()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "pausing")
        )
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("pause", "pause")
        )
        pause_job = deployment.job_ids.filtered(lambda j: j.action == "pause")
        self.assertEqual(deployment.paused_at, pause_job.ended_at)
        self.assertIn(
            "would scale Deployment acme in namespace acme to 0 replicas", pause_job.log
        )

        deployment.action_deploy()
        # Resuming runs the deploy book only: the deployment is initialized.
        self.assertEqual(deployment.active_job_id.action, "deploy")
        self.assertEqual(deployment.state, "deploying")
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "deploy")
        )
        self.assertGreaterEqual(deployment.deployed_at, first_deployed_at)
        self.assertEqual(
            deployment.job_ids.sorted("id").mapped("action"),
            ["initialize", "deploy", "pause", "deploy"],
        )

    def test_deploy_when_deployed_is_an_update(self):
        deployment = self._deployed()
        deployment.values = '{"replicas": 3}'
        deployment.action_deploy()
        self.assertEqual(deployment.repository_state, "deploy")
        self.assertEqual(deployment.state, "deploying")
        self._run_jobs()
        self.assertEqual(deployment.state, "deploy")
        self.assertEqual(len(deployment.job_ids), 3)

    def test_pause_refused_outside_deploy(self):
        deployment = self._make_deployment()
        with self.assertRaisesMessage(UserError, "cannot be paused.*phase Draft"):
            deployment.action_pause()
        self.assertEqual(deployment.state, "draft")
        self.assertFalse(deployment.job_ids)

        deployment = self._deployed("paused")
        deployment.action_pause()
        self._run_jobs()
        with self.assertRaisesMessage(UserError, "cannot be paused.*phase Pause"):
            deployment.action_pause()
        self.assertEqual(len(deployment.job_ids), 3)

    def test_drop_deletes_deployment_and_keeps_jobs(self):
        deployment = self._deployed()
        deployment.action_drop()
        self.assertEqual(deployment.state, "dropping")
        jobs = deployment.job_ids
        self._run_jobs()
        self.assertFalse(deployment.exists())
        self.assertEqual(len(jobs.exists()), 3)
        drop_job = jobs.filtered(lambda j: j.action == "drop")
        self.assertEqual(drop_job.state, "done")
        self.assertFalse(drop_job.deployment_id)
        self.assertEqual(drop_job.deployment_name, "acme")
        self.assertIn("would delete Namespace acme", drop_job.log)

    def test_drop_from_draft_runs_drop_book(self):
        deployment = self._make_deployment()
        deployment.action_drop()
        job = deployment.job_ids
        self.assertEqual((job.action, job.book_id), ("drop", self.book_drop))
        self._run_jobs()
        self.assertFalse(deployment.exists())

    def test_drop_refused_when_scope_forbids(self):
        deployment = self._deployed()
        self.scope.allow_drop = False
        with self.assertRaisesMessage(UserError, "does not allow drop"):
            deployment.action_drop()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "deploy")
        )
        self.assertFalse(deployment.job_ids.filtered(lambda j: j.action == "drop"))

    def test_one_job_at_a_time(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        for action in (
            deployment.action_deploy,
            deployment.action_pause,
            deployment.action_drop,
        ):
            with self.assertRaisesMessage(
                UserError, "already has a initialize job in progress"
            ):
                action()
        self.assertEqual(len(deployment.job_ids), 2)

    def test_failed_first_deploy_stays_initialize_then_retry(self):
        deployment = self._make_deployment()
        self._set_book(deployment, "initialize", self.book_broken)
        deployment.action_deploy()
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("initialize", "error")
        )
        self.assertIn("Step 1 'Broken config' (apply) failed", deployment.error_message)
        self.assertIn("'no_such_variable' is undefined", deployment.error_message)
        initialize_job, deploy_job = deployment.job_ids.sorted("id")
        self.assertEqual(initialize_job.state, "failed")
        self.assertEqual(deploy_job.state, "cancelled")
        self.assertIn("'no_such_variable' is undefined", initialize_job.error_message)

        # The fix, then a retry runs initialize and deploy again.
        self._set_book(deployment, "initialize", self.book_initialize)
        deployment.action_deploy()
        pending = deployment.job_ids.filtered(lambda j: j.state == "pending")
        self.assertEqual(sorted(pending.mapped("action")), ["deploy", "initialize"])
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "deploy")
        )
        self.assertFalse(deployment.error_message)

    def test_failed_resume_stays_pause(self):
        deployment = self._deployed()
        deployment.action_pause()
        self._run_jobs()
        self._set_book(deployment, "deploy", self.book_broken)
        deployment.action_deploy()
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("pause", "error")
        )
        self.assertIn("'no_such_variable' is undefined", deployment.error_message)

    def test_failed_pause_and_update_stay_deploy(self):
        deployment = self._deployed()
        self._set_book(deployment, "pause", self.book_broken)
        deployment.action_pause()
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "error")
        )
        self.assertIn("Broken config", deployment.error_message)

        # Failed update: still deploy; then a successful update clears the error.
        self._set_book(deployment, "deploy", self.book_broken)
        deployment.action_deploy()
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "error")
        )
        self._set_book(deployment, "deploy", self.book_deploy)
        deployment.action_deploy()
        self._run_jobs()
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy", "deploy")
        )
        self.assertFalse(deployment.error_message)

    def test_failed_job_is_posted_in_chatter(self):
        deployment = self._make_deployment()
        self._set_book(deployment, "initialize", self.book_broken)
        deployment.action_deploy()
        self._run_jobs()
        self.assertIn("The initialize job failed", self._messages(deployment))
        self.assertIn("no_such_variable", self._messages(deployment))

    def test_missing_book_refused_before_any_change(self):
        self.scope.deployment_pause_book_id = False
        deployment = self._deployed()
        deployment.deployment_pause_book_id = False
        with self.assertRaisesMessage(UserError, "has no Pause Book.*scope Test scope"):
            deployment.action_pause()
        self.assertEqual(deployment.state, "deploy")
        self.assertEqual(len(deployment.job_ids), 2)

    def test_state_changes_are_tracked(self):
        deployment = self._make_deployment()
        self._flush_tracking()  # create and action_deploy come in two requests
        deployment.action_deploy()
        self._flush_tracking()
        self._run_jobs()
        self._flush_tracking()
        tracked = deployment.message_ids.tracking_value_ids.filtered(
            lambda t: t.field_id.name == "repository_state"
        )
        self.assertEqual(
            sorted(tracked.mapped("new_value_char")), ["Deploy", "Initialize"]
        )

    def test_deployment_with_live_resources_cannot_be_deleted(self):
        deployment = self._deployed()
        with self.assertRaisesMessage(UserError, "use Drop"):
            deployment.unlink()
        draft = self._make_deployment("draft-one")
        draft.unlink()
        self.assertFalse(draft.exists())

    def test_type_scope_namespace_locked_after_draft(self):
        deployment = self._deployed()
        with self.assertRaisesMessage(UserError, "can no longer change"):
            deployment.namespace = "elsewhere"
        self.assertEqual(deployment.namespace, "acme")
        deployment.name = "Acme Renamed"
        self.assertEqual(deployment.namespace, "acme")

    def test_copy_gets_its_own_namespace(self):
        deployment = self._deployed()
        copy = deployment.copy()
        self.assertEqual(copy.name, "acme (copy)")
        self.assertEqual(copy.namespace, "acme-copy")
        self.assertEqual((copy.repository_state, copy.state), ("draft", "draft"))
        self.assertFalse(copy.job_ids)

    def test_job_in_progress_cannot_be_deleted(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        with self.assertRaisesMessage(UserError, "would leave its deployment waiting"):
            deployment.job_ids.unlink()
        self._run_jobs()
        deployment.job_ids.unlink()
        self.assertFalse(deployment.job_ids)
