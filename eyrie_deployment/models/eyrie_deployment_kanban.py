from odoo import api, fields, models

from .eyrie_deployment import IN_FLIGHT_STATES

# The kanban card's colour (an index of the web client's colour list) by
# state; a job in progress is cyan, a draft has none.
STATE_COLORS = {
    "initialize": 8,  # blue
    "deploy": 10,  # green
    "pause": 3,  # yellow
    "error": 1,  # red
} | dict.fromkeys(IN_FLIGHT_STATES, 4)


class EyrieDeployment(models.Model):
    """The kanban card's state colour (its ``highlight_color``)."""

    _inherit = "eyrie.deployment"

    state_color = fields.Integer(compute="_compute_state_color")

    @api.depends("state")
    def _compute_state_color(self):
        for deployment in self:
            deployment.state_color = STATE_COLORS.get(deployment.state, 0)
