"""Eyrie's queue jobs run in a benchmark process as queue_job runs them on a
server: its job runner marks a due job enqueued, its /queue_job/runjob route
acquires and performs it, each step committed. For benchmarks that measure
the job code itself, without HTTP in between (queue_servers.py measures two
real Odoo servers)."""

from psycopg2.errors import SerializationFailure

from odoo.tools import SQL

# The method of the queue jobs that run Eyrie's jobs (eyrie.job).
EYRIE_JOB_METHOD = "_run_queued"


def due(method_name=EYRIE_JOB_METHOD):
    """The condition on queue_job rows of the due queue jobs of ``method_name``."""
    return SQL(
        "state = 'pending' AND method_name = %s "
        "AND (eta IS NULL OR eta <= now() AT TIME ZONE 'UTC')",
        method_name,
    )


def run_due_queue_jobs(
    env, on_run=None, one_pass=False, method_name=EYRIE_JOB_METHOD, limit=None
):
    """Run the due queue jobs of ``method_name`` (by default Eyrie's jobs)
    until none is due, or ``limit`` ran; ``on_run(record)`` is called with
    each job's record (an eyrie.job) before it runs. Returns how many ran.

    Any other method runs the same way: scale.py runs queue_job's own
    ``queue.job._test_job``, a job that does nothing, as the anchor of the
    job runner's figures.

    With ``one_pass``, a job that yields during the pass is left for the
    next one, even once its delay has passed: with many waiting jobs a pass
    can outlast their delay, and the caller would never get to play the
    controllers they wait for."""
    # Imported once Odoo's addons path is configured (base_sparse_field).
    from odoo.addons.queue_job.controllers.main import RunJobController

    cr = env.cr
    ran = 0
    where = due(method_name)
    if one_pass:
        cr.execute("SELECT now() AT TIME ZONE 'UTC'")
        started = cr.fetchone()[0]
        where = SQL("%s AND (eta IS NULL OR eta <= %s)", where, started)
    while limit is None or ran < limit:
        try:
            cr.execute(
                SQL(
                    "SELECT uuid FROM queue_job WHERE %s ORDER BY priority, id "
                    "LIMIT 1 FOR UPDATE SKIP LOCKED",
                    where,
                ),
                log_exceptions=False,
            )
        except SerializationFailure:
            # Another process took that row after this snapshot: look again.
            cr.rollback()
            continue
        row = cr.fetchone()
        if not row:
            cr.commit()
            return ran
        cr.execute(
            SQL("UPDATE queue_job SET state = 'enqueued' WHERE uuid = %s", row[0])
        )
        cr.commit()
        try:
            job = RunJobController._acquire_job(env, row[0])
        except SerializationFailure:
            cr.rollback()
            job = None
        if job is None:
            # Not taken: another process's look for due jobs held the row for
            # an instant (a row it locks, then finds changed, stays locked
            # until it rolls back). queue_job's runner puts such a job back
            # to pending after 10 s (requeue_dead_jobs); here at once, or it
            # would be left enqueued, never run.
            cr.execute(
                SQL(
                    "UPDATE queue_job SET state = 'pending' "
                    "WHERE uuid = %s AND state = 'enqueued'",
                    row[0],
                )
            )
            cr.commit()
            continue
        if on_run:
            on_run(job.recordset)
        RunJobController._runjob(env, job)
        cr.commit()
        env.invalidate_all()
        ran += 1
    return ran


def due_queue_jobs(cr, method_name=EYRIE_JOB_METHOD):
    cr.execute(SQL("SELECT count(*) FROM queue_job WHERE %s", due(method_name)))
    return cr.fetchone()[0]
