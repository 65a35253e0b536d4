import logging

from odoo import api, fields, models
from odoo.tools import SQL

from .eyrie_job import FINAL_STATES

_logger = logging.getLogger(__name__)


class EyrieJobQueue(models.Model):
    """A job's link to OCA queue_job: the queue job that runs or resumes it
    next, in its cluster's channel (one at a time per job, by identity key),
    and what Eyrie does when queue_job gives up on it or it gets lost in
    queue_job's own screens."""

    _inherit = "eyrie.job"

    queue_job_uuid = fields.Char(
        string="Queue Job",
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="The queue job that runs or resumes this job next.",
    )

    def _enqueue(self, eta=None):
        """One queue job that runs (or resumes, at ``eta``) each job, in its
        cluster's channel. The identity key keeps it to one per job."""
        for job in self:
            queued = job.with_delay(
                channel=job.cluster_id._job_channel_name(),
                eta=eta,
                description=job.env._("Eyrie: %s", job.display_name),
                identity_key=f"eyrie.job:{job.id}",
            )._run_queued()
            job.queue_job_uuid = queued.uuid if queued else job.queue_job_uuid

    def _enqueue_following(self):
        """Queue the jobs chained after these ones, now that they are done."""
        self.search(
            [("previous_job_id", "in", self.ids), ("state", "=", "pending")]
        )._enqueue()

    def _cancel_queue_jobs(self):
        uuids = [uuid for uuid in self.mapped("queue_job_uuid") if uuid]
        if uuids:
            self.env["queue.job"].sudo().search(
                [("uuid", "in", uuids)]
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
        lost = self.env.cr.fetchall()
        for job_id, queue_state in lost:
            job = self.browse(job_id)
            with self.env.cr.savepoint():
                _logger.warning(
                    "Eyrie job %s: its queue job is %s", job_id, queue_state
                )
                job._finish(
                    "failed",
                    job.log.splitlines() if job.log else [],
                    self.env._(
                        "Nothing runs this job any more: its queue job is "
                        "%(state)s (in Queue Jobs). Run the action again.",
                        state=queue_state,
                    ),
                    check_running=False,
                )
        return self.browse([job_id for job_id, _state in lost])

    @api.model
    def _enqueue_after_upgrade(self):
        """Queue the jobs in progress that the old runner cron would have
        run: the pending ones whose previous job is done (or none), and the
        ones it left running. Returns them."""
        jobs = self.search(
            [("state", "in", ("pending", "running")), ("queue_job_uuid", "=", False)]
        ).filtered(
            lambda job: not job.previous_job_id or job.previous_job_id.state == "done"
        )
        jobs._enqueue()
        return jobs
