from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.git_sources import CREDENTIAL_NAME_RE

MANAGERS = "eyrie_deployment.group_eyrie_manager"


class EyrieGitCredential(models.Model):
    """A way into a private git repository, held by managers: an HTTPS token
    or an SSH deploy key. Scopes offer credentials by name; a user's
    repository names one, and never reads it."""

    _name = "eyrie.git.credential"
    _description = "Eyrie Git Credential"
    _inherit = ["mail.thread"]
    _order = "name, id"

    name = fields.Char(
        required=True,
        tracking=True,
        help="What a repository of the values names in its 'credential', such "
        "as acme-deploy-key.",
    )
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        index=True,
        default=lambda self: self.env.company,
    )
    kind = fields.Selection(
        [("https", "HTTPS token"), ("ssh", "SSH deploy key")],
        required=True,
        default="https",
        tracking=True,
    )
    username = fields.Char(
        default="git",
        tracking=True,
        help="HTTPS: the user the token belongs to (GitLab: oauth2 or the "
        "token's name; GitHub: any name).",
    )
    token = fields.Char(groups=MANAGERS, help="HTTPS: the access token.")
    ssh_private_key = fields.Text(
        string="SSH Private Key", groups=MANAGERS, help="SSH: the deploy key."
    )
    ssh_known_hosts = fields.Text(
        string="SSH Known Hosts",
        groups=MANAGERS,
        help="SSH: the host keys of the git hosts, as ssh-keyscan prints "
        "them. A host not listed is refused.",
    )
    ca_certificate = fields.Text(
        string="CA Certificate",
        groups=MANAGERS,
        help="HTTPS: the PEM certificate of a private certificate authority "
        "that signed the git host's certificate. Empty: the usual ones.",
    )

    _sql_constraints = [
        (
            "name_company_uniq",
            "unique(company_id, name)",
            "A git credential with this name already exists in this company.",
        ),
    ]

    @api.constrains("name", "kind", "token", "ssh_private_key", "ssh_known_hosts")
    def _check_credential(self):
        # The secret fields are managers'; the check only tells which is missing.
        for credential in self.sudo():
            if not CREDENTIAL_NAME_RE.match(credential.name or ""):
                raise ValidationError(
                    self.env._(
                        "Git credential '%(name)s': use a name of letters, digits, "
                        "'_', '.' and '-', such as acme-deploy-key.",
                        name=credential.name,
                    )
                )
            if credential.kind == "https" and not credential.token:
                raise ValidationError(
                    self.env._(
                        "Git credential %(name)s is an HTTPS token: fill in 'Token'.",
                        name=credential.name,
                    )
                )
            if credential.kind == "ssh" and not (
                credential.ssh_private_key and credential.ssh_known_hosts
            ):
                raise ValidationError(
                    self.env._(
                        "Git credential %(name)s is an SSH deploy key: fill in "
                        "'SSH Private Key' and 'SSH Known Hosts' (ssh-keyscan "
                        "<host> prints them).",
                        name=credential.name,
                    )
                )

    def _secrets(self):
        """What git needs of this credential, for ``git_sources`` and the
        books' Secret; never logged."""
        self.ensure_one()
        # Managers' fields: read for the fetch Eyrie runs on the user's behalf.
        credential = self.sudo()
        if credential.kind == "ssh":
            return {
                "ssh_private_key": credential.ssh_private_key,
                "ssh_known_hosts": credential.ssh_known_hosts,
            }
        return {
            "username": credential.username or "git",
            "token": credential.token,
            "ca_certificate": credential.ca_certificate or "",
        }

    def _book_secret(self):
        """The files of this credential in the pods' ``odoo-git`` Secret, as
        the deploy book's fetch script reads them (``<name>-<key>``)."""
        secrets_ = self._secrets()
        if self.kind == "ssh":
            return {
                "ssh-key": secrets_["ssh_private_key"],
                "known-hosts": secrets_["ssh_known_hosts"],
            }
        return {
            "username": secrets_["username"],
            "token": secrets_["token"],
            "ca": secrets_["ca_certificate"],
        }
