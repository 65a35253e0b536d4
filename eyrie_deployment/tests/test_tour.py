import logging
import threading
import unittest

from odoo import SUPERUSER_ID, api
from odoo.tests import HttpCase, new_test_user, tagged

from .queue_jobs import run_queue_jobs

_logger = logging.getLogger(__name__)

# How often the test's job runner looks for jobs to run (seconds).
RUNNER_PERIOD = 0.3


@tagged("post_install", "-at_install")
class TestDeploymentTour(HttpCase):
    """The deployment form in a browser: Deploy, Pause, then a job's log.

    The form must show each job's outcome by itself (the eyrie_job_progress
    widget): the test's job runner runs the pending jobs only once the
    browser has read the deployment with its job in progress, so no reload
    done by the form on its own actions can show the outcome."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # No books: the scope uses the shipped books of Odoo deployments.
        scope = cls.env["eyrie.scope"].create(
            {
                "name": "Tour scope",
                "cluster_id": cls.env.ref("eyrie_deployment.eyrie_cluster_dry_run").id,
                "domain": "preview.example.test",
            }
        )
        cls.deployment = cls.env["eyrie.deployment"].create(
            {"name": "tour-odoo", "deployment_type": "odoo", "scope_id": scope.id}
        )

    def setUp(self):
        super().setUp()
        self.logged_in = threading.Event()
        self.job_shown = threading.Event()
        Deployment = self.registry["eyrie.deployment"]
        web_read = Deployment.web_read
        job_shown = self.job_shown

        @api.readonly
        def web_read_spy(records, specification):
            result = web_read(records, specification)
            if any(values.get("active_job_id") for values in result):
                job_shown.set()
            return result

        self.patch(Deployment, "web_read", web_read_spy)

    def authenticate(self, user, password, browser=None):
        session = super().authenticate(user, password, browser=browser)
        self.logged_in.set()
        return session

    def _run_jobs(self, stop, errors):
        """The job runner cron, which does not run in tests, as a loop.

        In an HttpCase the registry is in test mode: its cursors are test
        cursors on the test's transaction, serialised with the browser's
        requests by the registry's test lock, and their commits are
        savepoints. The browser sees what the runner does, and all of it is
        rolled back with the test.

        The runner starts once ``start_tour`` has logged in: logging in reads
        the user with the test's own cursor, which the test cursors use too,
        but without that lock."""
        while not self.logged_in.wait(0.1):
            if stop.is_set():
                return
        try:
            while not stop.wait(RUNNER_PERIOD):
                if not self.job_shown.is_set():
                    continue
                with self.registry.cursor() as cr:
                    jobs = api.Environment(cr, SUPERUSER_ID, {})["eyrie.job"]
                    if jobs.search_count([("state", "=", "pending")]):
                        self.job_shown.clear()
                        run_queue_jobs(jobs.env)
        # Any error: logged now (the tour may fail because of it), raised by
        # the test afterwards; a thread would only print it.
        except Exception as error:
            _logger.exception("The test's job runner failed")
            errors.append(error)

    def _start_tour_with_runner(self, tour, login):
        """Run ``tour`` as ``login`` while the test's job runner runs."""
        stop = threading.Event()
        errors = []
        runner = threading.Thread(
            target=self._run_jobs, args=(stop, errors), name="eyrie-tour-job-runner"
        )
        runner.start()
        try:
            self.start_tour(
                "/odoo/action-eyrie_deployment.eyrie_deployment_action",
                tour,
                login=login,
                timeout=120,
            )
        except unittest.SkipTest as skip:
            # HttpCase skips browser tests when Chrome is missing or does not
            # start: this test must run, so it fails instead.
            self.fail(
                f"The browser tour could not run ({skip}). Install Chromium "
                "(Debian package 'chromium'); bin/eyrie-test does it as root."
            )
        finally:
            stop.set()
            runner.join(timeout=60)
        self.assertFalse(runner.is_alive(), "The test's job runner did not stop.")
        if errors:
            raise AssertionError("The test's job runner failed") from errors[0]
        self.env.invalidate_all()

    def test_new_deploy_pause_resume_as_plain_user(self):
        user = new_test_user(
            self.env, login="tour_user", groups="eyrie_deployment.group_eyrie_user"
        )
        self._start_tour_with_runner("eyrie_deployment_new_tour", "tour_user")
        deployment = self.env["eyrie.deployment"].search([("name", "=", "tour-new")])
        self.assertEqual(deployment.create_uid, user)
        self.assertEqual(deployment.deployment_type, "odoo")
        self.assertEqual(
            (deployment.repository_state, deployment.state), ("deploy",) * 2
        )
        self.assertEqual(
            deployment.job_ids.sorted("id").mapped("action"),
            ["initialize", "deploy", "pause", "deploy"],
        )
        self.assertEqual(set(deployment.job_ids.mapped("state")), {"done"})

    def test_deploy_pause_and_job_log(self):
        self._start_tour_with_runner("eyrie_deployment_tour", "admin")
        deployment = self.deployment
        self.assertEqual(deployment.repository_state, "pause")
        self.assertEqual(deployment.state, "pause")
        self.assertFalse(deployment.active_job_id)
        jobs = deployment.job_ids
        for action in ("initialize", "deploy", "pause"):
            self.assertEqual(
                jobs.filtered(lambda job, action=action: job.action == action).mapped(
                    "state"
                ),
                ["done"],
                f"one {action} job, done",
            )
        initialize = jobs.filtered(lambda job: job.action == "initialize")
        self.assertIn("would apply Namespace tour-odoo", initialize.log)
