"""Eyrie's queue jobs run by several threads at once, as the threads of an
Odoo server run them: each thread takes a due queue job as queue_job's
runner does (pending to enqueued, committed), then performs it as its
``/queue_job/runjob`` route does (``RunJobController``), on a cursor of its
own with its own commits.

Used by the tests in their own process, and run as a script to be a second
Odoo process on the same database::

    python3 parallel_jobs.py -c ODOO_CONFIG -d DATABASE --deployments 2,4 --threads 8

The script loads the registry, prints ``ready``, waits for a line on its
standard input, runs the queue jobs of the Eyrie jobs of those deployments
(the chained ones included) until none is left, and prints a JSON object:
``{"ran": <queue jobs run>, "peak": <most run at once>}``.
"""

import argparse
import json
import sys
import threading
import time

# A queue job of these deployments' Eyrie jobs, due now; locked, so that
# two threads (or processes) never take the same one.
_TAKE = """
    SELECT queue.uuid FROM queue_job queue
      JOIN eyrie_job job ON job.queue_job_uuid = queue.uuid
     WHERE queue.state = 'pending' AND job.deployment_id IN %s
       AND (queue.eta IS NULL OR queue.eta <= now() AT TIME ZONE 'UTC')
     ORDER BY queue.id LIMIT 1
       FOR UPDATE OF queue SKIP LOCKED
"""
_UNFINISHED = """
    SELECT count(*) FROM eyrie_job
     WHERE deployment_id IN %s AND state IN ('pending', 'running')
"""


class _Gauge:
    """How many jobs run at once, and the most there ever were."""

    def __init__(self):
        self._lock = threading.Lock()
        self.running = self.peak = self.ran = 0

    def __enter__(self):
        with self._lock:
            self.running += 1
            self.ran += 1
            self.peak = max(self.peak, self.running)

    def __exit__(self, *exc_info):
        with self._lock:
            self.running -= 1


def run_in_threads(registry, deployment_ids, threads, timeout=120):
    """Run the queue jobs of the deployments' Eyrie jobs in ``threads``
    threads at once until none is pending or running. Returns the
    ``_Gauge``: queue jobs run (``ran``), most at once (``peak``)."""
    gauge = _Gauge()
    barrier = threading.Barrier(threads)
    deadline = time.monotonic() + timeout
    errors = []
    workers = [
        threading.Thread(
            target=_worker,
            args=(registry, tuple(deployment_ids), gauge, barrier, deadline, errors),
            name=f"eyrie-parallel-{index}",
        )
        for index in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout + 30)
    if errors or any(worker.is_alive() for worker in workers):
        raise RuntimeError(f"parallel job threads failed: {errors or 'still running'}")
    return gauge


def _worker(registry, deployment_ids, gauge, barrier, deadline, errors):
    try:
        barrier.wait()
        with registry.cursor() as cr:
            _run_until_done(cr, deployment_ids, gauge, deadline)
    except Exception as error:  # noqa: BLE001 - reported by run_in_threads
        errors.append(repr(error))


def _run_until_done(cr, deployment_ids, gauge, deadline):
    # Imported once Odoo's addons path is configured (in the script too).
    from psycopg2.errors import SerializationFailure

    from odoo import SUPERUSER_ID, api

    from odoo.addons.queue_job.controllers.main import RunJobController

    env = api.Environment(cr, SUPERUSER_ID, {})
    while time.monotonic() < deadline:
        try:
            cr.execute(_TAKE, [deployment_ids], log_exceptions=False)
            row = cr.fetchone()
        except SerializationFailure:
            # Another thread took that row after this snapshot: look again.
            cr.rollback()  # pylint: disable=invalid-commit
            continue
        if not row:
            cr.execute(_UNFINISHED, [deployment_ids])
            if not cr.fetchone()[0]:
                return
            # A chained job is queued when the one before it ends: look
            # again, on a fresh snapshot.
            cr.commit()  # pylint: disable=invalid-commit
            time.sleep(0.05)
            continue
        cr.execute("UPDATE queue_job SET state = 'enqueued' WHERE uuid = %s", row)
        # As queue_job's runner: the job is enqueued before its route runs it.
        cr.commit()  # pylint: disable=invalid-commit
        try:
            job = RunJobController._acquire_job(env, row[0])
        except SerializationFailure:
            cr.rollback()  # pylint: disable=invalid-commit
            continue
        if job is None:
            continue
        with gauge:
            RunJobController._runjob(env, job)
        # As queue_job's route after the job: its outcome is stored.
        cr.commit()  # pylint: disable=invalid-commit
        env.invalidate_all()
    raise TimeoutError("jobs still pending or running")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True)
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--deployments", required=True, help="ids, comma-separated")
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args()

    import odoo
    from odoo.tools import config

    config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn"])
    registry = odoo.modules.registry.Registry(args.database)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.readline()
    ids = [int(part) for part in args.deployments.split(",")]
    gauge = run_in_threads(registry, ids, args.threads)
    sys.stdout.write(json.dumps({"ran": gauge.ran, "peak": gauge.peak}) + "\n")


if __name__ == "__main__":
    main()
