from odoo import fields, models


class EyrieScope(models.Model):
    """What a clone made in a scope must be, and what its Odoo sends mail to."""

    _inherit = "eyrie.scope"

    neutralize_clones = fields.Boolean(
        default=True,
        tracking=True,
        help="Every clone made into this scope runs 'odoo neutralize' before it "
        "takes traffic: outgoing mail servers, crons, payment providers and other "
        "links to the outside are switched off. Cleared: users may choose.",
    )
    mail_catcher = fields.Boolean(
        tracking=True,
        help="Odoo deployments of this scope send their mail to a Mailpit in their "
        "namespace instead of the world; its web page is at /mail on their "
        "hostname, behind the deployment's login (user 'admin' and its admin "
        "password, shown by Show Login).",
    )
