import json

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from .eyrie_deployment_repository import repositories_of

# Form field -> (value key, type): the everyday values of an Odoo deployment.
ODOO_FORM_VALUES = {
    "odoo_image": ("image", str),
    "odoo_replicas": ("replicas", int),
    "odoo_workers": ("workers", int),
    "odoo_storage": ("storage", str),
    "odoo_modules": ("modules", list),
}


class EyrieDeployment(models.Model):
    """An Odoo deployment's everyday values as fields of its form: each
    shows the effective value (type default, scope, deployment) and, when
    changed, sets that key of the deployment's own values, checked as the
    JSON is. The Values tab stays for the rest."""

    _inherit = "eyrie.deployment"

    odoo_image = fields.Char(
        string="Image",
        compute="_compute_odoo_image",
        inverse="_inverse_odoo_image",
        help="The Odoo container image ('image' in the values), from a registry "
        "the scope allows.",
    )
    odoo_replicas = fields.Integer(
        string="Replicas",
        compute="_compute_odoo_replicas",
        inverse="_inverse_odoo_replicas",
        help="Odoo pods ('replicas').",
    )
    odoo_workers = fields.Integer(
        string="Workers",
        compute="_compute_odoo_workers",
        inverse="_inverse_odoo_workers",
        help="Odoo's --workers ('workers'); keep it above 0.",
    )
    odoo_storage = fields.Char(
        string="Filestore Size",
        compute="_compute_odoo_storage",
        inverse="_inverse_odoo_storage",
        help="The filestore volume ('storage'), such as 10Gi.",
    )
    odoo_modules = fields.Char(
        string="Modules",
        compute="_compute_odoo_modules",
        inverse="_inverse_odoo_modules",
        help="Modules installed beyond base ('modules'), comma-separated: the "
        "first deploy installs them, a module added later is installed by the "
        "next deploy.",
    )
    repository_ids = fields.One2many(
        "eyrie.deployment.repository",
        "deployment_id",
        string="Addons Repositories",
        copy=False,
        help="The 'repositories' of the values, as rows: in the order of the "
        "addons path, on the git hosts of the scope.",
    )
    odoo_repositories = fields.Text(
        string="Repositories",
        compute="_compute_odoo_repositories",
        help="The addons repositories of the values ('repositories'), in the "
        "order of the addons path: edit them in the Values tab.",
    )

    # One compute and one inverse per field: a field being written is
    # protected with the others of its compute, which a shared inverse would
    # read empty.
    @api.depends("values", "scope_id.values", "deployment_type")
    def _compute_odoo_image(self):
        self._compute_odoo_form_value("odoo_image")

    @api.depends("values", "scope_id.values", "deployment_type")
    def _compute_odoo_replicas(self):
        self._compute_odoo_form_value("odoo_replicas")

    @api.depends("values", "scope_id.values", "deployment_type")
    def _compute_odoo_workers(self):
        self._compute_odoo_form_value("odoo_workers")

    @api.depends("values", "scope_id.values", "deployment_type")
    def _compute_odoo_storage(self):
        self._compute_odoo_form_value("odoo_storage")

    @api.depends("values", "scope_id.values", "deployment_type")
    def _compute_odoo_modules(self):
        self._compute_odoo_form_value("odoo_modules")

    def _inverse_odoo_image(self):
        self._inverse_odoo_form_value("odoo_image")

    def _inverse_odoo_replicas(self):
        self._inverse_odoo_form_value("odoo_replicas")

    def _inverse_odoo_workers(self):
        self._inverse_odoo_form_value("odoo_workers")

    def _inverse_odoo_storage(self):
        self._inverse_odoo_form_value("odoo_storage")

    def _inverse_odoo_modules(self):
        self._inverse_odoo_form_value("odoo_modules")

    def _odoo_form_values(self):
        """The effective values of an Odoo deployment ({} for another type,
        or values that no longer pass their checks)."""
        self.ensure_one()
        if self.deployment_type != "odoo" or not self._is_typed():
            return {}
        try:
            return self._effective_values()
        except ValidationError:
            return {}

    def _compute_odoo_form_value(self, name):
        key, kind = ODOO_FORM_VALUES[name]
        for deployment in self:
            value = deployment._odoo_form_values().get(key)
            if kind is list:
                value = ", ".join(value or [])
            deployment[name] = value if value is not None else False

    @api.depends("values", "scope_id.values", "deployment_type")
    def _compute_odoo_repositories(self):
        for deployment in self:
            repositories = deployment._odoo_form_values().get("repositories") or []
            deployment.odoo_repositories = "\n".join(
                " ".join(
                    part
                    for part in (
                        item.get("url"),
                        item.get("ref"),
                        item.get("path") and f"path={item['path']}",
                        item.get("credential") and f"credential={item['credential']}",
                    )
                    if part
                )
                for item in repositories
                if isinstance(item, dict)
            )

    def _inverse_odoo_form_value(self, name):
        key, kind = ODOO_FORM_VALUES[name]
        for deployment in self.filtered(lambda d: d.deployment_type == "odoo"):
            value = deployment[name]
            if kind is list:
                value = [item.strip() for item in (value or "").split(",")]
                value = [item for item in value if item]
            elif kind is str:
                value = (value or "").strip()
            if value == deployment._odoo_form_values().get(key):
                continue
            own = json.loads(deployment.values or "{}") or {}
            own[key] = value
            deployment.values = json.dumps(own, indent=2, sort_keys=True)

    # ------------------------------------------------------------------
    # The repositories as rows, and as values
    # ------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        deployments = super().create(vals_list)
        for deployment, vals in zip(deployments, vals_list, strict=True):
            if "values" in vals and "repository_ids" not in vals:
                deployment._values_to_repositories()
        return deployments

    def write(self, vals):
        result = super().write(vals)
        if (
            "values" in vals
            and "repository_ids" not in vals
            and not self.env.context.get("eyrie_repositories_to_values")
        ):
            self._values_to_repositories()
        return result

    def _values_to_repositories(self):
        """The rows as the own values name the repositories (none: no row)."""
        Repository = self.env["eyrie.deployment.repository"]
        for deployment in self.filtered(lambda d: d.deployment_type == "odoo"):
            wanted = [
                item
                for item in repositories_of(deployment.values) or []
                if isinstance(item, dict)
            ]
            current = [row._as_value() for row in deployment.repository_ids]
            if current == wanted:
                continue
            rows = Repository.with_context(eyrie_values_to_repositories=True)
            deployment.repository_ids.with_context(
                eyrie_values_to_repositories=True
            ).unlink()
            rows.create(
                [
                    {
                        "deployment_id": deployment.id,
                        "sequence": index,
                        "url": item.get("url"),
                        "ref": item.get("ref"),
                        "path": item.get("path") or False,
                        "credential": item.get("credential") or False,
                    }
                    for index, item in enumerate(wanted)
                ]
            )

    def _repositories_to_values(self):
        """The own values' 'repositories' as the rows say, checked as any
        change of the values (none: the key goes, the scope's apply)."""
        if self.env.context.get("eyrie_values_to_repositories"):
            return
        for deployment in self.exists():
            own = json.loads(deployment.values or "{}") or {}
            rows = [row._as_value() for row in deployment.repository_ids]
            if rows:
                own["repositories"] = rows
            else:
                own.pop("repositories", None)
            deployment.with_context(
                eyrie_repositories_to_values=True
            ).values = json.dumps(own, indent=2, sort_keys=True)
