import json

from odoo import api, fields, models


class EyrieDeploymentRepository(models.Model):
    """One addons repository of an Odoo deployment, as a row of its form:
    the rows are the 'repositories' of its own values, in their order, and
    the values are checked (hosts, credentials, refs) whenever a row
    changes. Writing the values in JSON rewrites the rows."""

    _name = "eyrie.deployment.repository"
    _description = "Eyrie Addons Repository"
    _order = "deployment_id, sequence, id"

    deployment_id = fields.Many2one(
        "eyrie.deployment", required=True, ondelete="cascade", index=True
    )
    sequence = fields.Integer(default=10, help="The order of the addons path.")
    url = fields.Char(
        string="URL",
        required=True,
        help="https://host/path or git@host:path, on a git host of the scope.",
    )
    ref = fields.Char(
        required=True, default="18.0", help="A branch, a tag or a commit."
    )
    path = fields.Char(help="The folder of its modules; empty: its top folder.")
    credential = fields.Char(
        help="The name of one of the scope's git credentials, for a private repository."
    )
    pinned_commit = fields.Char(
        compute="_compute_pinned_commit",
        help="The commit its ref was pinned to by the release that serves.",
    )

    def _as_value(self):
        self.ensure_one()
        value = {"url": (self.url or "").strip(), "ref": (self.ref or "").strip()}
        if self.path:
            value["path"] = self.path.strip()
        if self.credential:
            value["credential"] = self.credential.strip()
        return value

    @api.depends("url", "ref", "deployment_id.release_ids")
    def _compute_pinned_commit(self):
        # The code that serves, read once per deployment for all its rows.
        served = {
            deployment: (deployment._odoo_served_code() or {}).get("commits") or []
            for deployment in self.deployment_id
        }
        for repository in self:
            repository.pinned_commit = next(
                (
                    item["commit"]
                    for item in served.get(repository.deployment_id, [])
                    if item["url"] == repository.url and item["ref"] == repository.ref
                ),
                False,
            )

    @api.model_create_multi
    def create(self, vals_list):
        repositories = super().create(vals_list)
        repositories.deployment_id._repositories_to_values()
        return repositories

    def write(self, vals):
        result = super().write(vals)
        self.deployment_id._repositories_to_values()
        return result

    def unlink(self):
        deployments = self.deployment_id
        result = super().unlink()
        deployments._repositories_to_values()
        return result


def repositories_of(values_text):
    """The 'repositories' of a deployment's own values (JSON text), or None
    when they name none or are not readable (their checks say why)."""
    try:
        values = json.loads(values_text or "{}")
    except ValueError:
        return None
    repositories = values.get("repositories") if isinstance(values, dict) else None
    return repositories if isinstance(repositories, list) else None
