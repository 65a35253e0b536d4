import json
import logging
from datetime import timedelta

from psycopg2 import errors as pg_errors

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..tools.parameters import int_param

_logger = logging.getLogger(__name__)

JOB_STATES = [
    ("pending", "Pending"),
    ("running", "Running"),
    ("done", "Done"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
]
JOB_ACTIONS = [
    ("initialize", "Initialize"),
    ("deploy", "Deploy"),
    ("pause", "Pause"),
    ("drop", "Drop"),
    ("backup", "Backup"),
    ("restore", "Restore"),
]
DEFAULT_RETENTION_DAYS = 90
DEFAULT_KEEP_PER_DEPLOYMENT = 20
CLEAN_BATCH = 10000
FINAL_STATES = ("done", "failed", "cancelled")


# Percent of each page of the jobs' table filled by new rows; see ``init``.
JOB_TABLE_FILLFACTOR = 70


class EyrieJob(models.Model):
    """One run of a Deployment Book for one lifecycle action of a deployment:
    what people read (book, action, values, log, outcome, who and when).

    Created pending by the lifecycle actions; ``eyrie_job_runner.py`` runs
    it."""

    _name = "eyrie.job"
    _description = "Eyrie Job"
    _order = "id desc"
    _rec_names_search = ["deployment_name", "action"]

    deployment_id = fields.Many2one(
        "eyrie.deployment", ondelete="set null", index=True, readonly=True
    )

    def init(self):
        # A run rewrites its job's row when it takes it, commits progress
        # and ends: room left on each page lets PostgreSQL write the new
        # version beside the old one without touching the indexes (no
        # indexed column changes, see ``state``). The index on ``state`` of
        # earlier versions goes.
        self.env.cr.execute(
            SQL(
                "ALTER TABLE eyrie_job SET (fillfactor = %s); "
                "DROP INDEX IF EXISTS eyrie_job__state_index",
                JOB_TABLE_FILLFACTOR,
            )
        )

    can_cancel = fields.Boolean(
        compute="_compute_can_cancel",
        help="Whether the current user may cancel this job: the deployment's "
        "owner or an Eyrie manager.",
    )

    deployment_name = fields.Char(
        required=True, readonly=True, help="Kept after the deployment is dropped."
    )

    book_id = fields.Many2one(
        "eyrie.deployment.book", required=True, ondelete="restrict", readonly=True
    )

    cluster_id = fields.Many2one(
        "eyrie.cluster", required=True, ondelete="restrict", readonly=True
    )

    action = fields.Selection(JOB_ACTIONS, required=True, readonly=True)

    # Not indexed: a run changes the state of its job twice (taken, ended),
    # and an index on it would make each change write every index of the
    # table anew; unindexed, PostgreSQL updates the row in place (a HOT
    # update, see ``init``). The searches on it go through the deployment's
    # index, or are a cron's.
    state = fields.Selection(
        JOB_STATES, default="pending", required=True, readonly=True
    )

    previous_job_id = fields.Many2one(
        "eyrie.job",
        string="After Job",
        ondelete="set null",
        # Deleting a job looks up the jobs chained after it: without an
        # index, a scan of every job per deleted job.
        index="btree_not_null",
        readonly=True,
        help="This job waits until that job is done, and is cancelled if it fails.",
    )

    company_id = fields.Many2one(
        "res.company",
        readonly=True,
        index=True,
        ondelete="cascade",
        help="The company of the deployment; kept after it is dropped.",
    )

    # The two large texts are read only where they are shown or used: not
    # with every other field of a job (the jobs of a deployment's form, the
    # job in progress, the runner's bookkeeping).
    log = fields.Text(readonly=True, prefetch=False)

    values = fields.Text(
        readonly=True,
        prefetch=False,
        help="The values the book ran with (JSON), fixed when the job was created.",
    )

    error_message = fields.Text(readonly=True)

    trigger = fields.Selection(
        [("user", "User"), ("timer", "Timer")],
        string="Started By",
        required=True,
        default="user",
        readonly=True,
    )

    user_id = fields.Many2one("res.users", readonly=True, ondelete="set null")

    started_at = fields.Datetime(readonly=True)

    ended_at = fields.Datetime(readonly=True)

    duration = fields.Float(compute="_compute_duration", help="Seconds")

    def _job_values(self):
        """The values the book runs with, as data."""
        self.ensure_one()
        return json.loads(self.values) if self.values else {}

    # ------------------------------------------------------------------
    # Computes and guards
    # ------------------------------------------------------------------

    @api.depends("deployment_name", "action")
    def _compute_display_name(self):
        labels = dict(JOB_ACTIONS)
        for job in self:
            job.display_name = (
                f"{job.deployment_name} · {labels.get(job.action, '')} #{job.id or ''}"
            )

    @api.depends("started_at", "ended_at")
    def _compute_duration(self):
        for job in self:
            if job.started_at and job.ended_at:
                job.duration = (job.ended_at - job.started_at).total_seconds()
            else:
                job.duration = 0.0

    @api.ondelete(at_uninstall=False)
    def _unlink_except_in_progress(self):
        in_progress = self.filtered(lambda job: job.state in ("pending", "running"))
        if in_progress:
            raise UserError(
                self.env._(
                    "Job %(job)s is %(state)s: deleting it would leave its deployment "
                    "waiting forever. Wait for it to end.",
                    job=in_progress[0].display_name,
                    state=in_progress[0].state,
                )
            )

    @api.depends("deployment_id")
    @api.depends_context("uid")
    def _compute_can_cancel(self):
        # Not a related field: those are computed as superuser.
        for job in self:
            job.can_cancel = job.deployment_id.can_act

    # ------------------------------------------------------------------
    # Cancel and clean-up
    # ------------------------------------------------------------------

    def action_cancel(self):
        """Cancel pending jobs that have not run yet (and the jobs chained
        after them): only the deployment's users and managers may."""
        self.deployment_id._check_can_act(self.env._("cancel a job of"))
        self._lock_pending_for_cancel()
        for job in self:
            # Checked above: the caller may change the deployment; jobs are read-only.
            job.sudo().write(
                {
                    "state": "cancelled",
                    "ended_at": fields.Datetime.now(),
                    "error_message": self.env._(
                        "Cancelled by %s before it ran.", self.env.user.name
                    ),
                }
            )
            job.sudo()._cancel_following_jobs()
            job.sudo()._cancel_queue_jobs()
            if job.deployment_id:
                job.deployment_id._on_job_cancelled(job)
        return True

    def _lock_pending_for_cancel(self):
        # The row lock keeps a runner from taking the job meanwhile; NOWAIT
        # because a locked row is a job a runner is taking right now.
        self.check_access("read")
        self.flush_recordset()
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute(
                    SQL(
                        "SELECT id, state, started_at IS NOT NULL FROM eyrie_job "
                        "WHERE id IN %s FOR UPDATE NOWAIT",
                        tuple(self.ids),
                    )
                )
                rows = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        except pg_errors.LockNotAvailable:
            rows = {}
        for job in self:
            state, started = rows.get(job.id, ("running", True))
            if state != "pending":
                raise UserError(
                    self.env._(
                        "Job %(job)s cannot be cancelled: only a pending job can, and "
                        "it is %(state)s. A running job ends by itself; its log shows "
                        "how far it got.",
                        job=job.display_name,
                        state=state,
                    )
                )
            if started:
                # Cancelling now would leave what it applied on the cluster
                # behind a deployment that says nothing ran.
                raise UserError(
                    self.env._(
                        "Job %(job)s cannot be cancelled: it already ran on the "
                        "cluster and is waiting or retrying (its log shows how far it "
                        "got). Let it end; if it fails, the deployment stays in its "
                        "phase and can be deployed again or dropped.",
                        job=job.display_name,
                    )
                )

    def _cancel_following_jobs(self):
        following = self.search(
            [("previous_job_id", "in", self.ids), ("state", "=", "pending")]
        )
        for job in following:
            previous = job.previous_job_id
            reason = (
                self.env._(
                    "Not run: job %s before it was cancelled.", previous.display_name
                )
                if previous.state == "cancelled"
                else self.env._(
                    "Not run: job %s before it failed.", previous.display_name
                )
            )
            job.write(
                {
                    "state": "cancelled",
                    "ended_at": fields.Datetime.now(),
                    "error_message": reason,
                }
            )
            job._cancel_queue_jobs()
            job._cancel_following_jobs()
            if job.deployment_id and job.deployment_id != previous.deployment_id:
                # Chained after another deployment's job (a clone after a
                # backup of its source): nothing else tells this one.
                job.deployment_id._on_chained_job_cancelled(job)

    @api.model
    def _cron_clean_jobs(self):
        """Delete ended jobs older than the retention period, keeping the
        last ones of each deployment (settings: eyrie.job_retention_days,
        eyrie.job_keep_per_deployment)."""
        days = int_param(self.env, "eyrie.job_retention_days", DEFAULT_RETENTION_DAYS)
        keep = int_param(
            self.env, "eyrie.job_keep_per_deployment", DEFAULT_KEEP_PER_DEPLOYMENT
        )
        if days <= 0:
            return 0
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """
                DELETE FROM eyrie_job WHERE id IN (
                    SELECT id FROM (
                        SELECT id, ended_at, row_number() OVER (
                                   PARTITION BY deployment_id, deployment_name
                                   ORDER BY id DESC) AS newer
                          FROM eyrie_job
                         WHERE state IN %(final)s
                    ) ranked
                     WHERE newer > %(keep)s AND ended_at < %(cutoff)s
                     LIMIT %(batch)s)
                """,
                final=FINAL_STATES,
                keep=keep,
                cutoff=fields.Datetime.now() - timedelta(days=days),
                batch=CLEAN_BATCH,
            )
        )
        deleted = self.env.cr.rowcount
        self.invalidate_model()
        if deleted == CLEAN_BATCH:
            self.env.ref("eyrie_deployment.ir_cron_clean_jobs")._trigger()
        _logger.info("Eyrie: deleted %s old jobs", deleted)
        return deleted
