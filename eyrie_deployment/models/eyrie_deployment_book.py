from odoo import api, fields, models


class EyrieDeploymentBook(models.Model):
    """An ordered list of steps run against a cluster for one lifecycle action."""

    _name = "eyrie.deployment.book"
    _description = "Deployment Book"
    _order = "name, id"

    name = fields.Char(required=True, translate=False)
    active = fields.Boolean(default=True)
    deployment_type = fields.Selection(
        selection=lambda self: (
            self.env["eyrie.deployment"]
            ._fields["deployment_type"]
            ._description_selection(self.env)
        ),
        help="The deployment type this book serves; empty means any type.",
    )
    step_ids = fields.One2many(
        "eyrie.deployment.book.step", "book_id", string="Steps", copy=True
    )
    step_count = fields.Integer(compute="_compute_step_count")
    description = fields.Text()

    @api.depends("step_ids")
    def _compute_step_count(self):
        for book in self:
            book.step_count = len(book.step_ids)

    def _serves(self, deployment_type):
        self.ensure_one()
        return not self.deployment_type or self.deployment_type == deployment_type
