"""18.0.11.0.0: routes after the rollout, HTTPRoutes, a pause that may leave
the database running, and a server-wide module in the instances.

The new route steps are new records, created by the update. The Service
step (which held the Ingress), the workload and the pause's database step,
if nobody edited them, get this version's templates. Clusters still on the
shipped kinds also allow Gateway API HTTPRoutes and ReferenceGrants.
"""

from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.confinement import DEFAULT_ALLOWED_KINDS
from odoo.addons.eyrie_deployment.tools.shipped_books import (
    SHIPPED_IN_18_0_10,
    refresh_unmodified_steps,
)

NEW_KINDS = (
    "gateway.networking.k8s.io/HTTPRoute",
    "gateway.networking.k8s.io/ReferenceGrant",
)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    refreshed, _kept = refresh_unmodified_steps(
        env,
        SHIPPED_IN_18_0_10,
        change="the route after the rollout, a later database pause and the "
        "instance module",
    )
    if "eyrie_book_odoo_deploy_network" in refreshed:
        env.ref("eyrie_deployment.eyrie_book_odoo_deploy_network").name = "Service"
    previous = "\n".join(
        kind for kind in DEFAULT_ALLOWED_KINDS if kind not in NEW_KINDS
    )
    clusters = env["eyrie.cluster"].with_context(active_test=False).search([])
    for cluster in clusters.filtered(lambda c: c.allowed_kinds == previous):
        cluster.allowed_kinds = "\n".join(DEFAULT_ALLOWED_KINDS)
