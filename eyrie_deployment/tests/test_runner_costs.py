"""What the hot paths cost: the job runner reads a job once and commits
nothing of its own (its end is committed with its queue job's), an action
queues its jobs without looking them up, and the form reads no job's log
to know the job in progress; and what that must not cost in behaviour (a
deployment changed while its job runs, an outcome that cannot be
applied)."""

import re
import threading
from contextlib import contextmanager
from unittest.mock import patch

from odoo import SUPERUSER_ID, api, fields
from odoo.modules.registry import Registry
from odoo.tests import BaseCase, get_db_name, tagged

from odoo.addons.queue_job.job import Job

from ..models import eyrie_job_runner
from ..tools.executor import DryRunExecutor
from .committed_data import make_dry_run_scope, queue_jobs_now, remove_committed
from .common import EyrieCase
from .parallel_jobs import run_in_threads

CONFIG_MAP_STEP = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: one\n"
SKIPPED_STEP = "{# skipped: nothing to do here #}"
RUNNER_LOGGER = "odoo.addons.eyrie_deployment.models.eyrie_job_runner"


@contextmanager
def recorded_queries():
    """The SQL statements this thread sends meanwhile, on any cursor (the
    queue jobs run on cursors of their own), with their parameters."""
    queries = []

    def hook(_cr, query, params, _start, _delay):
        text = query.decode() if isinstance(query, bytes) else str(query)
        queries.append((" ".join(text.split()), params))

    thread = threading.current_thread()
    hooks = getattr(thread, "query_hooks", ())
    thread.query_hooks = (*hooks, hook)
    try:
        yield queries
    finally:
        thread.query_hooks = hooks


