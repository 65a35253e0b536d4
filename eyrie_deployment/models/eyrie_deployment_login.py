from odoo import api, fields, models

from .eyrie_deployment_odoo_login import MAILPIT_PATH, ODOO_ADMIN_LOGIN


class EyrieDeploymentLogin(models.TransientModel):
    """The Show Login dialog of an Odoo deployment: where it is served and
    how to log in to it and to its Mailpit.

    Made by ``eyrie.deployment.action_show_login`` only (users have no
    create right), which records the viewing in the deployment's chatter.
    The password is never stored in this table: it is read from the
    deployment's credentials each time the dialog is read, for the
    deployment's owner or a manager only. A record rule shows each user
    their own dialogs only."""

    _name = "eyrie.deployment.login"
    _description = "Login of an Odoo Deployment"

    deployment_id = fields.Many2one(
        "eyrie.deployment",
        required=True,
        readonly=True,
        ondelete="cascade",
    )
    url = fields.Char(string="URL", compute="_compute_urls")
    mail_url = fields.Char(
        string="Mails",
        compute="_compute_urls",
        help="Its Mailpit, where the mail it sends is kept: the same login and "
        "password.",
    )
    login = fields.Char(default=ODOO_ADMIN_LOGIN, readonly=True)
    password = fields.Char(
        compute="_compute_password",
        help="Read from the deployment each time this dialog is shown; never "
        "stored here.",
    )

    @api.depends(
        "deployment_id.hostname",
        "deployment_id.effective_values",
        "deployment_id.scope_id.mail_catcher",
    )
    def _compute_urls(self):
        for login in self:
            deployment = login.deployment_id
            base_url = deployment._odoo_base_url() if deployment else False
            login.url = base_url and f"{base_url}/"
            login.mail_url = (
                base_url
                and deployment.scope_id.mail_catcher
                and f"{base_url}{MAILPIT_PATH}"
            )

    @api.depends("deployment_id")
    @api.depends_context("uid")
    def _compute_password(self):
        for login in self:
            deployment = login.deployment_id
            login.password = deployment and deployment._odoo_admin_password()
