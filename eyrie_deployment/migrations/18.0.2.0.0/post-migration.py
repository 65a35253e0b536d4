from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.shipped_books import refresh_unmodified_steps


def migrate(cr, version):
    env = api.Environment(cr, SUPERUSER_ID, {})
    # Generated database passwords that a consumer reads as an option (a
    # leading '-') never let their Odoo start: regenerate them once.
    env["eyrie.deployment"].with_context(
        active_test=False
    )._regenerate_unsafe_credentials()
    # The shipped books render values with '| to_json' now; the steps nobody
    # edited get the new text (the new steps are created by the update).
    refresh_unmodified_steps(env)
