import contextlib
import functools
import json
import logging
import math
import os
import socket
import threading
import time
from datetime import timedelta
from typing import NamedTuple

import psycopg2

from odoo import fields, models
from odoo.exceptions import UserError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.sql_db import TestCursor
from odoo.tools import SQL

from odoo.addons.queue_job.exception import RetryableJobError

from ..tools.confinement import ConfinementError
from ..tools.executor import (
    ClusterConnectionError,
    StepError,
    StepPending,
    TransientStepError,
    validate_object,
)
from ..tools.kubernetes_executor import safe_error_text
from ..tools.scrub import Scrubber, secret_strings
from ..tools.skip_reason import skip_reason
from ..tools.template import TemplateRenderError
from ..tools.transaction import in_test
from .eyrie_job import FINAL_STATES

_logger = logging.getLogger(__name__)

# Transient failures (5xx, 429, unreachable cluster): 5 attempts in all,
# about two minutes, without a worker ever sleeping.
MAX_ATTEMPTS = 5
RETRY_DELAYS = (5, 10, 20, 40)
# A run that stopped mid-way (its worker died, or a concurrency error rolled
# it back) resumes from its last step; this many times, then the job fails.
MAX_RESTARTS = 3
# What a run commits on its cursor (a step done, waiting, ended; taken when
# it did not start with its queue job) need not wait for the disk: the queue
# job's own end, which queue_job commits durably on its cursor right after
# the run returns or yields, makes it
# durable too (the write-ahead log is flushed in order). Until then only a
# crash of the database server itself may lose it, and that requeues the
# queue job as any queue job in progress; a worker that dies loses nothing.
# Set for the session of the run's cursor, queue_job's for this run alone:
# Odoo resets a connection before it lends it to another cursor.
NOT_DURABLE = SQL("SET synchronous_commit TO OFF;")
# The same for the transaction in which queue_job starts the queue job of a
# job, taken in it (``_take_when_started``), and that transaction only: the
# cursor is queue_job's. Losing that start (a crash of the database server
# before the write-ahead log reached the disk) leaves the queue job enqueued
# and the job pending, as before it started; queue_job's runner requeues
# such a queue job, and the job starts again from its last step committed.
NOT_DURABLE_START = SQL("SET LOCAL synchronous_commit TO OFF;")
# A run commits its progress after a step at most this often (seconds): a
# crash resumes after the last step committed, and going over a step again
# applies the same objects; a book of quick steps commits when it ends.
HEARTBEAT_SECONDS = 1.0
# The savepoint that the end of a run in queue_job's transaction sets with
# its first statement: what the end did is undone to it when it fails, and
# the end is recorded on a cursor of its own instead.
END_SAVEPOINT = SQL("SAVEPOINT eyrie_job_end;")
# The fields of a job that others are computed from.
COMPUTED_FROM = frozenset({"state", "not_before", "started_at", "ended_at"})
# The job taken when queue_job started its queue job, in this thread:
# (job id, what the run needs of it), until the run picks it up. queue_job
# starts a queue job and then runs it in the same thread.
_started = threading.local()


@functools.lru_cache(maxsize=128)
def _scrubber(secrets):
    """The scrubber of ``secrets`` (a tuple), built once per process for the
    deployments whose jobs run here: its patterns cost more to build than
    to apply."""
    return Scrubber(secrets)


class JobFailure(Exception):
    """A job failed; the message says which step and why."""


class GoOnOwnCursor(Exception):
    """A run in queue_job's transaction must commit its progress: it goes
    on on a cursor of its own."""


class JobYield(Exception):
    """The job gives its worker back and resumes at ``not_before``."""

    def __init__(self, not_before):
        super().__init__(not_before)
        self.not_before = not_before


