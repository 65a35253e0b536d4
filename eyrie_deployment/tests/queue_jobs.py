"""Eyrie's queue jobs in tests, run as queue_job runs them in production:
each one loaded from the database and performed by queue_job's own
``RunJobController._runjob`` (what its ``/queue_job/runjob`` route does for
the job runner), on a test cursor of its own."""

from contextlib import contextmanager
from datetime import timedelta

from psycopg2.errors import InFailedSqlTransaction

from odoo import fields
from odoo.tools import SQL

from odoo.addons.queue_job.controllers.main import RunJobController
from odoo.addons.queue_job.job import Job

SAFETY_LIMIT = 1000


def run_queue_jobs(env, limit=None, timers=False, also=()):
    """Perform the jobs' queue jobs that are due (and the timer jobs with
    ``timers``, the queue jobs of the methods ``also``), oldest first, the
    ones they queue included, until none is due (or ``limit`` ran). Returns
    how many ran. The tests move time with freezegun: a timer job runs only
    when a test asks for it."""
    QueueJob = env["queue.job"].sudo()
    methods = ["_run_queued"] + (["_run_due_timer"] if timers else []) + list(also)
    ran = 0
    while limit is None or ran < limit:
        env.flush_all()
        record = QueueJob.search(
            [
                ("state", "=", "pending"),
                ("channel", "=like", "root.eyrie%"),
                ("method_name", "in", methods),
                "|",
                ("eta", "=", False),
                ("eta", "<=", fields.Datetime.now()),
            ],
            order="priority, date_created, id",
            limit=1,
        )
        if not record:
            break
        if ran >= SAFETY_LIMIT:
            raise AssertionError(f"queue jobs still due after {ran} runs")
        # As the controller: a cursor of its own (in tests, a test cursor on
        # the test's transaction), on which queue_job rolls back what a
        # postponed job left uncommitted.
        with env.registry.cursor() as cr:
            job_env = env(cr=cr)
            job = Job.load(job_env, record.uuid)
            job.set_started()
            job.store()
            # As the controller's _acquire_job: the job is started for every
            # other cursor before it runs.
            cr.commit()  # pylint: disable=invalid-commit
            if job.method_name == "_run_queued":
                with _rollback_keeps_nested_commits(cr):
                    RunJobController._runjob(job_env, job)
            else:
                RunJobController._runjob(job_env, job)
        # The job ran on cursors of its own: read afresh.
        env.invalidate_all()
        ran += 1
    return ran


@contextmanager
def _rollback_keeps_nested_commits(cr):
    """queue_job rolls back the transaction of a queue job it postpones,
    after it has committed the postponement on a cursor of its own, as an
    Eyrie run commits its wait on one. In production these are other
    transactions, which the rollback leaves alone. Test cursors are
    savepoints on one transaction: rolling back the queue job's would undo
    them too. So here that rollback forgets what the queue job's transaction
    holds in memory and undoes nothing, for an Eyrie run only: it has
    written nothing in that transaction when it waits or gives up
    (``eyrie.job._run_queued``), unless a database error aborted it."""
    rollback = cr.rollback

    def forget():
        try:
            cr.execute(SQL("SELECT 1"), log_exceptions=False)
        except InFailedSqlTransaction:
            # A database error aborted it: rolled back, as in production
            # (and before anything is committed on another cursor).
            rollback()
        else:
            cr.clear()

    cr.rollback = forget
    try:
        yield
    finally:
        cr.rollback = rollback


def resume_waiting_jobs(env):
    """Let the time of the waiting and retrying jobs pass: their resume is
    due now. Timer jobs keep their time (they never fire early)."""
    env.flush_all()
    past = fields.Datetime.now() - timedelta(seconds=1)
    env.cr.execute(
        SQL(
            "UPDATE queue_job SET eta = %s WHERE state = 'pending' "
            "AND method_name = '_run_queued' AND eta > %s",
            past,
            past,
        )
    )
    env.cr.execute(
        SQL(
            "UPDATE eyrie_job SET not_before = %s WHERE state = 'pending' "
            "AND not_before > %s",
            past,
            past,
        )
    )
    env.invalidate_all()


def queued(env, method):
    """The pending Eyrie queue jobs of ``method``, by eta."""
    return (
        env["queue.job"]
        .sudo()
        .search(
            [("state", "=", "pending"), ("method_name", "=", method)],
            order="eta, id",
        )
    )
