"""18.0.5.0.0: clones copy the filestore. The backup book's new steps (the
archive Job) are created by the update; the clone's preparation steps nobody
edited get the new templates (fetch and unpack the archive, fail when the
Job fails)."""

from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.shipped_books import (
    SHIPPED_IN_18_0_4,
    refresh_unmodified_steps,
)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    refresh_unmodified_steps(
        env,
        SHIPPED_IN_18_0_4,
        change="the clone's preparation fetches the filestore archive",
    )