class RunLog(list):
    """The lines of a job's log, and what masks the deployment's secrets in
    every text the run stores (its log and its error)."""

    def __init__(self, lines=(), scrub=None):
        super().__init__(lines)
        self._secrets = ()
        self._scrub = scrub

    def mask(self, secrets):
        """Mask the strings ``secrets`` from now on. The scrubber is built
        when a text is first stored: a run masks its secrets, then the
        objects it rendered from them, and mostly stores nothing between."""
        self._secrets = secrets
        self._scrub = None

    @property
    def scrub(self):
        if self._scrub is None:
            self._scrub = _scrubber(tuple(self._secrets))
        return self._scrub

    def text(self):
        return self.scrub("\n".join(self))


class JobRun:
    """One run of a job as plain data, read once when the run takes the job:
    each of its commits clears Odoo's cache, which would read the job again,
    its log and values with it."""

    def __init__(self, row, log):
        self.deployment_id = row["deployment_id"]
        self.book_id = row["book_id"]
        self.book_name = row["book_name"]
        self.cluster_id = row["cluster_id"]
        self.action = row["action"]
        self.values = row["values"]
        self.step_index = row["step_index"] or 0
        self.attempt = row["attempt"] or 0
        self.wait_deadline = row["wait_deadline"]
        self.log = log
        # When its progress was last committed (time.monotonic()).
        self.committed_at = time.monotonic()
        # Run in the transaction of its queue job (``_run_in_queue_job``),
        # which queue_job commits when the run returns: it commits nothing
        # itself there.
        self.in_queue_job = False

    def progress(self):
        """The job's fields that say how far the run got."""
        return {
            "step_index": self.step_index,
            "attempt": self.attempt,
            "wait_deadline": self.wait_deadline or False,
        }


class RenderedStep(NamedTuple):
    """A step of the book rendered for the run, as plain data."""

    label: str
    kind: str
    template: str
    documents: list


