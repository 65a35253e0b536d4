from odoo import models


class QueueJobChannel(models.Model):
    """Eyrie keeps the complete name of each cluster's channel in Odoo's
    cache (``eyrie.job._channel_name``): any change of a channel, in Eyrie
    (a cluster's *Parallel Jobs*, a cluster deleted) or in queue_job's own
    screens (a channel renamed, moved or deleted), clears it, as queue_job
    does for its job functions. A channel created changes no cluster's."""

    _inherit = "queue.job.channel"

    def write(self, vals):
        result = super().write(vals)
        self.env.registry.clear_cache()
        return result

    def unlink(self):
        result = super().unlink()
        self.env.registry.clear_cache()
        return result
