"""18.0.5.0.0: clones copy the filestore, PostgreSQL deployments can be
cloned. The backup book's new steps (the archive Job) are created by the
update; the changed steps nobody edited get the new templates (the clone's
preparation fetches and unpacks the archive and fails when its Job fails;
the PostgreSQL deploy book starts a clone from its source)."""

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
        change="clones: the filestore archive, PostgreSQL clones",
    )
