"""Errors that keep their cause, batches and checks that survive concurrent
users, and the tools that say what is missing: each test fails on the code
before the fix it proves."""

import os
import shutil
import subprocess
import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

from freezegun import freeze_time
from lxml import etree
from psycopg2.errors import SerializationFailure

from odoo import SUPERUSER_ID, api, fields
from odoo.exceptions import UserError
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, Form, get_db_name, tagged
from odoo.tools import SQL, mute_logger

from odoo.addons.queue_job.controllers.main import RunJobController
from odoo.addons.queue_job.job import Job

from .committed_data import queue_jobs_now, remove_committed
from .common import EyrieCase
from .queue_jobs import run_queue_jobs

REPOSITORY = Path(__file__).resolve().parents[2]
CONFIG_MAP_STEP = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ deployment.name }}\n"
)
# What a failing query and the runner's report of it log, at ERROR level.
QUERY_LOGGERS = (
    "odoo.sql_db",
    "odoo.addons.eyrie_deployment.models.eyrie_job_runner",
    "odoo.addons.queue_job.controllers.main",
)


# ----------------------------------------------------------------------
# 1. A database error inside a step: the job says its cause
# ----------------------------------------------------------------------


@tagged("post_install", "-at_install")
class TestDatabaseErrorInAStep(EyrieCase):
    def test_job_failed_by_a_database_error_says_its_cause(self):
        book = self._make_book(
            "Two steps, the second faulty",
            [
                ("Namespace", "apply", CONFIG_MAP_STEP),
                ("Faulty", "apply", CONFIG_MAP_STEP),
            ],
        )
        deployment = self._make_deployment()
        self._set_book(deployment, "initialize", book)
        deployment.action_deploy()
        initialize = deployment.job_ids.sorted("id")[:1]

        Deployment = type(self.env["eyrie.deployment"])
        render_step = Deployment._render_step

        def faulty_render_step(record, step, context):
            # The fault: a query of the job's own code path that PostgreSQL
            # refuses, which aborts the job's transaction.
            if step.name == "Faulty":
                record.env.cr.execute(SQL("SELECT 1 / 0"))
            return render_step(record, step, context)

        with (
            patch.object(Deployment, "_render_step", faulty_render_step),
            mute_logger(*QUERY_LOGGERS),
        ):
            # As queue_job's runner and route run it: the run ends the job
            # itself, and raises nothing.
            run_queue_jobs(self.env)
        self.env.invalidate_all()

        self.assertEqual(initialize.state, "failed")
        self.assertNotIn("InFailedSqlTransaction", initialize.error_message)
        self.assertIn("DivisionByZero", initialize.error_message)
        self.assertIn("division by zero", initialize.error_message)
        self.assertEqual(deployment.state, "error")
        self.assertIn("division by zero", deployment.error_message)
        self.assertNotIn("InFailedSqlTransaction", deployment.error_message)
        # The lines written before the error stay in the log.
        self.assertIn(
            "Book Two steps, the second faulty on cluster Test dry run: 2 step(s)",
            initialize.log,
        )


# ----------------------------------------------------------------------
# Committed data, for the tests of concurrent transactions
# ----------------------------------------------------------------------


class CommittedCase(BaseCase):
    """A dry-run cluster, one book for every action and a scope using it,
    committed (concurrent transactions only see committed data), all
    removed afterwards with the deployments the test made."""

    SCOPE_VALUES = {}

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        self.deployment_ids = []
        self.addCleanup(self._cleanup)
        with self.registry.cursor() as cr:
            self.queue_jobs_before = queue_jobs_now(cr)
            env = api.Environment(cr, SUPERUSER_ID, {})
            cluster = env["eyrie.cluster"].create(
                {"name": f"Committed {type(self).__name__}", "dry_run": True}
            )
            step = {"name": "cm", "kind": "apply", "template": CONFIG_MAP_STEP}
            book = env["eyrie.deployment.book"].create(
                {"name": f"Committed {type(self).__name__}", "step_ids": [(0, 0, step)]}
            )
            scope = env["eyrie.scope"].create(
                {
                    "name": f"Committed {type(self).__name__}",
                    "domain": "locks.example.com",
                    "cluster_id": cluster.id,
                }
                | {
                    f"deployment_{action}_book_id": book.id
                    for action in ("initialize", "deploy", "pause", "drop")
                }
                | self.SCOPE_VALUES
            )
            self.cluster_id, self.book_id, self.scope_id = cluster.id, book.id, scope.id

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

    def _env(self, cr):
        return api.Environment(cr, SUPERUSER_ID, {})

    def _create(self, env, name, deployment_type="odoo", **vals):
        deployment = env["eyrie.deployment"].create(
            {
                "name": name,
                "deployment_type": deployment_type,
                "scope_id": self.scope_id,
            }
            | vals
        )
        self.deployment_ids.append(deployment.id)
        return deployment

    def _run_jobs(self):
        """Run the due Eyrie queue jobs as queue_job's runner and route do
        (pending to enqueued, acquire, perform), each on a committed cursor
        of its own, until none is due."""
        for _run in range(50):
            with self.registry.cursor() as cr:
                cr.execute(
                    "SELECT uuid FROM queue_job WHERE state = 'pending' "
                    "AND channel LIKE 'root.eyrie.cluster%%' "
                    "AND (eta IS NULL OR eta <= now() at time zone 'utc') "
                    "ORDER BY id LIMIT 1"
                )
                row = cr.fetchone()
                if not row:
                    return
                cr.execute(
                    "UPDATE queue_job SET state = 'enqueued' WHERE uuid = %s", row
                )
                cr.commit()  # pylint: disable=invalid-commit
                env = self._env(cr)
                job = RunJobController._acquire_job(env, row[0])
                self.assertTrue(job, "the queue job could not be acquired")
                RunJobController._runjob(env, job)
        raise AssertionError("queue jobs still due after 50 runs")