@tagged("post_install", "-at_install")
class TestRunnerCosts(EyrieCase):
    def _deploy_with(self, book):
        """A deployed deployment whose next deploy runs ``book``, its update
        job queued."""
        deployment = self._deployed()
        self._set_book(deployment, "deploy", book)
        deployment.action_deploy()
        return deployment, deployment.job_ids.sorted("id")[-1]

    def _commits_of_run(self):
        """Run the queue jobs; returns how many times the runner committed
        on a cursor of its own (beside queue_job's commits)."""
        Job = type(self.env["eyrie.job"])
        commit = Job._commit
        commits = []

        def counted(job):
            commits.append(job.id)
            return commit(job)

        with patch.object(Job, "_commit", counted):
            self._run_jobs()
        return len(commits)

    def test_one_step_job_reads_its_row_once_and_commits_nothing_of_its_own(self):
        deployment, job = self._deploy_with(self.book_deploy)
        with recorded_queries() as queries:
            commits = self._commits_of_run()
        self.assertEqual(job.state, "done")
        self.assertEqual(job.step_index, 1)
        # Taken when queue_job started its queue job (committed with it:
        # users see it run), then ended in the transaction that queue_job
        # commits with the queue job's end: no commit of its own.
        self.assertEqual(commits, 0)
        # The log and the values are returned by the statement that takes
        # the job, never read again by the ORM after a commit.
        reads_of_log = [query for query, _params in queries if "job.log" in query]
        self.assertEqual(len(reads_of_log), 1)
        self.assertIn("UPDATE eyrie_job", reads_of_log[0].split(";")[-1])
        self.assertIn("RETURNING", reads_of_log[0])
        for query, _params in queries:
            self.assertNotIn('"eyrie_job"."log"', query)
            self.assertNotIn('"eyrie_job"."values"', query)
        # Nor the job's other fields to end it, nor its cluster and scope,
        # kept in memory from one run to the next.
        for table in ("eyrie_job", "eyrie_cluster", "eyrie_scope"):
            self.assertFalse(
                [q for q, _p in queries if q.startswith(f'SELECT "{table}"."id", ')],
                table,
            )
        self.assertEqual(deployment.state, "deploy")

    def test_a_run_reads_what_it_needs_of_its_deployment_in_one_query(self):
        deployment, job = self._deploy_with(self.book_deploy)
        with recorded_queries() as queries:
            self._run_jobs()
        self.assertEqual(job.state, "done")
        self.assertEqual(deployment.state, "deploy")
        reads = [
            query
            for query, _params in queries
            if query.startswith("SELECT") and 'FROM "eyrie_deployment"' in query
        ]
        self.assertEqual(len(reads), 1, reads)
        # Its timers and its credentials with it; not its values (the job
        # carries them) nor what only its form shows.
        for column in ("next_pause_at", "credentials"):
            self.assertIn(f'"{column}"', reads[0])
        for column in ("values", "hostname", "deployment_deploy_book_id"):
            self.assertNotIn(f'"{column}"', reads[0])

    def test_a_job_is_running_once_queue_job_started_it(self):
        _deployment, job = self._deploy_with(self.book_deploy)
        queued = Job.load(self.env, job.queue_job_uuid)
        # What queue_job does before it runs the queue job, in one
        # transaction that it commits.
        queued.set_started()
        queued.store()
        self.env.flush_all()
        job.invalidate_recordset()
        self.assertEqual(job.state, "running")
        self.assertTrue(job.started_at)
        self.assertIn(":", job.worker)
        # A job that is not due stays as it is until its run says why.
        waiting = self._deployed("waiting")
        waiting.action_deploy()
        later = waiting.job_ids.sorted("id")[-1]
        later.sudo().not_before = fields.Datetime.add(fields.Datetime.now(), hours=1)
        self.env.flush_all()
        queued = Job.load(self.env, later.queue_job_uuid)
        queued.set_started()
        queued.store()
        self.env.flush_all()
        later.invalidate_recordset()
        self.assertEqual(later.state, "pending")

    def test_a_run_rewrites_its_job_in_place(self):
        """Taking and ending a job change none of the columns of the jobs'
        indexes, and the pages of the table keep room: PostgreSQL writes the
        row's new version beside the old one without a new entry in every
        index (a heap-only, HOT, update)."""
        _deployment, job = self._deploy_with(self.book_deploy)
        with recorded_queries() as queries:
            self._run_jobs()
        self.assertEqual(job.state, "done")
        written = set()
        for query, _params in queries:
            if query.startswith(("UPDATE eyrie_job", "SET LOCAL", "SET sync")):
                assignments = query.split(" SET ", 2)[-1].split(" WHERE ")[0]
                written |= set(re.findall(r'"?(\w+)"? = ', assignments))
        self.assertIn("state", written)
        cr = self.env.cr
        cr.execute(
            """
            SELECT attribute.attname, index.indexrelid::regclass::text,
                   index.indpred IS NOT NULL
              FROM pg_index index
              JOIN pg_attribute attribute
                ON attribute.attrelid = index.indrelid
               AND attribute.attnum = ANY(index.indkey)
             WHERE index.indrelid = 'eyrie_job'::regclass
            """
        )
        indexed = {name: (index, partial) for name, index, partial in cr.fetchall()}
        # not_before is indexed where it is set: a run taken or ended leaves
        # it empty, as it was.
        indexed.pop("not_before")
        self.assertFalse(written & indexed.keys(), indexed)
        cr.execute("SELECT reloptions FROM pg_class WHERE oid = 'eyrie_job'::regclass")
        self.assertIn("fillfactor=70", cr.fetchone()[0] or [])

    def test_the_start_of_a_job_need_not_wait_for_the_disk(self):
        """The transaction in which queue_job starts a job's queue job, and
        Eyrie takes the job, commits without waiting for the disk (a lost
        start only makes the job start again), and only that transaction:
        the connection's setting is left as it was for the next one."""
        _deployment, job = self._deploy_with(self.book_deploy)
        queued = Job.load(self.env, job.queue_job_uuid)
        with recorded_queries() as queries:
            queued.set_started()
            queued.store()
            self.env.flush_all()
        self.assertEqual(job.state, "running")
        takes = [query for query, _params in queries if "UPDATE eyrie_job" in query]
        self.assertEqual(len(takes), 1)
        self.assertTrue(
            takes[0].startswith("SET LOCAL synchronous_commit TO OFF;"), takes[0]
        )

    def test_book_steps_are_read_once_until_one_changes(self):
        book = self._make_book("Once", [("One", "apply", CONFIG_MAP_STEP)])
        deployment = self._deployed()
        self._set_book(deployment, "deploy", book)

        def step_reads():
            deployment.action_deploy()
            with recorded_queries() as queries:
                self._run_jobs()
            self.assertEqual(deployment.state, "deploy")
            return [
                q
                for q, _p in queries
                if q.startswith('SELECT "eyrie_deployment_book_step"')
            ]

        self.env.registry.clear_cache()
        reads = step_reads()
        # In their order, without joining the book.
        self.assertEqual(len(reads), 1)
        self.assertNotIn("JOIN", reads[0])
        self.assertEqual(step_reads(), [])
        book.step_ids.template = CONFIG_MAP_STEP.replace("one", "two")
        self.assertEqual(len(step_reads()), 1)
        job = self.env["eyrie.job"].search(
            [("book_id", "=", book.id)], order="id desc", limit=1
        )
        self.assertIn("ConfigMap two", job.log)

    def test_a_step_with_nothing_to_do_commits_nothing(self):
        book = self._make_book(
            "Skipped, then one",
            [("Nothing", "apply", SKIPPED_STEP), ("One", "apply", CONFIG_MAP_STEP)],
        )
        _deployment, job = self._deploy_with(book)
        self.assertEqual(self._commits_of_run(), 0)
        self.assertEqual(job.step_index, 2)
        self.assertIn("Step 1 'Nothing' (apply): skipped (nothing to do here)", job.log)

    def test_progress_is_committed_at_most_once_a_heartbeat(self):
        book = self._make_book(
            "Two",
            [("First", "apply", CONFIG_MAP_STEP), ("Second", "apply", CONFIG_MAP_STEP)],
        )
        deployment, job = self._deploy_with(book)
        # Quick steps: their progress is committed with the job's end, in
        # queue_job's transaction.
        self.assertEqual(self._commits_of_run(), 0)
        self.assertEqual((job.state, job.step_index), ("done", 2))
        # Steps slower than the heartbeat: each but the last commits it, on
        # a cursor of the run's own, where the run then ends.
        self.patch(eyrie_job_runner, "HEARTBEAT_SECONDS", 0)
        deployment.action_deploy()
        job = deployment.job_ids.sorted("id")[-1]
        self.assertEqual(self._commits_of_run(), 2)
        self.assertEqual((job.state, job.step_index), ("done", 2))

    def test_an_action_queues_its_jobs_without_looking_them_up(self):
        deployment = self._make_deployment()
        with recorded_queries() as queries:
            deployment.action_deploy()
            self.env.flush_all()
        initialize, deploy = deployment.job_ids.sorted("id")
        # The jobs know their queue jobs from their creation: no write
        # after, no look-up of the identity key of a job just created.
        for query, params in queries:
            self.assertNotIn('"queue_job_uuid" = "__tmp"', query)
            self.assertFalse(
                query.startswith("SELECT") and "eyrie.job:" in str(params), query
            )
        # Nor a look-up of the queue jobs by uuid before storing them: both
        # are stored together, the initialize job's with the job chained
        # after it, in one insert.
        lookups = [
            query
            for query, _params in queries
            if query.startswith('SELECT "queue_job"."id" FROM "queue_job" WHERE')
            and '"queue_job"."uuid" IN' in query
        ]
        self.assertEqual(lookups, [])
        inserts = [q for q, _p in queries if q.startswith('INSERT INTO "queue_job"')]
        self.assertEqual(len(inserts), 1)
        # The deploy job's queue job waits for the initialize job's, which
        # was not read again from the database to chain it.
        parent = initialize.queue_job_uuid
        self.assertFalse(
            [
                query
                for query, params in queries
                if query.startswith('SELECT "queue_job"."id", "queue_job"."uuid"')
            ]
        )
        records = self.env["queue.job"].search(
            [("uuid", "in", [parent, deploy.queue_job_uuid])], order="id"
        )
        self.assertEqual(
            [(record.identity_key, record.state) for record in records],
            [
                (f"eyrie.job:{initialize.id}", "pending"),
                (f"eyrie.job:{deploy.id}", "wait_dependencies"),
            ],
        )
        self.assertEqual(records[1].dependencies["depends_on"], [parent])
        self.assertEqual(
            records[0].dependencies["reverse_depends_on"], [deploy.queue_job_uuid]
        )
        self.assertEqual(records[0].graph_uuid, records[1].graph_uuid)
        self.assertEqual(self._run_jobs(), 2)
        self.assertEqual(deployment.state, "deploy")

    def test_a_job_is_queued_without_reading_its_cluster_or_channel(self):
        self._make_deployment("first").action_deploy()
        deployment = self._make_deployment()
        with recorded_queries() as queries:
            deployment.action_deploy()
            self.env.flush_all()
        # The channel's name is in Odoo's cache since the first action.
        self.assertFalse([q for q, _p in queries if "queue_job_channel" in q])
        self.assertFalse([q for q, _p in queries if 'FROM "eyrie_cluster"' in q])
        record = self.env["queue.job"].search(
            [("uuid", "=", deployment.job_ids.sorted("id")[0].queue_job_uuid)]
        )
        self.assertEqual(record.channel, f"root.eyrie.cluster_{self.cluster.id}")

    def test_a_renamed_channel_is_the_one_jobs_are_queued_in(self):
        self._make_deployment("first").action_deploy()
        # In queue_job's own screens.
        self.cluster.job_channel_id.name = "renamed"
        deployment = self._make_deployment()
        deployment.action_deploy()
        record = self.env["queue.job"].search(
            [("uuid", "=", deployment.job_ids.sorted("id")[0].queue_job_uuid)]
        )
        self.assertEqual(record.channel, "root.eyrie.renamed")

    def test_the_job_in_progress_is_found_without_reading_any_log(self):
        deployment = self._deployed()
        self.env["eyrie.job"].search([("deployment_id", "=", deployment.id)]).write(
            {"log": "a long log\n" * 1000}
        )
        deployment.action_deploy()
        self._run_jobs()
        deployment.action_pause()
        pause = deployment.job_ids.sorted("id")[-1]
        self.env.invalidate_all()
        with recorded_queries() as queries:
            self.assertEqual(deployment.active_job_id, pause)
            self.assertFalse(deployment.runner_missing)
            # What the form's list of jobs shows, for every job.
            deployment.job_ids.mapped("state")
        for query, _params in queries:
            self.assertNotIn('"eyrie_job"."log"', query)
            self.assertNotIn('"eyrie_job"."values"', query)

    def test_the_job_in_progress_is_the_one_due_first(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        initialize, _deploy = deployment.job_ids.sorted("id")
        self.env.invalidate_all()
        # Not the deploy job chained after it, which waits.
        self.assertEqual(deployment.active_job_id, initialize)

    def test_an_outcome_that_cannot_be_applied_fails_the_job_with_its_reason(self):
        deployment, job = self._deploy_with(self.book_deploy)
        Deployment = type(self.env["eyrie.deployment"])

        def broken(record, job):
            raise ValueError("the outcome is broken")

        with (
            patch.object(Deployment, "_on_deploy_done", broken),
            self.assertLogs(RUNNER_LOGGER, "ERROR"),
        ):
            self._run_jobs()
        self.assertEqual(job.state, "failed")
        self.assertIn(
            "The book ran, but its outcome could not be recorded: "
            "ValueError: the outcome is broken",
            job.error_message,
        )
        # Recorded with the job's log and progress, after what the outcome
        # had written was undone.
        self.assertIn("Step 1 'Workload' (apply):", job.log)
        self.assertEqual(job.step_index, 1)
        self.assertEqual(deployment.state, "error")
        self.assertIn("the outcome is broken", deployment.error_message)

    def test_an_unchanged_lifecycle_writes_nothing(self):
        deployment = self._deployed()
        with recorded_queries() as queries:
            deployment._set_lifecycle(state="deploy", error_message=False)
            self.env.flush_all()
        self.assertFalse(
            [query for query, _params in queries if query.startswith("UPDATE")]
        )


@tagged("post_install", "-at_install")
class TestDeploymentChangedWhileItsJobRuns(BaseCase):
    """A job ends in the transaction of its last step: a deployment changed
    meanwhile by someone else (committed) must not make it start over.
    Committed data and job threads of their own, as in production."""

    def setUp(self):
        super().setUp()
        self.registry = Registry(get_db_name())
        self.addCleanup(self._cleanup)
        with self.registry.cursor() as cr:
            self.queue_jobs_before = queue_jobs_now(cr)
            env = api.Environment(cr, SUPERUSER_ID, {})
            cluster, book, scope = make_dry_run_scope(
                env, "Changed meanwhile", "changed.example.com"
            )
            deployment = env["eyrie.deployment"].create(
                {"name": "changed", "deployment_type": "odoo", "scope_id": scope.id}
            )
            deployment.action_deploy()
            self.cluster_id, self.book_id, self.scope_id = cluster.id, book.id, scope.id
            self.deployment_id = deployment.id

    def _cleanup(self):
        with self.registry.cursor() as cr:
            remove_committed(
                cr,
                [self.deployment_id],
                [self.scope_id],
                [self.book_id],
                [self.cluster_id],
                self.queue_jobs_before,
            )

    def _queue_job_locked(self, uuid):
        """Whether a worker holds queue_job's lock of the queue job ``uuid``,
        seen from another transaction, as queue_job's requeuer sees it."""
        with self.registry.cursor() as cr:
            cr.execute(
                "SELECT lock.id FROM queue_job_lock lock "
                "JOIN queue_job job ON job.id = lock.queue_job_id "
                "WHERE job.uuid = %s FOR NO KEY UPDATE OF lock SKIP LOCKED",
                [uuid],
            )
            free = cr.fetchall()
            cr.execute(
                "SELECT count(*) FROM queue_job_lock lock "
                "JOIN queue_job job ON job.id = lock.queue_job_id "
                "WHERE job.uuid = %s",
                [uuid],
            )
            exists = cr.fetchone()[0]
        return bool(exists) and not free

    def test_its_job_still_ends_done_without_a_restart(self):
        run_step = DryRunExecutor.run_step
        changed = []

        def run_step_while_someone_writes(executor, kind, documents):
            if not changed:
                # Someone else changes the deployment and commits, while the
                # job's step runs.
                with self.registry.cursor() as cr:
                    env = api.Environment(cr, SUPERUSER_ID, {})
                    env["eyrie.deployment"].browse(self.deployment_id).write(
                        {"user_id": SUPERUSER_ID}
                    )
                changed.append(True)
            return run_step(executor, kind, documents)

        Job = self.registry["eyrie.job"]
        write_end = Job._write_end
        ends = []
        locked = []

        def counted_end(job, *args, **kwargs):
            ends.append(job.id)
            if len(ends) == 2:
                # Recorded again on a cursor of its own: queue_job's lock of
                # the queue job is still held (its requeuer would otherwise
                # take it for a dead worker's).
                locked.append(self._queue_job_locked(job.queue_job_uuid))
            return write_end(job, *args, **kwargs)

        with (
            patch.object(DryRunExecutor, "run_step", run_step_while_someone_writes),
            patch.object(Job, "_write_end", counted_end),
        ):
            gauge = run_in_threads(self.registry, [self.deployment_id], 1)
        self.assertTrue(changed)
        # The change met the first job's end, which was recorded again on a
        # fresh snapshot; the second job's end once.
        self.assertEqual(len(ends), 3)
        self.assertEqual(locked, [True])
        self.assertEqual(ends[0], ends[1])
        self.assertEqual(gauge.ran, 2)
        with self.registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            deployment = env["eyrie.deployment"].browse(self.deployment_id)
            self.assertEqual(deployment.state, "deploy")
            self.assertEqual(deployment.user_id.id, SUPERUSER_ID)
            jobs = deployment.job_ids
            self.assertEqual(set(jobs.mapped("state")), {"done"})
            self.assertEqual(set(jobs.mapped("restarts")), {0})
            self.assertNotIn("Resumed", "".join(jobs.mapped("log")))
