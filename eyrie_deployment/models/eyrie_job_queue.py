import logging
import uuid
from contextlib import contextmanager
from datetime import timedelta

from odoo import api, fields, models, tools
from odoo.tools import SQL

from odoo.addons.queue_job.job import Job

from ..tools.transaction import commit_unless_testing
from .eyrie_job import FINAL_STATES

_logger = logging.getLogger(__name__)

# A job due this long and not started says that no job runner runs.
RUNNER_GRACE_MINUTES = 5
# The queue jobs stored in the current transaction, by uuid (the data of its
# precommit callbacks, which Odoo clears with the transaction).
QUEUED_KEY = "eyrie.job.queued"
# The queue jobs of an action on many deployments, stored together when it
# ends (``_enqueued_together``), in cr.precommit.data.
DEFERRED_KEY = "eyrie.job.deferred"


class EyrieJobQueue(models.Model):
    """A job's link to OCA queue_job: the one queue job that runs it, in its
    cluster's channel, from its creation to its end (a wait or a retry
    postpones it: ``RetryableJobError``), after the queue job of the job it
    is chained after (queue_job's dependencies); and what Eyrie does when
    queue_job gives up on it or it gets lost in queue_job's own screens."""

    _inherit = "eyrie.job"

    queue_job_uuid = fields.Char(
        string="Queue Job",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="The queue job that runs or resumes this job next.",
    )

    runner_missing = fields.Text(
        compute="_compute_runner_missing",
        help="Set when the job has been due for minutes and no job runner took "
        "it: what to configure.",
    )

    @api.depends("state", "not_before", "previous_job_id.state")
    def _compute_runner_missing(self):
        """A job due for more than a few minutes whose queue job no runner
        started: without queue_job's job runner (not loaded, or a capacity
        of 0) jobs wait forever, silently."""
        late = fields.Datetime.now() - timedelta(minutes=RUNNER_GRACE_MINUTES)
        waiting = self.filtered(
            # queue_job's records are its managers'; Eyrie handles its own.
            lambda job: (
                job.state == "pending"
                and job.queue_job_uuid
                and (job.not_before or job.create_date) <= late
                and (not job.previous_job_id or job.previous_job_id.state == "done")
            )
        )
        # The queue jobs are queue_job's records, readable by its managers.
        queued = {
            record.uuid: record
            for record in self.env["queue.job"]
            .sudo()
            .search([("uuid", "in", waiting.mapped("queue_job_uuid"))])
        }
        for job in self:
            record = queued.get(job.queue_job_uuid) if job in waiting else None
            if not record or record.state not in ("pending", "enqueued"):
                job.runner_missing = False
                continue
            due = max(job.not_before or job.create_date, record.eta or job.create_date)
            minutes = round((fields.Datetime.now() - due).total_seconds() / 60)
            job.runner_missing = (
                job.env._(
                    "No job runner has started this job, due %(minutes)s minutes "
                    "ago. Jobs run on OCA queue_job's job runner: start Odoo with "
                    "queue_job among its server-wide modules "
                    "(--load=base,web,queue_job), with workers or in threaded "
                    "mode, and a job runner capacity of at least 1 (docs: "
                    "Configuration, running Eyrie in production). Queue Jobs "
                    "shows this job as %(state)s.",
                    minutes=minutes,
                    state=record.state,
                )
                if minutes >= RUNNER_GRACE_MINUTES
                else False
            )

    def _enqueue(self, after=None):
        """The queue job that runs each job, in its cluster's channel, under
        the job's ``queue_job_uuid`` (set here when the job has none); with
        ``after`` (the job these are chained after), it waits until that
        job's queue job is done.

        Built with queue_job's ``Job`` rather than ``with_delay``: the queue
        job of a new job is new, and the identity key (which names the job,
        for queue_job's screens and the benchmarks) needs no look-up."""
        data = self.env.cr.precommit.data
        queued_now = data.setdefault(QUEUED_KEY, {})
        deferred = data.get(DEFERRED_KEY)
        parent = None
        if after and after.queue_job_uuid:
            # Queued in this transaction (an initialize job before its deploy
            # job): as it was stored, without loading it again.
            parent = queued_now.get(after.queue_job_uuid) or Job.load(
                self.env, after.queue_job_uuid
            )
        for job in self:
            if not job.queue_job_uuid:
                job.queue_job_uuid = str(uuid.uuid4())
            queued = Job(
                job._run_queued,
                channel=job._channel_name(job.cluster_id.id),
                description=job.env._("Eyrie: %s", job.display_name),
                identity_key=f"eyrie.job:{job.id}",
                job_uuid=job.queue_job_uuid,
            )
            if parent:
                # queue_job follows dependencies inside one graph only.
                parent.graph_uuid = parent.graph_uuid or str(uuid.uuid4())
                queued.graph_uuid = parent.graph_uuid
                queued.add_depends({parent})
                if deferred is None or parent not in deferred:
                    parent.store()
            if deferred is None:
                job._store_new([queued])
            else:
                deferred.append(queued)
            queued_now[queued.uuid] = queued

    @contextmanager
    def _enqueued_together(self):
        """The queue jobs of the jobs created inside, stored in one insert
        when it ends (an action on many deployments: a batch of the timers);
        nothing stored if it raises."""
        data = self.env.cr.precommit.data
        if DEFERRED_KEY in data:
            # Inside another: stored with its own.
            yield
            return
        deferred = data[DEFERRED_KEY] = []
        try:
            yield
        finally:
            data.pop(DEFERRED_KEY, None)
        self._store_new(deferred)

    def _store_new(self, queued):
        """Store the queue jobs ``queued`` (a list), new: as queue_job's
        ``Job.store()`` stores a job it does not find, without first looking
        it up by its uuid (this job's, generated with it), all in one
        insert."""
        if not queued:
            return
        QueueJob = self.env["queue.job"]
        # queue_job's records are its managers'; as Job.store() does.
        QueueJob.with_context(_job_edit_sentinel=QueueJob.EDIT_SENTINEL).sudo().create(
            [job._store_values(create=True) for job in queued]
        )

    @api.model
    @tools.ormcache("cluster_id")
    def _channel_name(self, cluster_id):
        """The complete name of the channel of cluster ``cluster_id``, which
        every job queued names: kept in Odoo's cache, which a change of any
        channel clears (``queue_job_channel.py``)."""
        return self.env["eyrie.cluster"].browse(cluster_id)._job_channel_name()

    def _cancel_queue_jobs(self):
        uuids = [uuid for uuid in self.mapped("queue_job_uuid") if uuid]
        if uuids:
            # queue_job's records are its managers'; the job's own user may
            # cancel the job, hence its queue job.
            self.env["queue.job"].sudo().search(
                [("uuid", "in", uuids), ("state", "not in", ("done", "started"))]
            ).button_cancelled()

    def _on_queue_job_failed(self, exc_name=None, **_failure):
        """queue_job gave up on the queue job (concurrency errors that never
        cleared): the job fails instead of staying in progress. A job
        deleted meanwhile has nothing left to fail."""
        for job in self.exists().filtered(lambda j: j.state not in FINAL_STATES):
            log = job.log.splitlines() if job.log else []
            job._finish(
                "failed",
                log,
                job.env._(
                    "The job queue gave up on this job (%s); run the action again.",
                    (exc_name or "error").rsplit(".", 1)[-1],
                ),
                check_running=False,
            )

    @api.model
    def _cron_fail_lost_jobs(self, grace_minutes=10):
        """Fail the jobs in progress that nothing will run any more: their
        queue job was cancelled, set to done or deleted in queue_job's own
        screens (queue_job requeues the ones whose worker died)."""
        self.env.flush_all()
        self.env.cr.execute(
            SQL(
                """
                SELECT job.id, COALESCE(queue.state, 'deleted') FROM eyrie_job job
                  LEFT JOIN queue_job queue ON queue.uuid = job.queue_job_uuid
                 WHERE job.state IN ('pending', 'running')
                   AND job.write_date <= (now() AT TIME ZONE 'UTC')
                       - %(grace)s * interval '1 minute'
                   AND (job.previous_job_id IS NULL OR EXISTS (
                        SELECT 1 FROM eyrie_job previous
                         WHERE previous.id = job.previous_job_id
                           AND previous.state = 'done'))
                   AND (queue.state IS NULL OR queue.state IN %(over)s)
                   FOR UPDATE OF job SKIP LOCKED
                """,
                grace=grace_minutes,
                over=("done", "cancelled", "failed"),
            )
        )
        failed = self.browse()
        for job_id, queue_state in self.env.cr.fetchall():
            job = self.browse(job_id)
            _logger.warning("Eyrie job %s: its queue job is %s", job_id, queue_state)
            try:
                with self.env.cr.savepoint():
                    job._finish(
                        "failed",
                        job.log.splitlines() if job.log else [],
                        self.env._(
                            "Nothing runs this job any more: its queue job is "
                            "%(state)s (in Queue Jobs). Run the action again.",
                            state=queue_state,
                        ),
                        check_running=False,
                        commit=False,
                    )
            except Exception:
                # One bad record never stops the batch; the next run retries.
                _logger.exception("Eyrie job %s: failing it failed", job_id)
                job.invalidate_recordset()
                continue
            failed |= job
            # Safe: each failed job is complete in itself.
            commit_unless_testing(self.env.cr)
        return failed

    @api.model
    def _enqueue_after_upgrade(self):
        """Queue the jobs in progress that have no queue job (the old runner
        cron ran them): each after the job it is chained after. Returns
        them."""
        jobs = self.search(
            [("state", "in", ("pending", "running")), ("queue_job_uuid", "=", False)],
            order="id",
        )
        for job in jobs:
            previous = job.previous_job_id
            job._enqueue(after=previous if previous.state != "done" else None)
        return jobs
