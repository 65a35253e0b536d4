import json
import logging
import math
import os
import socket
import threading
from datetime import timedelta

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


class JobFailure(Exception):
    """A job failed; the message says which step and why."""


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
        self.scrub = scrub or Scrubber()

    def text(self):
        return self.scrub("\n".join(self))


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
        function (Allow Commit: it runs on a cursor of its own, committed
        at each step so that progress shows and survives a crash). A wait
        or a retry gives the worker back: the same queue job runs again at
        its time (queue_job's ``RetryableJobError``)."""
        self.ensure_one()
        log = RunLog(self.log.splitlines() if self.log else [], self._scrubber())
        if not self._take(log):
            return
        try:
            self._run_steps(log)
        except JobYield as pause:
            self._yield(log, pause.not_before)
        except JobFailure as failure:
            self._fail(log, str(failure))
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            # queue_job runs the queue job again shortly; the job resumes
            # from its last committed step.
            raise
        except Exception as error:
            _logger.exception("Eyrie job %s failed unexpectedly", self.id)
            self._fail(log, self.env._("Unexpected error: %s", safe_error_text(error)))
        else:
            self._finish("done", log, False)

    def _scrubber(self, objects=()):
        """What masks this job's secrets (the books' ``secrets`` of its
        deployment, and the Secrets among ``objects``, rendered) in the
        texts it stores."""
        deployment = self.deployment_id
        if not deployment:
            return Scrubber()
        return Scrubber(secret_strings(deployment._template_secrets(), objects))

    def _take(self, log):
        """Mark the job running and commit; False when there is nothing to
        run (cancelled meanwhile, not due yet, or given up)."""
        self.flush_recordset()
        self.env.cr.execute(
            SQL(
                "SELECT state, not_before FROM eyrie_job WHERE id = %s "
                "FOR NO KEY UPDATE NOWAIT",
                self.id,
            )
        )
        row = self.env.cr.fetchone()
        if not row or row[0] in FINAL_STATES:
            return False
        state, not_before = row
        now = fields.Datetime.now()
        previous = self.previous_job_id
        if previous and previous.state != "done":
            # Its outcome queues this job again (or cancels it).
            return False
        if state == "pending" and not_before and not_before > now:
            # Never early: a wait or retry resumes at its time.
            raise _postponed(not_before, now)
        vals = {
            "state": "running",
            "worker": f"{socket.gethostname()}:{os.getpid()}:"
            f"{threading.current_thread().name}",
            "not_before": False,
        }
        if state == "running":
            vals["restarts"] = self.restarts + 1
            if vals["restarts"] > MAX_RESTARTS:
                self.write(vals)
                self._finish(
                    "failed",
                    log,
                    self.env._(
                        "The job stopped mid-way %(count)s times (its worker died or "
                        "was restarted), last on %(worker)s, after step "
                        "%(step)s. Run the action again.",
                        count=vals["restarts"],
                        worker=self.worker,
                        step=self.step_index,
                    ),
                )
                return False
            log.append(
                self.env._(
                    "Resumed after step %(step)s: the run on %(worker)s stopped "
                    "mid-way.",
                    step=self.step_index,
                    worker=self.worker,
                )
            )
            vals["log"] = log.text()
        if not self.started_at:
            vals["started_at"] = now
        self.write(vals)
        # Users see it run, and a crash from here on resumes it.
        self._commit()
        return True

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
        try:
            namespaces = deployment._namespaces_read(self.action)
        except UserError as error:
            raise JobFailure(error.args[0]) from error
        objects = [obj for _label, _step, documents in rendered for obj in documents]
        log.scrub = Scrubber(secret_strings(context["secrets"], objects))
        connection = self.env._("Cluster connection")
        try:
            executor = self.cluster_id._get_executor(
                deployment.namespace, deployment._cluster_labels()
            )
            executor.check_objects(objects)
        except (ClusterConnectionError, TransientStepError) as error:
            self._retry_or_fail(connection, error, log)
        except StepError as error:
            raise JobFailure(f"{connection} failed: {error}") from error
        self._check_namespace_owners(executor, namespaces, log)
        for position, (label, step, documents) in enumerate(rendered, start=1):
            if position <= self.step_index:
                continue
            if documents:
                self._run_step(executor, label, step, documents, log)
            else:
                # Done as well: the progress counts it, a resume goes past it.
                log.append(
                    self.env._(
                        "%(step)s: skipped (%(reason)s)",
                        step=label,
                        reason=self._skip_reason(step),
                    )
                )
            self.write({"step_index": position, "attempt": 0, "wait_deadline": False})
            self._heartbeat(log)

    def _run_step(self, executor, label, step, documents, log):
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

    def _skip_reason(self, step):
        """Why ``step``, whose template rendered no object, did nothing: what
        its template's ``{# skipped: ... #}`` comment says, else the
        conditions that held all it outputs, else only that."""
        given, conditions = skip_reason(step.template)
        if given:
            return given
        if len(conditions) == 1:
            return self.env._("its condition is false: %s", conditions[0])
        if conditions:
            return self.env._("its conditions are false: %s", "; ".join(conditions))
        return self.env._("its template rendered no object")

    def _check_namespace_owners(self, executor, namespaces, log):
        """The namespaces the book reads besides its own are the ones Eyrie
        created for the deployments it reads: else nothing runs."""
        label = self.env._("Ownership of the namespaces read")
        try:
            executor.check_namespace_owners(namespaces)
        except (ClusterConnectionError, TransientStepError) as error:
            self._retry_or_fail(label, error, log)
        except StepError as error:
            log.append(self.env._("Refused: %s", error))
            raise JobFailure(f"{label}: {error}") from error

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
                log.append(hint)
                message = f"{message}. {hint}"
            raise JobFailure(message)
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
                "log": log.text(),
            }
        )
        # Safe: the job is consistent as pending; queue_job runs its queue
        # job again at ``not_before``.
        self._commit()
        raise _postponed(not_before, fields.Datetime.now())

    def _heartbeat(self, log):
        self.write({"log": log.text()})
        # Progress is visible, and a crash resumes after this step.
        self._commit()

    def _fail(self, log, error_message):
        """Fail the job with the first cause. What the run did since its
        last commit is undone first: after a database error the transaction
        is aborted, and nothing else could be recorded on it."""
        self.env.cr.rollback()
        self.env.invalidate_all()
        self._finish("failed", log, error_message)

    def _finish(self, state, log, error_message, check_running=True, commit=True):
        """End the job in ``state`` and apply its outcome to its deployment;
        committed unless ``commit`` is False (a caller inside a savepoint
        commits itself)."""
        self.flush_recordset()
        self.env.cr.execute(
            SQL("SELECT state FROM eyrie_job WHERE id = %s FOR UPDATE", self.id)
        )
        current = self.env.cr.fetchone()[0]
        if check_running and current != "running":
            _logger.warning(
                "Eyrie job %s ended while %s; result ignored", self.id, current
            )
            self.invalidate_recordset()
            return
        scrub = getattr(log, "scrub", None) or Scrubber()
        self.write(
            {
                "state": state,
                "ended_at": fields.Datetime.now(),
                "log": scrub("\n".join(log)),
                "error_message": scrub(error_message) if error_message else False,
                "not_before": False,
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
                        "The book ran, but its outcome could not be recorded: %s",
                        safe_error_text(error),
                    ),
                }
            )
            self._apply_outcome()
        if commit:
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
        # Safe: the queue job runs on a cursor of its own (Allow Commit; in
        # tests, a test cursor, whose commit ends a savepoint), and every
        # call ends a consistent unit (a job taken, a step logged, a job
        # finished). The crons that fail lost jobs run on the test's own
        # cursor in tests, which must not commit.
        if isinstance(self.env.cr, TestCursor) or not in_test():
            self.env.cr.commit()  # pylint: disable=invalid-commit


def _postponed(not_before, now):
    """The queue job runs again at ``not_before``: its ``RetryableJobError``,
    which counts no retry."""
    seconds = max(1, math.ceil((not_before - now).total_seconds()))
    return RetryableJobError(
        f"Eyrie job resumes at {not_before}", seconds=seconds, ignore_retry=True
    )