# ----------------------------------------------------------------------
# 2. The timers cron: a user acting on one deployment loses no batch
# ----------------------------------------------------------------------


@tagged("post_install", "-at_install")
class TestTimerBatchUnderConcurrentChange(CommittedCase):
    SCOPE_VALUES = {"deployment_pause_after_seconds": 3600, "allow_drop": False}

    def _pause_jobs(self, deployment):
        return deployment.job_ids.filtered(lambda job: job.action == "pause")

    def test_a_deployment_changed_meanwhile_is_left_to_the_next_run(self):
        with self.registry.cursor() as cr:
            env = self._env(cr)
            first = self._create(env, "timer-first")
            changed = self._create(env, "timer-changed")
            (first | changed).action_deploy()
        self._run_jobs()
        with self.registry.cursor() as cr:
            env = self._env(cr)
            first, changed = env["eyrie.deployment"].browse(self.deployment_ids)
            self.assertEqual((first.state, changed.state), ("deploy", "deploy"))
            # Deployed 3 and 2 hours ago: both pauses are due, the first one
            # first in the batch.
            now = fields.Datetime.now()
            first._set_lifecycle(deployed_at=now - timedelta(hours=3))
            changed._set_lifecycle(deployed_at=now - timedelta(hours=2))
        first_id, changed_id = self.deployment_ids

        cron_cr = self.registry.cursor()
        self.addCleanup(cron_cr.close)
        cron_env = self._env(cron_cr)
        # The cron's transaction has its snapshot...
        self.assertEqual(
            cron_env["eyrie.deployment"].browse(changed_id).state, "deploy"
        )
        # ... when a user changes one of the deployments and commits.
        with self.registry.cursor() as cr:
            self._env(cr)["eyrie.deployment"].browse(changed_id).write(
                {"values": '{"replicas": 2}'}
            )

        with mute_logger("odoo.sql_db"):
            fired = cron_env["eyrie.deployment"]._apply_due_timers(
                batch_size=200, commit=False
            )
        self.assertGreaterEqual(fired, 2)
        cron_cr.commit()
        cron_cr.close()

        with self.registry.cursor() as cr:
            env = self._env(cr)
            first = env["eyrie.deployment"].browse(first_id)
            changed = env["eyrie.deployment"].browse(changed_id)
            self.assertEqual(first.state, "pausing")
            self.assertEqual(self._pause_jobs(first).trigger, "timer")
            self.assertIn(
                "Automatic pause started by the Pause timer",
                " ".join(first.message_ids.mapped("body")),
            )
            # The changed one as the user left it: still due, not blocked.
            self.assertEqual(changed.state, "deploy")
            self.assertEqual(changed.values, '{"replicas": 2}')
            self.assertFalse(self._pause_jobs(changed))
            self.assertFalse(changed.timer_blocked_until)
            self.assertTrue(changed.is_pause_due)
            self.assertNotIn(
                "Automatic pause", " ".join(changed.message_ids.mapped("body"))
            )
            # The next run pauses it.
            env["eyrie.deployment"]._apply_due_timers(batch_size=200, commit=False)
            self.assertEqual(changed.state, "pausing")
            self.assertEqual(self._pause_jobs(changed).trigger, "timer")


# ----------------------------------------------------------------------
# 3. An Odoo and its shared PostgreSQL deployment: checks of every phase,
#    serialized against each other
# ----------------------------------------------------------------------


