"""18.0.10.0.0: demo data and module tests of Odoo deployments.

The deploy book's test steps are new records, created by the update; the
code's scripts and the upgrade Job, if nobody edited them, get this
version's templates: a new database gets demo data only where the values
ask for it ('demo'), and the scripts hold the test run ('tests').
"""

from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.shipped_books import (
    SHIPPED_IN_18_0_9,
    refresh_unmodified_steps,
)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    refresh_unmodified_steps(
        env,
        SHIPPED_IN_18_0_9,
        change="demo data only where the values ask for it, and the test run "
        "of the modules' tests",
    )
