from odoo import models

from odoo.addons.queue_job.job import STARTED


class QueueJob(models.Model):
    """queue_job marks a queue job started, and commits, just before it runs
    it: the Eyrie job it runs is taken in that same transaction (marked
    running, see ``eyrie.job._take_when_started``), so that its run starts
    without a transaction and a commit of its own."""

    _inherit = "queue.job"

    def write(self, vals):
        result = super().write(vals)
        if vals.get("state") == STARTED:
            self._take_eyrie_jobs()
        return result

    def _take_eyrie_jobs(self):
        for record in self:
            if record.model_name == "eyrie.job" and record.method_name == "_run_queued":
                record.records._take_when_started()
