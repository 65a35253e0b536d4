import json
import logging
import os
import socket
import threading
import time
from datetime import timedelta

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.tools import SQL

from ..tools.confinement import ConfinementError
from ..tools.executor import (
    ClusterConnectionError,
    StepError,
    StepPending,
    TransientStepError,
    validate_object,
)
from ..tools.kubernetes_executor import safe_error_text
from ..tools.parameters import int_param
from ..tools.template import TemplateRenderError
from ..tools.transaction import commit_unless_testing

_logger = logging.getLogger(__name__)

DEFAULT_STALE_MINUTES = 15
DEFAULT_RUNNER_SECONDS = 50
# Transient failures (5xx, 429, unreachable cluster): 5 attempts in all,
# about two minutes, without a worker ever sleeping.
MAX_ATTEMPTS = 5
RETRY_DELAYS = (5, 10, 20, 40)


class JobFailure(Exception):
    """A job failed; the message says which step and why."""


class JobYield(Exception):
    """The job gives its worker back and resumes at ``not_before``."""

    def __init__(self, not_before):
        super().__init__(not_before)
        self.not_before = not_before


class EyrieJobRunner(models.Model):
    """The job runner cron (``_cron_run_jobs``). Each job is taken by exactly
    one runner, whatever the number of Odoo workers or servers: a runner
    locks the row with ``FOR UPDATE SKIP LOCKED`` and commits it as running
    before running the book."""

    _inherit = "eyrie.job"

    heartbeat_at = fields.Datetime(
        readonly=True, help="Last sign of life of the worker running the job."
    )

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

    # ------------------------------------------------------------------
    # Taking jobs
    # ------------------------------------------------------------------

    @api.model
    def _cron_run_jobs(self, max_jobs=None):
        """Run pending jobs until none is left or the time budget is spent."""
        self._fail_stale_jobs()
        budget = int_param(self.env, "eyrie.job_runner_seconds", DEFAULT_RUNNER_SECONDS)
        deadline = time.monotonic() + budget
        done = 0
        while (max_jobs is None or done < max_jobs) and time.monotonic() < deadline:
            job = self._acquire_next_job()
            if job is None:
                break
            if job:
                job._execute()
                done += 1
        remaining = self._count_runnable_jobs()
        # A remaining count makes the cron run again at once.
        self.env["ir.cron"]._notify_progress(done=done, remaining=remaining)
        self._schedule_next_resume()
        return done

    def _runnable_where(self):
        return SQL(
            """
            job.state = 'pending'
            AND (job.not_before IS NULL OR job.not_before <= %s)
            AND (job.previous_job_id IS NULL OR EXISTS (
                SELECT 1 FROM eyrie_job previous
                 WHERE previous.id = job.previous_job_id AND previous.state = 'done'))
            """,
            fields.Datetime.now(),
        )

    @api.model
    def _schedule_next_resume(self):
        """Wake the runner when the first waiting job is due again."""
        self.env.cr.execute(
            SQL(
                "SELECT min(not_before) FROM eyrie_job "
                "WHERE state = 'pending' AND not_before > %s",
                fields.Datetime.now(),
            )
        )
        resume_at = self.env.cr.fetchone()[0]
        if resume_at:
            self.env.ref("eyrie_deployment.ir_cron_run_jobs").sudo()._trigger(resume_at)

    @api.model
    def _count_runnable_jobs(self):
        self.env.cr.execute(
            SQL("SELECT count(*) FROM eyrie_job job WHERE %s", self._runnable_where())
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _acquire_next_job(self):
        """Lock one runnable job and mark it running.

        Returns the job, ``None`` when there is none, or an empty recordset
        when another runner won the race for the row (try again)."""
        self.flush_model()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        """
                        SELECT job.id FROM eyrie_job job
                         WHERE %s
                      ORDER BY job.id
                         LIMIT 1
                           FOR UPDATE SKIP LOCKED
                        """,
                        self._runnable_where(),
                    ),
                    # A lost race is expected: not worth an ERROR in the log.
                    log_exceptions=False,
                )
                row = self.env.cr.fetchone()
        except pg_errors.SerializationFailure:
            # Another runner took the row after our snapshot was taken.
            self._commit()
            return self.browse()
        if not row:
            return None
        job = self.browse(row[0])
        now = fields.Datetime.now()
        vals = {
            "state": "running",
            "heartbeat_at": now,
            "worker": f"{socket.gethostname()}:{os.getpid()}:"
            f"{threading.current_thread().name}",
        }
        if not job.started_at:
            vals["started_at"] = now
        job.write(vals)
        # Commit so that no other runner takes the job, and users see it run.
        self._commit()
        return job

    @api.model
    def _fail_stale_jobs(self):
        """Fail jobs left running by a worker that died (crash, restart, kill)."""
        minutes = int_param(self.env, "eyrie.job_stale_minutes", DEFAULT_STALE_MINUTES)
        limit = fields.Datetime.now() - timedelta(minutes=minutes)
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT id FROM eyrie_job
                 WHERE state = 'running' AND heartbeat_at < %s
                   FOR UPDATE SKIP LOCKED
                """,
                limit,
            )
        )
        stale = self.browse([row[0] for row in self.env.cr.fetchall()])
        for job in stale:
            _logger.warning(
                "Eyrie job %s: no heartbeat since %s, failing it",
                job.id,
                job.heartbeat_at,
            )
            job.write(
                {
                    "state": "failed",
                    "ended_at": fields.Datetime.now(),
                    "error_message": self.env._(
                        "The worker running this job (%(worker)s) stopped answering: "
                        "no "
                        "sign of life since %(heartbeat)s UTC. Run the action again.",
                        worker=job.worker,
                        heartbeat=fields.Datetime.to_string(job.heartbeat_at),
                    ),
                }
            )
            job._apply_outcome()
        if stale:
            self._commit()
        return stale

    # ------------------------------------------------------------------
    # Running a book
    # ------------------------------------------------------------------

    def _execute(self):
        self.ensure_one()
        log = self.log.splitlines() if self.log else []
        try:
            self._run_steps(log)
        except JobYield as pause:
            self._yield(log, pause.not_before)
        except JobFailure as failure:
            self._finish("failed", log, str(failure))
        except Exception as error:
            _logger.exception("Eyrie job %s failed unexpectedly", self.id)
            self._finish(
                "failed",
                log,
                self.env._("Unexpected error: %s", safe_error_text(error)),
            )
        else:
            self._finish("done", log, False)

    def _run_steps(self, log):
        deployment = self.deployment_id
        if not deployment:
            raise JobFailure(self.env._("The deployment of this job no longer exists."))
        context = deployment._template_context(
            json.loads(self.values) if self.values else None
        )
        steps = self.book_id.step_ids
        if not log:
            log.append(
                self.env._(
                    "Book %(book)s on cluster %(cluster)s: %(count)s step(s)",
                    book=self.book_id.name,
                    cluster=self.cluster_id.name,
                    count=len(steps),
                )
            )
        rendered = self._render_book(deployment, context, steps, log)
        connection = self.env._("Cluster connection")
        try:
            executor = self.cluster_id._get_executor(
                deployment.namespace, deployment._cluster_labels()
            )
            executor.check_objects(
                [obj for _label, _step, documents in rendered for obj in documents]
            )
        except (ClusterConnectionError, TransientStepError) as error:
            self._retry_or_fail(connection, error, log)
        except StepError as error:
            raise JobFailure(f"{connection} failed: {error}") from error
        for position, (label, step, documents) in enumerate(rendered, start=1):
            if position <= self.step_index:
                continue
            try:
                lines = executor.run_step(step.kind, documents)
            except StepPending as pending:
                self._wait_or_fail(label, pending, log)
            except (ClusterConnectionError, TransientStepError) as error:
                self._retry_or_fail(label, error, log)
            except StepError as error:
                log.append(f"{label}: FAILED")
                raise JobFailure(f"{label} failed: {error}") from error
            log.append(f"{label}:")
            log.extend(f"  {line}" for line in lines)
            self.write({"step_index": position, "attempt": 0, "wait_deadline": False})
            self._heartbeat(log)

    def _render_book(self, deployment, context, steps, log):
        """(label, step, objects) for every step of the book, checked against
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
            rendered.append((label, step, documents))
        try:
            deployment._check_confined(
                [(label, step.kind, documents) for label, step, documents in rendered],
                self.cluster_id,
            )
        except ConfinementError as error:
            log.append(self.env._("Refused: %s", error))
            raise JobFailure(str(error)) from error
        return rendered

    def _wait_or_fail(self, label, pending, log):
        """Yield until the next check, or fail once the wait timed out."""
        now = fields.Datetime.now()
        if not self.wait_deadline:
            log.append(
                self.env._(
                    "%(step)s: waiting up to %(timeout)s s: %(status)s",
                    step=label,
                    timeout=pending.timeout,
                    status=pending.status,
                )
            )
            self.wait_deadline = now + timedelta(seconds=pending.timeout)
        elif now >= self.wait_deadline:
            log.append(f"{label}: FAILED")
            raise JobFailure(
                self.env._(
                    "%(step)s failed: timed out after %(timeout)s s: %(status)s",
                    step=label,
                    timeout=pending.timeout,
                    status=pending.status,
                )
            )
        raise JobYield(now + timedelta(seconds=pending.interval))

    def _retry_or_fail(self, label, error, log):
        """Yield until the next attempt, or fail after the last one."""
        attempt = self.attempt + 1
        if attempt >= MAX_ATTEMPTS:
            log.append(f"{label}: FAILED")
            raise JobFailure(
                self.env._(
                    "%(step)s failed after %(attempts)s attempts: %(error)s",
                    step=label,
                    attempts=attempt,
                    error=error,
                )
            )
        delay = RETRY_DELAYS[attempt - 1]
        log.append(
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
        self.attempt = attempt
        raise JobYield(fields.Datetime.now() + timedelta(seconds=delay))

    def _yield(self, log, not_before):
        self.write(
            {
                "state": "pending",
                "not_before": not_before,
                "heartbeat_at": fields.Datetime.now(),
                "log": "\n".join(log),
            }
        )
        self.env.ref("eyrie_deployment.ir_cron_run_jobs").sudo()._trigger(not_before)
        # Safe: the job is consistent as pending; its worker is free again.
        self._commit()

    def _heartbeat(self, log):
        self.write({"heartbeat_at": fields.Datetime.now(), "log": "\n".join(log)})
        # Progress is visible, and the stale-job check sees the worker alive.
        self._commit()

    def _finish(self, state, log, error_message):
        self.flush_recordset()
        self.env.cr.execute(
            SQL("SELECT state FROM eyrie_job WHERE id = %s FOR UPDATE", self.id)
        )
        if self.env.cr.fetchone()[0] != "running":
            # Marked failed as stale meanwhile; that verdict stands.
            _logger.warning(
                "Eyrie job %s ended after it was given up; result ignored", self.id
            )
            self.invalidate_recordset()
            return
        self.write(
            {
                "state": state,
                "ended_at": fields.Datetime.now(),
                "log": "\n".join(log),
                "error_message": error_message,
            }
        )
        try:
            with self.env.cr.savepoint():
                self._apply_outcome()
        except Exception as error:
            _logger.exception("Eyrie job %s: recording its outcome failed", self.id)
            self.write(
                {
                    "state": "failed",
                    "error_message": self.env._(
                        "The book ran, but its outcome could not be recorded: %s", error
                    ),
                }
            )
            self._apply_outcome()
        self._commit()

    def _apply_outcome(self):
        deployment = self.deployment_id
        if self.state == "failed":
            self._cancel_following_jobs()
            if deployment:
                deployment._on_job_failed(self)
        elif self.state == "done" and deployment:
            deployment._on_job_done(self)

    def _commit(self):
        # Safe: the runner owns its cron cursor and every call ends a
        # consistent unit (a job taken, a step logged, a job finished).
        commit_unless_testing(self.env.cr)