@tagged("post_install", "-at_install")
class TestDatabaseUnderAnOdooInItsFirstDeploy(EyrieCase):
    def test_database_not_paused_under_an_odoo_in_its_first_deploy(self):
        database = self._make_deployment("shared-pg", "pgo")
        odoo = self._make_deployment(
            "first-odoo", database_mode="shared", database_deployment_id=database.id
        )
        # Deployed once the Odoo is allowed: its role is there.
        database.action_deploy()
        self._run_jobs()
        self.assertEqual(database.state, "deploy")
        odoo.action_deploy()
        self.assertEqual(
            (odoo.repository_state, odoo.state), ("initialize", "initializing")
        )
        self.assertEqual(odoo.active_job_id.state, "pending")
        self.assertFalse(database.active_job_id)

        with self.assertRaisesMessage(
            UserError, "cannot be paused: Odoo deployment first-odoo"
        ):
            database.action_pause()
        self.assertEqual(database.state, "deploy")
        self.assertFalse(database.job_ids.filtered(lambda job: job.action == "pause"))


@tagged("post_install", "-at_install")
class TestDatabaseAndOdooRaces(CommittedCase):
    """Two users at once, each in a transaction of its own: the pause of a
    shared PostgreSQL deployment and the first deploy of an Odoo on it."""

    def setUp(self):
        super().setUp()
        with self.registry.cursor() as cr:
            env = self._env(cr)
            database = self._create(env, "race-pg", "pgo")
            odoo = self._create(
                env,
                "race-odoo",
                database_mode="shared",
                database_deployment_id=database.id,
            )
            # Deployed once the Odoo is allowed: its role is there, and the
            # Odoo's deploy changes nothing of the PostgreSQL deployment.
            database.action_deploy()
            self.database_id, self.odoo_id = database.id, odoo.id
        self._run_jobs()
        with self.registry.cursor() as cr:
            env = self._env(cr)
            database = env["eyrie.deployment"].browse(self.database_id)
            self.assertEqual(database.state, "deploy")

    def _jobs(self, env, deployment_id, action):
        return (
            env["eyrie.deployment"]
            .browse(deployment_id)
            .job_ids.filtered(lambda job: job.action == action)
        )

    def test_pause_of_the_database_while_the_odoo_deploys(self):
        first_cr = self.registry.cursor()
        self.addCleanup(first_cr.close)
        first_env = self._env(first_cr)
        # The first user's transaction has its snapshot (a form opened)...
        self.assertEqual(
            first_env["eyrie.deployment"].browse(self.database_id).state, "deploy"
        )
        # ... when the second one deploys the Odoo and commits.
        with self.registry.cursor() as cr:
            odoo = self._env(cr)["eyrie.deployment"].browse(self.odoo_id)
            odoo.action_deploy()
            self.assertEqual(odoo.state, "initializing")

        # The pause does not slip under the deploying Odoo: it fails as a
        # concurrent update, which Odoo's RPC layer retries.
        with (
            mute_logger("odoo.sql_db"),
            self.assertRaises(SerializationFailure),
        ):
            first_env["eyrie.deployment"].browse(self.database_id).action_pause()
        first_cr.rollback()
        first_cr.close()

        # The retry, on a fresh transaction, sees the Odoo deploying.
        with self.registry.cursor() as cr:
            env = self._env(cr)
            with self.assertRaisesRegex(
                UserError, "cannot be paused: Odoo deployment race-odoo"
            ):
                env["eyrie.deployment"].browse(self.database_id).action_pause()
            cr.rollback()
            self.assertFalse(self._jobs(env, self.database_id, "pause"))
            self.assertEqual(
                env["eyrie.deployment"].browse(self.database_id).state, "deploy"
            )

    def test_first_deploy_of_the_odoo_while_the_database_pauses(self):
        first_cr = self.registry.cursor()
        self.addCleanup(first_cr.close)
        first_env = self._env(first_cr)
        # The first user's transaction has its snapshot...
        self.assertEqual(
            first_env["eyrie.deployment"].browse(self.odoo_id).state, "draft"
        )
        # ... when the second one pauses the PostgreSQL deployment (nothing
        # runs on it yet) and commits.
        with self.registry.cursor() as cr:
            database = self._env(cr)["eyrie.deployment"].browse(self.database_id)
            database.action_pause()
            self.assertEqual(database.state, "pausing")

        # The deploy does not start on a database going down: it fails as a
        # concurrent update, which Odoo's RPC layer retries.
        with (
            mute_logger("odoo.sql_db"),
            self.assertRaises(SerializationFailure),
        ):
            first_env["eyrie.deployment"].browse(self.odoo_id).action_deploy()
        first_cr.rollback()
        first_cr.close()

        # The retry, on a fresh transaction, sees the pause.
        with self.registry.cursor() as cr:
            env = self._env(cr)
            with self.assertRaisesRegex(
                UserError,
                "Odoo deployment race-odoo keeps its database in PostgreSQL "
                "deployment race-pg, which is going down",
            ):
                env["eyrie.deployment"].browse(self.odoo_id).action_deploy()
            cr.rollback()
            self.assertFalse(env["eyrie.deployment"].browse(self.odoo_id).job_ids)
            self.assertEqual(
                env["eyrie.deployment"].browse(self.odoo_id).state, "draft"
            )


