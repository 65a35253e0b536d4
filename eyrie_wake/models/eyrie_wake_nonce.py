from datetime import timedelta

from odoo import api, fields, models
from odoo.tools import SQL

from ..tools.signing import MAX_SKEW_SECONDS


class EyrieWakeNonce(models.Model):
    """The nonces of the signed calls of the last minutes: a call seen once
    is refused as a replay. Older ones are refused by their timestamp."""

    _name = "eyrie.wake.nonce"
    _description = "Eyrie Signed Call Nonce"
    _log_access = False

    name = fields.Char(required=True)
    received_at = fields.Datetime(
        required=True, index=True, default=fields.Datetime.now
    )

    _sql_constraints = [
        ("name_uniq", "unique(name)", "This signed call was already received."),
    ]

    @api.model
    def _claim(self, sender, nonce):
        """True the first time ``nonce`` of ``sender`` is seen. Atomic across
        requests and servers: the unique index decides."""
        self.env.cr.execute(
            SQL(
                "INSERT INTO eyrie_wake_nonce (name, received_at) "
                "VALUES (%s, now() AT TIME ZONE 'UTC') "
                "ON CONFLICT (name) DO NOTHING RETURNING id",
                f"{sender}:{nonce}",
            )
        )
        return bool(self.env.cr.fetchone())

    @api.autovacuum
    def _gc_seen(self):
        """Forget the nonces older than any timestamp still accepted. Run by
        the sleep cron every minute too: an instance reports every minute,
        so the table holds minutes of calls, never days."""
        limit = fields.Datetime.now() - timedelta(seconds=2 * MAX_SKEW_SECONDS)
        self.env.cr.execute(
            SQL("DELETE FROM eyrie_wake_nonce WHERE received_at < %s", limit)
        )
        return self.env.cr.rowcount
