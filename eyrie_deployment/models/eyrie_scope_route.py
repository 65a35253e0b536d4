from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.values import DNS_LABEL_RE

HTTPROUTE_KIND = "gateway.networking.k8s.io/HTTPRoute"


class EyrieScope(models.Model):
    """How the deployments of a scope are routed: an Ingress, or a Gateway
    API HTTPRoute attached to a Gateway the platform team runs."""

    _inherit = "eyrie.scope"

    route_kind = fields.Selection(
        [("ingress", "Ingress"), ("httproute", "Gateway API HTTPRoute")],
        string="Route",
        default="ingress",
        required=True,
        tracking=True,
        help="What routes an Odoo deployment's hostname to it. An HTTPRoute "
        "attaches to the Gateway named below; the cluster's Allowed Kinds must "
        f"list {HTTPROUTE_KIND}.",
    )
    gateway_name = fields.Char(
        tracking=True, help="The Gateway the deployments' HTTPRoutes attach to."
    )
    gateway_namespace = fields.Char(
        tracking=True,
        help="The Gateway's namespace. It must allow routes from the deployments' "
        "namespaces (its listeners' allowedRoutes).",
    )
    gateway_listener = fields.Char(
        tracking=True,
        help="The Gateway's listener (sectionName) to attach to. Empty: every "
        "listener that accepts the route.",
    )

    @api.constrains(
        "route_kind",
        "gateway_name",
        "gateway_namespace",
        "gateway_listener",
        "cluster_id",
    )
    def _check_route(self):
        for scope in self.filtered(lambda s: s.route_kind == "httproute"):
            for field_name in ("gateway_name", "gateway_namespace"):
                if not scope[field_name]:
                    raise ValidationError(
                        self.env._(
                            "Scope %(scope)s routes with an HTTPRoute: set "
                            "'%(field)s', or choose the Ingress route.",
                            scope=scope.name,
                            field=self._fields[field_name].string,
                        )
                    )
            for field_name in ("gateway_name", "gateway_namespace", "gateway_listener"):
                value = scope[field_name]
                if value and (len(value) > 63 or not DNS_LABEL_RE.match(value)):
                    raise ValidationError(
                        self.env._(
                            "Scope %(scope)s: '%(field)s' is '%(value)s'; write a "
                            "Kubernetes name of lower-case letters, digits and '-' "
                            "(at most 63).",
                            scope=scope.name,
                            field=self._fields[field_name].string,
                            value=value,
                        )
                    )
            if HTTPROUTE_KIND not in scope.cluster_id._allowed_kinds():
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s routes with an HTTPRoute, which cluster "
                        "%(cluster)s does not allow: a manager adds %(kind)s to its "
                        "Allowed Kinds first.",
                        scope=scope.name,
                        cluster=scope.cluster_id.name,
                        kind=HTTPROUTE_KIND,
                    )
                )

    def _route_values(self):
        """The ``route`` value of the Odoo books."""
        self.ensure_one()
        return {
            "kind": self.route_kind,
            "gateway_name": self.gateway_name or "",
            "gateway_namespace": self.gateway_namespace or "",
            "gateway_listener": self.gateway_listener or "",
            # Only a cluster that allows the kind may be asked to delete one.
            "httproute_allowed": HTTPROUTE_KIND in self.cluster_id._allowed_kinds(),
        }
