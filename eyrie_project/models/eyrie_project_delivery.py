from odoo import api, fields, models

# How long a delivery is remembered (its replay refused). Older replays do
# little: a push deploys the branch's head pinned again, and a branch's
# delete drops its build only once git says the branch is gone.
KEEP_DAYS = 400


class EyrieProjectDelivery(models.Model):
    """A webhook delivery a project accepted: a second one of the same body
    is a replay, refused."""

    _name = "eyrie.project.delivery"
    _description = "Eyrie Project Webhook Delivery"
    _log_access = False

    project_id = fields.Many2one(
        "eyrie.project", required=True, ondelete="cascade", index=True
    )
    digest = fields.Char(required=True, help="SHA-256 of the body.")
    delivery = fields.Char(help="The git host's id of the delivery.")
    provider = fields.Char()
    event = fields.Char()
    received_at = fields.Datetime(required=True, default=fields.Datetime.now)

    _sql_constraints = [
        (
            "digest_project_uniq",
            "unique(project_id, digest)",
            "This delivery was already received.",
        ),
    ]

    @api.autovacuum
    def _gc_old_deliveries(self):
        self.search(
            [
                (
                    "received_at",
                    "<",
                    fields.Datetime.subtract(fields.Datetime.now(), days=KEEP_DAYS),
                )
            ]
        ).unlink()
