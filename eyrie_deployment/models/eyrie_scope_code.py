import json

from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError

from ..tools.git_sources import IMAGE_KEYS, check_allowed_sources, split_names
from ..tools.values import DNS_LABEL_RE


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
        groups="eyrie_deployment.group_eyrie_manager",
        help="Credentials a repository of the values may name (its "
        "'credential'), for private repositories. Their secrets stay with "
        "the managers.",
    )
    image_pull_credential_ids = fields.Many2many(
        "eyrie.registry.credential",
        string="Image Pull Credentials",
        check_company=True,
        groups="eyrie_deployment.group_eyrie_manager",
        help="Logins to private registries: the pods of the scope's Odoo "
        "deployments pull their images with them (the Secret odoo-registry "
        "of each namespace).",
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
        with self._refusing_values():
            check_allowed_sources(
                self._type_values("odoo"), hosts, registries, credentials, IMAGE_KEYS
            )

    def _code_sources(self, repositories=True):
        """(git hosts, credential names, registries) this scope allows; no
        credential names without ``repositories`` to check."""
        self.ensure_one()
        names = set()
        if repositories:
            # Users' deployments are checked against the scope's credentials
            # by name only: their secrets are managers'.
            names = set(self.sudo().git_credential_ids.mapped("name"))
        return (
            split_names(self.git_hosts),
            names,
            split_names(self.image_registries),
        )

    def _image_pull_secret(self):
        """The ``.dockerconfigjson`` of the scope's pull credentials, or None."""
        self.ensure_one()
        config = self._image_pull_config(self.id)
        return json.loads(config) if config else None

    @api.model
    @tools.ormcache("scope_id")
    def _image_pull_config(self, scope_id):
        # Every job renders it: kept in the process, as the scope's settings
        # (a change of the scope or of a credential clears it).
        # The scope's credentials are managers' records; the pods pull with them.
        credentials = self.browse(scope_id).sudo().image_pull_credential_ids
        return json.dumps(credentials._docker_config()) if credentials else ""

    def _git_credential(self, name):
        """The credential the scope offers under ``name`` (may be empty)."""
        self.ensure_one()
        # The scope's credentials are managers' records; the deploy uses them.
        return self.sudo().git_credential_ids.filtered(lambda c: c.name == name)[:1]
