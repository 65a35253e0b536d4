"""18.0.9.0.0: the code of Odoo deployments (addons repositories pinned to
commits, modules, upgrades and releases).

The deploy book's new steps (the code's scripts, the upgrade Job) are new
records, created by the update; the steps that changed, if nobody edited
them, get this version's templates: the Odoo workload fetches the
repositories, and the pods pull their images with the scope's registry
credentials.
"""

from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.shipped_books import (
    SHIPPED_IN_18_0_8,
    refresh_unmodified_steps,
)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    refresh_unmodified_steps(
        env,
        SHIPPED_IN_18_0_8,
        change="Odoo pods fetch their addons repositories at pinned commits and "
        "pull with the scope's registry credentials",
    )