class EyrieJobRunner(models.Model):
    """Runs a job's book on OCA queue_job: the first run and every resume
    after a ``wait`` step or a transient error is one queue job
    (``_run_queued``, see ``eyrie_job_queue.py``) in the channel of the
    job's cluster, whose capacity caps the parallel jobs that cluster
    receives, across every Odoo server. queue_job takes each queue job
    exactly once and requeues one whose worker died; the job resumes from
    its last finished step."""

    _inherit = "eyrie.job"

    worker = fields.Char(readonly=True, help="Host and process that ran the job.")
    step_index = fields.Integer(
        string="Steps Done",
        readonly=True,
        help="Steps of the book already done; a resumed job goes on from there.",
    )
    not_before = fields.Datetime(
        readonly=True,
        index="btree_not_null",
        help="A waiting or retrying job is not resumed before this time.",
    )
    attempt = fields.Integer(
        readonly=True, help="Failed attempts of the current step (transient errors)."
    )
    wait_deadline = fields.Datetime(
        readonly=True, help="When the wait of the current step times out."
    )
    restarts = fields.Integer(
        readonly=True,
        help="Runs that stopped mid-way (a worker that died) and were resumed.",
    )

    # ------------------------------------------------------------------
    # The queue job
    # ------------------------------------------------------------------

    def _run_queued(self):
        """Run the book, or resume it where it stopped. The queue job's
        function, run in queue_job's transaction (no Allow Commit).

        A job taken when queue_job started its queue job
        (``_take_when_started``, the way nearly every run starts) runs there
        and ends there: queue_job's commit of its queue job's end commits
        the job's end with it, in one transaction. A run that must commit
        before it ends (its progress after a step once a second, a wait or a
        retry that gives the worker back, a failure) does so on a cursor of
        its own, and goes on there; so does a job that was not taken when
        its queue job started (resumed after its worker died), taken here
        and committed. A wait or a retry gives the worker back: the same
        queue job runs again at its time (queue_job's ``RetryableJobError``)."""
        self.ensure_one()
        run = self._started_run()
        if run is not None:
            run.in_queue_job = True
            if self._run_book(run):
                return
            run.in_queue_job = False
        with self._own_cursor() as job:
            if run is None:
                run = job._take()
                if run is None:
                    return
            else:
                # Its progress, which it had to commit.
                job._save_progress(run)
            job._run_book(run)

    @contextlib.contextmanager
    def _own_cursor(self):
        """The job on a cursor of its own (in tests, a test cursor on the
        test's transaction), committed when the block ends without error."""
        with self.env.registry.cursor() as cr:
            yield self.with_env(self.env(cr=cr))

    def _run_book(self, run):
        """Run the steps and end the job. False when the run, in queue_job's
        transaction, must go on on a cursor of its own."""
        try:
            self._run_steps(run)
        except GoOnOwnCursor:
            return False
        except JobYield as pause:
            self._yield(run, pause.not_before)
        except JobFailure as failure:
            self._fail(run, str(failure))
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            # queue_job runs the queue job again shortly; the job resumes
            # from its last committed step.
            raise
        except Exception as error:
            _logger.exception("Eyrie job %s failed unexpectedly", self.id)
            self._fail(run, self.env._("Unexpected error: %s", safe_error_text(error)))
        else:
            self._end(run)
        return True

    def _take_when_started(self):
        """Take the job in the transaction in which queue_job starts its
        queue job (``queue.job``'s ``write``), committed with it; the run
        that follows in this thread picks it up (``_started_run``). A job
        that is not pending and due is left to the run (``_take``)."""
        _started.run = None
        for job in self:
            row = job._take_ready(fields.Datetime.now(), not_durable=NOT_DURABLE_START)
            if row:
                _started.run = (job.id, row)

    def _started_run(self):
        started, _started.run = getattr(_started, "run", None), None
        if not started or started[0] != self.id:
            return None
        row = started[1]
        return JobRun(row, RunLog(row["log"].splitlines() if row["log"] else []))

    def _take(self):
        """Mark the job running and commit. Returns the run (what it needs of
        the job, read with the lock), or None when there is nothing to run
        (cancelled meanwhile, not due yet, or given up)."""
        self.flush_recordset()
        now = fields.Datetime.now()
        row = self._take_ready(now)
        if row is None:
            # Not a pending job ready to run: why, read with the lock.
            return self._take_other(now)
        # Stored scrubbed: what the run adds to it is masked as it is stored.
        run = JobRun(row, RunLog(row["log"].splitlines() if row["log"] else []))
        # Users see it run, and a crash from here on resumes it.
        self._commit()
        return run

    def _worker_name(self):
        return f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"

    def _take_ready(self, now, not_durable=NOT_DURABLE):
        """Take the job in one statement when it is pending, due and after
        a job done (the way nearly every run starts): its row locked,
        marked running, and what the run needs of it returned. None when it
        is not such a job. ``not_durable``: how its commit need not wait for
        the disk (``NOT_DURABLE``, ``NOT_DURABLE_START``)."""
        # The row is locked by the update itself; a job another transaction
        # changed since this one's snapshot fails it (a serialization
        # error: queue_job runs the queue job again).
        self.env.cr.execute(
            SQL(
                """
                %(not_durable)s
                UPDATE eyrie_job job
                   SET state = 'running', worker = %(worker)s, not_before = NULL,
                       started_at = COALESCE(job.started_at, %(now)s),
                       write_uid = %(uid)s,
                       write_date = (now() AT TIME ZONE 'UTC')
                 WHERE job.id = %(id)s
                   AND job.state = 'pending'
                   AND (job.not_before IS NULL OR job.not_before <= %(now)s)
                   AND (job.previous_job_id IS NULL OR EXISTS (
                        SELECT 1 FROM eyrie_job previous
                         WHERE previous.id = job.previous_job_id
                           AND previous.state = 'done'))
             RETURNING job.step_index, job.attempt, job.wait_deadline,
                       job.deployment_id, job.book_id, job.cluster_id, job.action,
                       job.values, job.log,
                       (SELECT name FROM eyrie_deployment_book
                         WHERE id = job.book_id) AS book_name
                """,
                not_durable=not_durable,
                id=self.id,
                now=now,
                worker=self._worker_name(),
                uid=self.env.uid,
            )
        )
        row = self.env.cr.dictfetchone()
        if row:
            self.invalidate_recordset(
                [
                    "state",
                    "worker",
                    "not_before",
                    "started_at",
                    "write_uid",
                    "write_date",
                ]
            )
        return row

    def _take_other(self, now):
        """Take a job that ``_take_ready`` did not: one that stopped mid-way
        (its worker died) resumes, one not due yet is postponed, anything
        else is left alone (None)."""
        self.env.cr.execute(
            SQL(
                """
                %s
                SELECT job.state, job.not_before, job.started_at, job.worker,
                       job.restarts, job.step_index, job.attempt,
                       job.wait_deadline, job.deployment_id, job.book_id,
                       book.name AS book_name, job.cluster_id, job.action,
                       job.values, job.log, previous.state AS previous_state
                  FROM eyrie_job job
                  JOIN eyrie_deployment_book book ON book.id = job.book_id
                  LEFT JOIN eyrie_job previous ON previous.id = job.previous_job_id
                 WHERE job.id = %s
                   FOR NO KEY UPDATE OF job NOWAIT
                """,
                NOT_DURABLE,
                self.id,
            )
        )
        row = self.env.cr.dictfetchone()
        if not row or row["state"] in FINAL_STATES:
            return None
        if row["previous_state"] not in (None, "done"):
            # Its outcome queues this job again (or cancels it).
            return None
        state, not_before = row["state"], row["not_before"]
        if state == "pending" and not_before and not_before > now:
            # Never early: a wait or retry resumes at its time.
            raise _postponed(not_before, now)
        # Stored scrubbed: what the run adds to it is masked as it is stored.
        run = JobRun(row, RunLog(row["log"].splitlines() if row["log"] else []))
        vals = {"state": "running", "worker": self._worker_name(), "not_before": False}
        if state == "running":
            # NULL read as Odoo reads it.
            worker = row["worker"] or False
            vals["restarts"] = (row["restarts"] or 0) + 1
            if vals["restarts"] > MAX_RESTARTS:
                self._write_own(vals)
                self._finish(
                    "failed",
                    run.log,
                    self.env._(
                        "The job stopped mid-way %(count)s times (its worker died or "
                        "was restarted), last on %(worker)s, after step "
                        "%(step)s. Run the action again.",
                        count=vals["restarts"],
                        worker=worker,
                        step=run.step_index,
                    ),
                )
                return None
            run.log.append(
                self.env._(
                    "Resumed after step %(step)s: the run on %(worker)s stopped "
                    "mid-way.",
                    step=run.step_index,
                    worker=worker,
                )
            )
            vals["log"] = run.log.text()
        if not row["started_at"]:
            vals["started_at"] = now
        self._write_own(vals)
        # Users see it run, and a crash from here on resumes it.
        self._commit()
        return run

    def _prime_cache(self, run):
        """Put in Odoo's cache what the run read of the job and never
        changes, so that its end reads nothing more of it (each commit
        empties Odoo's cache)."""
        for name in ("deployment_id", "book_id", "cluster_id", "action", "values"):
            field = self._fields[name]
            value = getattr(run, name)
            self.env.cache.update(self, field, [field.convert_to_cache(value, self)])

    def _write_own(self, vals, only_running=False, durable=True, savepoint=False):
        """Write the run's bookkeeping ``vals`` on the job's row, which the
        run holds: one statement, where the ORM would first ask the database
        for the transaction's time (``write_date``). With ``only_running``,
        only while the job is running; returns whether it was written.
        Nothing stored depends on these fields; the values written are the
        cache's. Not ``durable``: written by a run, whose commits need not
        wait for the disk (``NOT_DURABLE``). With ``savepoint``, the statement
        sets ``END_SAVEPOINT`` first, in the same round trip."""
        columns = [
            SQL(
                "%s = %s",
                SQL.identifier(name),
                self._fields[name].convert_to_column(value, self),
            )
            for name, value in vals.items()
        ]
        cr = self.env.cr
        cr.execute(
            SQL(
                "%s%sUPDATE eyrie_job SET %s, write_uid = %s, "
                "write_date = (now() AT TIME ZONE 'UTC') WHERE id = %s%s "
                "RETURNING write_date",
                END_SAVEPOINT if savepoint else SQL(),
                SQL() if durable else NOT_DURABLE,
                SQL(", ").join(columns),
                self.env.uid,
                self.id,
                SQL(" AND state = 'running'") if only_running else SQL(),
            )
        )
        row = cr.fetchone()
        if not row:
            return False
        if cr._now is None and not isinstance(cr, TestCursor):
            # The transaction's time, which the ORM would otherwise ask the
            # database for once more when it next writes (``cr.now()``).
            cr._now = row[0]
        self.invalidate_recordset(["write_uid", "write_date"])
        for name, value in vals.items():
            field = self._fields[name]
            self.env.cache.update(self, field, [field.convert_to_cache(value, self)])
        # What is computed from them on reading (a duration, a deployment's
        # job in progress) is computed again; the run's own bookkeeping
        # (log, progress, worker) has nothing computed from it.
        self.modified([name for name in vals if name in COMPUTED_FROM])
        return True

    def _run_steps(self, run):
        log = run.log
        if not run.deployment_id:
            raise JobFailure(self.env._("The deployment of this job no longer exists."))
        deployment = self.env["eyrie.deployment"].browse(run.deployment_id)
        deployment._fetch_for_run()
        cluster = self.env["eyrie.cluster"].browse(run.cluster_id)
        # Read from memory, not from the database, at every run.
        cluster._load_cached_settings()
        deployment.scope_id._load_cached_settings()
        context = deployment._template_context(
            json.loads(run.values) if run.values else None
        )
        log.mask(secret_strings(context["secrets"]))
        steps = self.env["eyrie.deployment.book.step"]._book_steps(run.book_id)
        if not log:
            log.append(
                self.env._(
                    "Book %(book)s on cluster %(cluster)s: %(count)s step(s)",
                    book=run.book_name,
                    cluster=cluster.name,
                    count=len(steps),
                )
            )
        rendered = self._render_book(deployment, context, steps, cluster, log)
        try:
            namespaces = deployment._namespaces_read(run.action)
        except UserError as error:
            raise JobFailure(error.args[0]) from error
        objects = [obj for step in rendered for obj in step.documents]
        log.mask(secret_strings(context["secrets"], objects))
        connection = self.env._("Cluster connection")
        try:
            executor = cluster._get_executor(
                deployment.namespace, deployment._cluster_labels()
            )
            executor.check_objects(objects)
        except (ClusterConnectionError, TransientStepError) as error:
            self._retry_or_fail(connection, error, run)
        except StepError as error:
            raise JobFailure(f"{connection} failed: {error}") from error
        self._check_namespace_owners(executor, namespaces, run)
        for position, step in enumerate(rendered, start=1):
            if position <= run.step_index:
                continue
            if step.documents:
                self._run_step(executor, step, run)
            else:
                # Done as well: the progress counts it, a resume goes past it.
                log.append(
                    self.env._(
                        "%(step)s: skipped (%(reason)s)",
                        step=step.label,
                        reason=self._skip_reason(step.template),
                    )
                )
            run.step_index = position
            run.attempt = 0
            run.wait_deadline = False
            if step.documents and position < len(rendered):
                # A skipped step costs nothing to go over again; the last
                # one is recorded with the job's end, in the same
                # transaction.
                self._heartbeat(run)

    def _run_step(self, executor, step, run):
        try:
            lines = executor.run_step(step.kind, step.documents)
        except StepPending as pending:
            self._wait_or_fail(step.label, pending, run)
        except (ClusterConnectionError, TransientStepError) as error:
            self._retry_or_fail(step.label, error, run)
        except StepError as error:
            run.log.append(f"{step.label}: FAILED")
            raise JobFailure(f"{step.label} failed: {error}") from error
        run.log.append(f"{step.label}:")
        run.log.extend(f"  {line}" for line in lines)

    def _skip_reason(self, template):
        """Why a step whose ``template`` rendered no object did nothing: what
        the template's ``{# skipped: ... #}`` comment says, else the
        conditions that held all it outputs, else only that."""
        given, conditions = skip_reason(template)
        if given:
            return given
        if len(conditions) == 1:
            return self.env._("its condition is false: %s", conditions[0])
        if conditions:
            return self.env._("its conditions are false: %s", "; ".join(conditions))
        return self.env._("its template rendered no object")

    def _check_namespace_owners(self, executor, namespaces, run):
        """The namespaces the book reads besides its own are the ones Eyrie
        created for the deployments it reads: else nothing runs."""
        label = self.env._("Ownership of the namespaces read")
        try:
            executor.check_namespace_owners(namespaces)
        except (ClusterConnectionError, TransientStepError) as error:
            self._retry_or_fail(label, error, run)
        except StepError as error:
            run.log.append(self.env._("Refused: %s", error))
            raise JobFailure(f"{label}: {error}") from error

    def _render_book(self, deployment, context, steps, cluster, log):
        """Every step of the book rendered (``RenderedStep``), checked against
        the deployment's boundary as a whole before anything runs: a book
        that would leave it fails without a single call to the cluster."""
        rendered = []
        for position, step in enumerate(steps, start=1):
            label = self.env._(
                "Step %(position)s '%(name)s' (%(kind)s)",
                position=position,
                name=step.name,
                kind=step.kind,
            )
            try:
                documents = deployment._render_step(step, context)
                for index, obj in enumerate(documents, start=1):
                    validate_object(step.kind, obj, index)
            except (TemplateRenderError, StepError) as error:
                log.append(f"{label}: FAILED")
                raise JobFailure(f"{label} failed: {error}") from error
            rendered.append(RenderedStep(label, step.kind, step.template, documents))
        try:
            deployment._check_confined(
                [(step.label, step.kind, step.documents) for step in rendered],
                cluster,
            )
        except ConfinementError as error:
            log.append(self.env._("Refused: %s", error))
            raise JobFailure(str(error)) from error
        return rendered

    def _wait_or_fail(self, label, pending, run):
        """Yield until the next check, or fail once the wait timed out."""
        now = fields.Datetime.now()
        if not run.wait_deadline:
            run.log.append(
                self.env._(
                    "%(step)s: waiting up to %(timeout)s s: %(status)s",
                    step=label,
                    timeout=pending.timeout,
                    status=pending.status,
                )
            )
            run.wait_deadline = now + timedelta(seconds=pending.timeout)
        elif now >= run.wait_deadline:
            run.log.append(f"{label}: FAILED")
            message = self.env._(
                "%(step)s failed: timed out after %(timeout)s s: %(status)s",
                step=label,
                timeout=pending.timeout,
                status=pending.status,
            )
            if pending.condition == "rollout":
                hint = self.env._(
                    "What the pods printed and the namespace's events: the Logs "
                    "button of the deployment."
                )
                run.log.append(hint)
                message = f"{message}. {hint}"
            raise JobFailure(message)
        raise JobYield(now + timedelta(seconds=pending.interval))

    def _retry_or_fail(self, label, error, run):
        """Yield until the next attempt, or fail after the last one."""
        attempt = run.attempt + 1
        if attempt >= MAX_ATTEMPTS:
            run.log.append(f"{label}: FAILED")
            raise JobFailure(
                self.env._(
                    "%(step)s failed after %(attempts)s attempts: %(error)s",
                    step=label,
                    attempts=attempt,
                    error=error,
                )
            )
        delay = RETRY_DELAYS[attempt - 1]
        run.log.append(
            self.env._(
                "%(step)s: attempt %(attempt)s of %(max)s failed: %(error)s; "
                "retrying in %(delay)s s",
                step=label,
                attempt=attempt,
                max=MAX_ATTEMPTS,
                error=error,
                delay=delay,
            )
        )
        run.attempt = attempt
        raise JobYield(fields.Datetime.now() + timedelta(seconds=delay))

    def _yield(self, run, not_before):
        if run.in_queue_job:
            # queue_job rolls its transaction back when the queue job is
            # postponed: the job's state is committed on a cursor of its own.
            with self._own_cursor() as job:
                job._write_yield(run, not_before)
        else:
            self._write_yield(run, not_before)
        raise _postponed(not_before, fields.Datetime.now())

    def _write_yield(self, run, not_before):
        self._write_own(
            durable=False,
            vals={
                "state": "pending",
                "not_before": not_before,
                "log": run.log.text(),
                **run.progress(),
            },
        )
        # Safe: the job is consistent as pending; queue_job runs its queue
        # job again at ``not_before``.
        self._commit()

    def _heartbeat(self, run):
        if time.monotonic() - run.committed_at < HEARTBEAT_SECONDS:
            return
        if run.in_queue_job:
            raise GoOnOwnCursor()
        self._save_progress(run)

    def _save_progress(self, run):
        self._write_own({"log": run.log.text(), **run.progress()}, durable=False)
        # Progress is visible, and a crash resumes after this step.
        self._commit()
        run.committed_at = time.monotonic()

    def _end(self, run, state="done", error_message=False):
        """End the job, done in the transaction of its last step: what the
        run read to render the book is still in Odoo's cache for the outcome.
        Its deployment may have changed meanwhile (a user's edit, a timer):
        then the end is recorded again, once, on a fresh snapshot, rather
        than the whole run resumed."""
        if run.in_queue_job and self._end_in_queue_job(run, state, error_message):
            return
        try:
            self._prime_cache(run)
            self._finish(
                state, run.log, error_message, vals=run.progress(), durable=False
            )
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            _logger.info("Eyrie job %s: recording its end again", self.id)
            self.env.cr.rollback()
            self.env.invalidate_all()
            self._prime_cache(run)
            self._finish(
                state, run.log, error_message, vals=run.progress(), durable=False
            )

    def _end_in_queue_job(self, run, state, error_message):
        """End the job and apply its outcome in queue_job's transaction,
        which commits them with the queue job's end. True when done; False
        when anything went wrong (a change committed meanwhile, an outcome
        that cannot be applied): what it did is undone, and the end is
        recorded on a cursor of its own, on a fresh snapshot, by ``_end``."""
        cr = self.env.cr
        self._prime_cache(run)
        # Nothing else of the run's is written before the savepoint.
        self.env.flush_all()
        try:
            if self._write_end(
                state,
                run.log,
                error_message,
                True,
                run.progress(),
                durable=True,
                savepoint=True,
            ):
                self._apply_outcome()
                # Its precommit hooks too (the timers that follow, the
                # chatter's tracking), under the savepoint.
                cr.flush()
            return True
        except Exception as error:
            _logger.info(
                "Eyrie job %s: recording its end on a cursor of its own",
                self.id,
                exc_info=True,
            )
            cr.clear()
            try:
                # Undone to the savepoint: queue_job's transaction, and its
                # lock of the queue job, are kept.
                cr.execute(SQL("ROLLBACK TO SAVEPOINT eyrie_job_end"))
            except psycopg2.Error:
                # The savepoint was never set: nothing to undo but the
                # error's cause, which queue_job handles.
                raise error from None
            self.env.invalidate_all(flush=False)
        run.in_queue_job = False
        with self._own_cursor() as job:
            job._end(run, state, error_message)
        return True

    def _fail(self, run, error_message):
        """Fail the job with the first cause. What the run did since its
        last commit is undone first: after a database error the transaction
        is aborted, and nothing else could be recorded on it. In queue_job's
        transaction, which holds the queue job's lock until it ends, the
        failure is recorded on a cursor of its own."""
        if run.in_queue_job:
            run.in_queue_job = False
            if self._transaction_aborted():
                # A database error aborted it: neither the failure nor
                # queue_job's end of the queue job could be recorded in it.
                self.env.cr.rollback()
            with self._own_cursor() as job:
                job._end(run, "failed", error_message)
            return
        self.env.cr.rollback()
        self.env.invalidate_all()
        self._end(run, "failed", error_message)

    def _finish(
        self,
        state,
        log,
        error_message,
        check_running=True,
        commit=True,
        vals=None,
        durable=True,
    ):
        """End the job in ``state`` (with ``vals``, in the same write) and
        apply its outcome to its deployment; committed unless ``commit`` is
        False (a caller inside a savepoint commits itself)."""
        end = (state, log, error_message, check_running, vals, durable)
        if not self._write_end(*end):
            return
        if not (commit and self._may_commit()):
            # Inside the caller's transaction: a savepoint keeps the job's
            # end when its outcome cannot be applied.
            try:
                with self.env.cr.savepoint():
                    self._apply_outcome()
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                # Not the outcome's fault: the caller tries again.
                raise
            except Exception as error:
                _logger.exception("Eyrie job %s: recording its outcome failed", self.id)
                self._outcome_failed(error)
            return
        try:
            self._apply_outcome()
            self._commit()
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except Exception as error:
            _logger.exception("Eyrie job %s: recording its outcome failed", self.id)
            # On a cursor of its own: all of it undone, then the job's end
            # recorded again, failed with the reason (no savepoint needed on
            # the way that succeeds).
            self.env.cr.rollback()
            self.env.invalidate_all()
            if self._write_end(*end):
                self._outcome_failed(error)
            self._commit()

    def _write_end(
        self, state, log, error_message, check_running, vals, durable, savepoint=False
    ):
        """Write the job's end; False when it ended meanwhile (a run given up
        on) and ``check_running``. One statement, on the row only while it
        is running: in Odoo's repeatable-read transactions, a change
        committed since this one's snapshot makes it fail (a serialization
        error, which the caller retries on a fresh snapshot) rather than
        overwrite it."""
        self.flush_recordset()
        scrub = getattr(log, "scrub", None) or Scrubber()
        ended = {
            **(vals or {}),
            "state": state,
            "ended_at": fields.Datetime.now(),
            "log": scrub("\n".join(log)),
            "error_message": scrub(error_message) if error_message else False,
            "not_before": False,
        }
        if self._write_own(
            ended, only_running=check_running, durable=durable, savepoint=savepoint
        ):
            return True
        self.invalidate_recordset(["state"])
        _logger.warning(
            "Eyrie job %s ended while %s; result ignored", self.id, self.state
        )
        self.invalidate_recordset()
        return False

    def _transaction_aborted(self):
        """Whether a database error aborted the cursor's transaction."""
        try:
            self.env.cr.execute(SQL("SELECT 1"), log_exceptions=False)
        except psycopg2.errors.InFailedSqlTransaction:
            return True
        return False

    def _outcome_failed(self, error):
        self.write(
            {
                "state": "failed",
                "error_message": self.env._(
                    "The book ran, but its outcome could not be recorded: %s",
                    safe_error_text(error),
                ),
            }
        )
        self._apply_outcome()

    def _apply_outcome(self):
        deployment = self.deployment_id
        if self.state == "failed":
            self._cancel_following_jobs()
            if deployment:
                deployment._on_job_failed(self)
        elif self.state == "done" and deployment:
            deployment._on_job_done(self)

    def _may_commit(self):
        # The crons that fail lost jobs run on the test's own cursor in
        # tests, which must not commit.
        return isinstance(self.env.cr, TestCursor) or not in_test()

    def _commit(self):
        # Safe: called on a cursor of the run's own (``_own_cursor``; in
        # tests, a test cursor, whose commit ends a savepoint), never on
        # queue_job's, and every call ends a consistent unit (a job taken, a
        # step logged, a job finished).
        if self._may_commit():
            self.env.cr.commit()  # pylint: disable=invalid-commit


def _postponed(not_before, now):
    """The queue job runs again at ``not_before``: its ``RetryableJobError``,
    which counts no retry."""
    seconds = max(1, math.ceil((not_before - now).total_seconds()))
    return RetryableJobError(
        f"Eyrie job resumes at {not_before}", seconds=seconds, ignore_retry=True
    )
