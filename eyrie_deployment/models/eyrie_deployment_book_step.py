from jinja2 import TemplateSyntaxError

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.executor import STEP_KINDS
from ..tools.template import check_syntax, syntax_error_message


class EyrieDeploymentBookStep(models.Model):
    """One step of a Deployment Book.

    ``template`` is Jinja2 rendering to YAML (one or more documents). It sees
    ``deployment`` (id, name, type, namespace), ``scope`` (id, name),
    ``namespace`` and ``values``.
    """

    _name = "eyrie.deployment.book.step"
    _description = "Deployment Book Step"
    _order = "book_id, sequence, id"

    book_id = fields.Many2one(
        "eyrie.deployment.book", required=True, ondelete="cascade", index=True
    )
    sequence = fields.Integer(default=10)
    name = fields.Char(required=True)
    kind = fields.Selection(STEP_KINDS, required=True, default="apply")
    template = fields.Text(
        required=True,
        help="Jinja2 template rendering to YAML documents. Variables: deployment "
        "(id, name, type, namespace), scope (id, name), namespace, values.",
    )

    @api.constrains("template")
    def _check_template(self):
        for step in self:
            try:
                check_syntax(step.template)
            except TemplateSyntaxError as error:
                raise ValidationError(
                    self.env._(
                        "The template of step '%(step)s' is not valid Jinja2 "
                        "(%(error)s). "
                        "Fix the template and save again.",
                        step=step.name,
                        error=syntax_error_message(error),
                    )
                ) from error
