import base64

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.values import DNS_LABEL_RE

MANAGERS = "eyrie_deployment.group_eyrie_manager"


class EyrieRegistryCredential(models.Model):
    """A login to a private container registry, held by managers: the pods
    of the scopes that offer it pull their images with it (an image pull
    Secret in each namespace). Users never read it."""

    _name = "eyrie.registry.credential"
    _description = "Eyrie Registry Credential"
    # The settings mixin for its cache clearing: scopes keep their pull
    # configuration in the process (``_image_pull_config``).
    _inherit = ["mail.thread", "eyrie.cached.settings.mixin"]
    _order = "name, id"

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        index=True,
        default=lambda self: self.env.company,
    )
    registry = fields.Char(
        required=True,
        tracking=True,
        help="The registry's host (and port), as image references name it: "
        "ghcr.io, registry.example.com:5000. Docker Hub: docker.io.",
    )
    username = fields.Char(required=True, tracking=True)
    password = fields.Char(
        groups=MANAGERS, help="The password or access token (read access)."
    )

    @api.constrains("registry", "password")
    def _check_registry(self):
        # The password is a manager's field; the check only says it is missing.
        for credential in self.sudo():
            host, _colon, port = (credential.registry or "").partition(":")
            if not all(DNS_LABEL_RE.match(part) for part in host.split(".")) or (
                port and not port.isdigit()
            ):
                raise ValidationError(
                    self.env._(
                        "Registry credential %(name)s: 'Registry' is '%(registry)s'; "
                        "write the registry's host as image references name it, "
                        "such as ghcr.io or registry.example.com:5000.",
                        name=credential.name,
                        registry=credential.registry,
                    )
                )
            if not credential.password:
                raise ValidationError(
                    self.env._(
                        "Registry credential %(name)s: fill in 'Password'.",
                        name=credential.name,
                    )
                )

    def _docker_config(self):
        """The ``.dockerconfigjson`` of these credentials (a dict), as
        kubelet reads an image pull Secret; never logged."""
        auths = {}
        # Managers' fields: read for the pods' pull, on the user's behalf.
        for credential in self.sudo():
            server = (
                "https://index.docker.io/v1/"
                if credential.registry == "docker.io"
                else credential.registry
            )
            login = f"{credential.username}:{credential.password}"
            auths[server] = {
                "username": credential.username,
                "password": credential.password,
                "auth": base64.b64encode(login.encode()).decode(),
            }
        return {"auths": auths}
