from odoo import models

HOME_ACTION = "eyrie_deployment.eyrie_deployment_action"


class IrHttp(models.AbstractModel):
    """Eyrie users land on their deployments: the web client opens the home
    action of the session (``home_action_id``), and without one the first
    app of the menu, which is Discuss."""

    _inherit = "ir.http"

    def session_info(self):
        result = super().session_info()
        # A home action of the user's own (res.users.action_id) wins.
        if not result.get("home_action_id") and self.env.user.has_group(
            "eyrie_deployment.group_eyrie_user"
        ):
            result["home_action_id"] = self.env["ir.model.data"]._xmlid_to_res_id(
                HOME_ACTION, raise_if_not_found=False
            )
        return result