# ----------------------------------------------------------------------
# 4. No job runner: the forms say so, and what to configure
# ----------------------------------------------------------------------


@tagged("post_install", "-at_install")
class TestNoJobRunnerBanner(EyrieCase):
    def _shown(self, when, *records):
        """What each of ``records`` says of the runner at ``when``."""
        with freeze_time(when):
            for record in records:
                record.invalidate_recordset(["runner_missing"])
            return [record.runner_missing for record in records]

    def test_a_job_no_runner_took_says_what_to_configure(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize, deploy = deployment.job_ids.sorted("id")
        due = initialize.create_date

        # Due for less than 5 minutes: nothing to say yet.
        self.assertEqual(
            self._shown(due + timedelta(minutes=4), initialize, deployment),
            [False, False],
        )
        later = due + timedelta(minutes=6)
        job_text, deployment_text = self._shown(later, initialize, deployment)
        for text in (job_text, deployment_text):
            self.assertTrue(text)
            self.assertIn("No job runner has started this job", text)
            self.assertIn("server-wide modules", text)
            self.assertIn("capacity of at least 1", text)
        # The deploy job waits for the initialize job, not for a runner.
        self.assertEqual(self._shown(due + timedelta(hours=1), deploy), [False])

        # The banner, as a user opens each form.
        with freeze_time(later):
            deployment.invalidate_recordset(["runner_missing"])
            self.assertIn(
                "No job runner has started this job", Form(deployment).runner_missing
            )
            initialize.invalidate_recordset(["runner_missing"])
            self.assertIn(
                "No job runner has started this job", Form(initialize).runner_missing
            )
        for model in ("eyrie.deployment", "eyrie.job"):
            arch = etree.fromstring(self.env[model].get_view(view_type="form")["arch"])
            banner = arch.xpath("//div[@role='alert'][field[@name='runner_missing']]")
            self.assertEqual(len(banner), 1, model)
            self.assertEqual(banner[0].get("invisible"), "not runner_missing", model)

        # A runner takes it: nothing to say any more.
        queue_job = Job.load(self.env, initialize.queue_job_uuid)
        queue_job.set_started()
        queue_job.store()
        self.assertEqual(
            self._shown(due + timedelta(hours=1), initialize, deployment),
            [False, False],
        )


# ----------------------------------------------------------------------
# 5. bin/eyrie-bench runs the benchmark with the Python that has Odoo
# ----------------------------------------------------------------------


@tagged("post_install", "-at_install")
class TestBenchFindsOdoo(BaseCase):
    def test_bench_uses_the_venv_python_when_python3_has_no_odoo(self):
        root = Path(tempfile.mkdtemp(prefix="eyrie-bench-"))
        self.addCleanup(shutil.rmtree, root, ignore_errors=True)
        shutil.copytree(REPOSITORY / "bin", root / "bin")
        # The repository's .venv: a Python that imports Odoo.
        (root / ".venv" / "bin").mkdir(parents=True)
        (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
        # python3 on PATH: the same interpreter without its site-packages,
        # where Odoo is not importable.
        shims = root / "shims"
        shims.mkdir()
        shim = shims / "python3"
        shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -I -S "$@"\n')
        shim.chmod(0o755)
        # What bin/eyrie-test leaves for the database the benchmark uses.
        database = "eyrie_bench_probe"
        (root / ".eyrie").mkdir()
        (root / ".eyrie" / f"odoo-test-{database}.conf").write_text("[options]\n")
        script = root / "probe.py"
        script.write_text("import odoo.release\n\nprint(odoo.release.serie)\n")

        environ = {
            key: value
            for key, value in os.environ.items()
            if key
            not in ("PYTHON", "PYTHONPATH", "PYTHONHOME", "EYRIE_NO_ODOO_INSTALL")
        }
        environ |= {
            "PATH": f"{shims}:/usr/local/bin:/usr/bin:/bin",
            "EYRIE_TEST_DB": database,
        }
        check = subprocess.run(
            ["python3", "-c", "import odoo"],
            env=environ,
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertIn("No module named 'odoo'", check.stderr)

        result = subprocess.run(
            ["bash", str(root / "bin" / "eyrie-bench"), str(script)],
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout.strip(), "18.0")
