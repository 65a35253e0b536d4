from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.git_sources import IMAGE_KEYS, check_allowed_sources, split_names
from ..tools.values import DNS_LABEL_RE, ValuesError


class EyrieScope(models.Model):
    """Where the code of a scope's Odoo deployments may come from: the git
    hosts of their addons repositories, the credentials offered for them by
    name, and the registries of their images."""

    _inherit = "eyrie.scope"

    git_hosts = fields.Char(
        tracking=True,
        help="Comma-separated hosts the deployments' addons repositories may be "
        "on (https or ssh), such as github.com, gitlab.example.com. Empty: "
        "no repository.",
    )
    git_credential_ids = fields.Many2many(
        "eyrie.git.credential",
        string="Git Credentials",
        check_company=True,
        help="Credentials a repository of the values may name (its "
        "'credential'), for private repositories. Their secrets stay with "
        "the managers.",
    )
    image_registries = fields.Char(
        tracking=True,
        help="Comma-separated registries the deployments' images may come from, "
        "such as docker.io, ghcr.io, registry.example.com. Empty: any.",
    )

    @api.constrains("git_hosts", "image_registries", "git_credential_ids", "values")
    def _check_code_sources(self):
        for scope in self:
            for field_name in ("git_hosts", "image_registries"):
                for name in split_names(scope[field_name]):
                    host = name.rsplit(":", 1)[0] if field_name != "git_hosts" else name
                    if not all(DNS_LABEL_RE.match(p) for p in host.split(".")):
                        raise ValidationError(
                            self.env._(
                                "Scope %(scope)s: '%(field)s' holds '%(name)s'; "
                                "write host names separated by commas, such as "
                                "github.com, gitlab.example.com.",
                                scope=scope.name,
                                field=self._fields[field_name].string,
                                name=name,
                            )
                        )
            # The scope's own defaults follow its rules too.
            scope._check_odoo_code_sources()

    def _check_odoo_code_sources(self):
        if "odoo" not in self.env["eyrie.deployment"]._fields[
            "deployment_type"
        ].get_values(self.env):
            return
        hosts, credentials, registries = self._code_sources()
        try:
            check_allowed_sources(
                self._type_values("odoo"), hosts, registries, credentials, IMAGE_KEYS
            )
        except ValuesError as error:
            raise ValidationError(
                self.env._(
                    "Default values of scope %(scope)s: %(error)s.",
                    scope=self.name,
                    error=error,
                )
            ) from error

    def _code_sources(self):
        """(git hosts, credential names, registries) this scope allows."""
        self.ensure_one()
        # Users' deployments are checked against the scope's credentials by
        # name only: their secrets are managers'.
        credentials = self.sudo().git_credential_ids
        return (
            split_names(self.git_hosts),
            set(credentials.mapped("name")),
            split_names(self.image_registries),
        )

    def _git_credential(self, name):
        """The credential the scope offers under ``name`` (may be empty)."""
        self.ensure_one()
        # The scope's credentials are managers' records; the deploy uses them.
        return self.sudo().git_credential_ids.filtered(lambda c: c.name == name)[:1]
