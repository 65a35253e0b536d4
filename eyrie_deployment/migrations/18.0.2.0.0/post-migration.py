from odoo import SUPERUSER_ID, api


def migrate(cr, version):
    """Generated database passwords that a consumer reads as an option (a
    leading '-') never let their Odoo start: regenerate them once."""
    env = api.Environment(cr, SUPERUSER_ID, {})
    env["eyrie.deployment"].with_context(
        active_test=False
    )._regenerate_unsafe_credentials()
