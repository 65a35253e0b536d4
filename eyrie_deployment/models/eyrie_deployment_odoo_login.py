import json
from urllib.parse import urlencode

from odoo import api, fields, models
from odoo.exceptions import UserError

from .eyrie_deployment import STATES

# The login the Odoo books give the password to (base.user_admin), and the
# user of the Mailpit's basic auth (its Secret's ui-auth: admin:<password>).
ODOO_ADMIN_LOGIN = "admin"
# Where Mailpit's web page is (MP_WEBROOT, an Ingress path): Mailpit
# redirects /mail to /mail/, a round trip the link does without.
MAILPIT_PATH = "/mail/"
# Jobs that take the instance down: while one is in flight, nothing to open.
STOPPING_STATES = ("pausing", "dropping", "restoring")


class EyrieDeployment(models.Model):
    """How the owner of an Odoo deployment gets into it: Show Login (its
    admin login, each viewing recorded in the chatter) and links to the
    instance, its login page and its Mailpit."""

    _inherit = "eyrie.deployment"

    has_login = fields.Boolean(
        compute="_compute_has_login",
        help="An Odoo deployment whose admin password exists (generated at its "
        "first deploy): its owner and managers see it with Show Login.",
    )

    odoo_served = fields.Boolean(
        compute="_compute_odoo_served",
        help="An Odoo deployment that is deployed and not being paused, dropped "
        "or restored: its instance answers at its hostname.",
    )

    has_mail_catcher = fields.Boolean(
        related="scope_id.mail_catcher",
        string="Mail Catcher",
    )

    @api.depends("deployment_type", "credentials")
    def _compute_has_login(self):
        for deployment in self:
            # Whether a password exists, never which: credentials are
            # manager-only fields, and has_login tells the form to offer it.
            credentials = deployment.sudo().credentials or {}
            deployment.has_login = deployment.deployment_type == "odoo" and bool(
                credentials.get("admin_password")
            )

    @api.depends("deployment_type", "repository_state", "state")
    def _compute_odoo_served(self):
        for deployment in self:
            deployment.odoo_served = (
                deployment.deployment_type == "odoo"
                and deployment.repository_state == "deploy"
                and deployment.state not in STOPPING_STATES
            )

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------

    def action_show_login(self):
        """The login dialog of an Odoo deployment, for its owner or a
        manager; each opening is recorded in its chatter (who, never the
        password)."""
        self.ensure_one()
        self._check_can_act(self.env._("see the login of"))
        self._check_has_login()
        self._message_log(body=self.env._("Login viewed by %s", self.env.user.name))
        # Users only read the dialog (no create right): it is made here,
        # after the checks and the record of the viewing, as the caller
        # (create_uid), so only they read it back.
        login = (
            self.env["eyrie.deployment.login"].sudo().create({"deployment_id": self.id})
        )
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Login of %s", self.name),
            "res_model": "eyrie.deployment.login",
            "res_id": login.id,
            "view_mode": "form",
            "views": [
                (
                    self.env.ref(
                        "eyrie_deployment.eyrie_deployment_login_view_form"
                    ).id,
                    "form",
                )
            ],
            "target": "new",
        }

    def action_open_odoo(self):
        """The instance's home page, in a new tab."""
        self.ensure_one()
        self._check_can_act(self.env._("open"))
        return self._url_action(self._odoo_url("/"))

    def action_connect_odoo(self):
        """The instance's login page with the admin login filled in (Odoo's
        /web/login reads ``login`` from the query), then its web client."""
        self.ensure_one()
        self._check_can_act(self.env._("connect to"))
        query = urlencode({"login": ODOO_ADMIN_LOGIN, "redirect": "/odoo"})
        return self._url_action(self._odoo_url(f"/web/login?{query}"))

    def action_open_mails(self):
        """The Mailpit of the instance (same login and password as its admin)."""
        self.ensure_one()
        self._check_can_act(self.env._("read the mails of"))
        if not self.scope_id.mail_catcher:
            raise UserError(
                self.env._(
                    "Deployment %(name)s has no mail catcher: its scope %(scope)s "
                    "sends its mail to the world. A manager can turn on 'Mail "
                    "Catcher' on the scope, then deploy (update) %(name)s.",
                    name=self.name,
                    scope=self.scope_id.name,
                )
            )
        return self._url_action(self._odoo_url(MAILPIT_PATH))

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _check_has_login(self):
        self.ensure_one()
        if self.deployment_type != "odoo":
            raise UserError(
                self.env._(
                    "Deployment %s is not an Odoo deployment: it has no Odoo login.",
                    self.name,
                )
            )
        if not self.has_login:
            raise UserError(
                self.env._(
                    "Odoo deployment %s has no login yet: its admin password is "
                    "generated when it is first deployed.",
                    self.name,
                )
            )

    def _odoo_admin_password(self):
        """The password of the instance's admin (and of its Mailpit) for the
        deployment's owner or a manager; False for anyone else."""
        self.ensure_one()
        if self.deployment_type != "odoo" or not self._filtered_access("write"):
            return False
        # Credentials are manager-only fields; the caller may write this
        # deployment (its owner or a manager), whose login it is.
        return (self.sudo().credentials or {}).get("admin_password") or False

    def _odoo_base_url(self):
        """Where the instance is served: https where its Ingress has a TLS
        certificate (``tls_secret``), else http, the only scheme its Ingress
        then declares. False without a hostname."""
        self.ensure_one()
        if not self.hostname:
            return False
        # The computed field, not _effective_values(): values that a scope
        # change made invalid read as none here instead of raising.
        values = json.loads(self.effective_values or "{}")
        scheme = "https" if values.get("tls_secret") else "http"
        return f"{scheme}://{self.hostname}"

    def _odoo_url(self, path):
        """``path`` on the instance, which must be served now."""
        self.ensure_one()
        if not self.odoo_served:
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s is not served now (%(state)s): "
                    "deploy or resume it, and wait for its job to end.",
                    name=self.name,
                    state=dict(STATES)[self.state],
                )
            )
        base_url = self._odoo_base_url()
        if not base_url:
            # Its scope lost its domain: _odoo_hostname() says what to set.
            self._odoo_hostname()
        return f"{base_url}{path}"

    def _url_action(self, url):
        return {"type": "ir.actions.act_url", "url": url, "target": "new"}
