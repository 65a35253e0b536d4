"""Eyrie's queue jobs run in a benchmark process as queue_job runs them on a
server: its job runner marks a due job enqueued, its /queue_job/runjob route
acquires and performs it, each step committed. For benchmarks that measure
the job code itself, without HTTP in between (queue_servers.py measures two
real Odoo servers)."""

from psycopg2.errors import SerializationFailure

from odoo.tools import SQL

DUE = SQL(
    "state = 'pending' AND method_name = '_run_queued' "
    "AND (eta IS NULL OR eta <= now() AT TIME ZONE 'UTC')"
)


def run_due_queue_jobs(env, on_run=None, one_pass=False):
    """Run the due Eyrie job queue jobs until none is due; ``on_run(job)``
    is called with each eyrie.job before it runs. Returns how many ran.

    With ``one_pass``, a job that yields during the pass is left for the
    next one, even once its delay has passed: with many waiting jobs a pass
    can outlast their delay, and the caller would never get to play the
    controllers they wait for."""
    # Imported once Odoo's addons path is configured (base_sparse_field).
    from odoo.addons.queue_job.controllers.main import RunJobController

    cr = env.cr
    ran = 0
    due = DUE
    if one_pass:
        cr.execute("SELECT now() AT TIME ZONE 'UTC'")
        started = cr.fetchone()[0]
        due = SQL("%s AND (eta IS NULL OR eta <= %s)", DUE, started)
    while True:
        try:
            cr.execute(
                SQL(
                    "SELECT uuid FROM queue_job WHERE %s ORDER BY priority, id "
                    "LIMIT 1 FOR UPDATE SKIP LOCKED",
                    due,
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
            continue
        if job is None:
            continue
        if on_run:
            on_run(job.recordset)
        RunJobController._runjob(env, job)
        cr.commit()
        env.invalidate_all()
        ran += 1


def due_queue_jobs(cr):
    cr.execute(SQL("SELECT count(*) FROM queue_job WHERE %s", DUE))
    return cr.fetchone()[0]
