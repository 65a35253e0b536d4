"""A burst of wake calls in transactions of their own, as several Odoo
servers and workers serve them: the deployment resumes exactly once."""

import functools
import threading

from odoo import SUPERUSER_ID, api
from odoo.modules.registry import Registry
from odoo.service.model import retrying
from odoo.tests import BaseCase, get_db_name, tagged

from odoo.addons.eyrie_deployment.tests.committed_data import (
    make_dry_run_scope,
    queue_jobs_now,
    remove_committed,
)

CALLS = 12


@tagged("post_install", "-at_install")
class TestWakeBurst(BaseCase):
    """Committed data (the calls' transactions are concurrent), removed
    afterwards."""

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        self.addCleanup(self._cleanup)
        with self.registry.cursor() as cr:
            self.queue_jobs_before = queue_jobs_now(cr)
            env = api.Environment(cr, SUPERUSER_ID, {})
            cluster, book, scope = make_dry_run_scope(
                env, "Wake burst", "burst.example.com"
            )
            cluster.action_install_waker()
            scope.wake_on_request = True
            deployment = env["eyrie.deployment"].create(
                {"name": "burst", "deployment_type": "odoo", "scope_id": scope.id}
            )
            # Asleep, as a pause leaves it.
            deployment._set_lifecycle(repository_state="pause", state="pause")
            self.ids = (cluster.id, book.id, scope.id, deployment.id)
            self.host = deployment.hostname

    def _cleanup(self):
        cluster_id, book_id, scope_id, deployment_id = self.ids
        with self.registry.cursor() as cr:
            remove_committed(
                cr,
                [deployment_id],
                [scope_id],
                [book_id],
                [cluster_id],
                self.queue_jobs_before,
            )

    def _call(self, barrier, answers):
        barrier.wait()
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            deployment = env["eyrie.deployment"].browse(self.ids[3])
            # As Odoo's HTTP layer serves a request: retried on a
            # serialization failure.
            answer = retrying(
                functools.partial(deployment._wake_on_request, self.host, "api"), env
            )
            answers.append(answer[0])

    def test_a_burst_resumes_once(self):
        barrier = threading.Barrier(CALLS)
        answers = []
        threads = [
            threading.Thread(target=self._call, args=(barrier, answers))
            for _index in range(CALLS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(answers, ["waking"] * CALLS)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            deployment = env["eyrie.deployment"].browse(self.ids[3])
            jobs = deployment.job_ids.filtered(lambda job: job.trigger == "wake")
            self.assertEqual(len(jobs), 1)
            self.assertEqual(deployment.state, "deploying")
            notes = deployment.message_ids.filtered(
                lambda message: "Woken by a request" in (message.body or "")
            )
            self.assertEqual(len(notes), 1)
