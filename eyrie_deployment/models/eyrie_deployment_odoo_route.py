from odoo import api, fields, models


class EyrieDeployment(models.Model):
    """The route an Odoo deployment was last deployed with, so that a scope
    that changes its route kind removes the old route, and only then."""

    _inherit = "eyrie.deployment"

    routed_by = fields.Selection(
        [("ingress", "Ingress"), ("httproute", "Gateway API HTTPRoute")],
        readonly=True,
        copy=False,
        help="The route kind of its last successful deploy.",
    )

    @api.model
    def _lifecycle_fields(self):
        return super()._lifecycle_fields() | {"routed_by"}

    @api.model
    def _job_run_fields(self):
        return super()._job_run_fields() | {"routed_by"}

    def _odoo_stale_route_kind(self, kind):
        """The kind of route to remove before this one serves: the one it
        was deployed with, if another (before this field, an Ingress)."""
        previous = self.routed_by or "ingress"
        return previous if previous != kind else ""

    def _on_deploy_done(self, job):
        result = super()._on_deploy_done(job)
        if self.deployment_type == "odoo":
            kind = (job._job_values().get("route") or {}).get("kind")
            if kind:
                self._set_lifecycle(routed_by=kind)
        return result
