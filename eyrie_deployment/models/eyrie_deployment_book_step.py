from typing import NamedTuple

from jinja2 import TemplateSyntaxError

from odoo import api, fields, models, tools
from odoo.exceptions import ValidationError

from ..tools.executor import STEP_KINDS
from ..tools.template import check_syntax, syntax_error_message


class BookStep(NamedTuple):
    """A step of a book as the job runner reads it: plain data, cached."""

    name: str
    kind: str
    template: str


class EyrieDeploymentBookStep(models.Model):
    """One step of a Deployment Book.

    ``template`` is Jinja2 rendering to YAML (one or more documents). It sees
    ``deployment`` (id, name, type, namespace), ``scope`` (id, name),
    ``namespace`` and ``values``.
    """

    _name = "eyrie.deployment.book.step"
    # Its runs read the steps from Odoo's cache (``_book_steps``).
    _inherit = ["eyrie.cached.settings.mixin"]
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

    @api.model
    @tools.ormcache("book_id")
    def _book_steps(self, book_id):
        """The steps of book ``book_id`` in their order (``BookStep``): read
        once per process, until a step changes (every Odoo server hears of
        it, as of any change of Odoo's cached data)."""
        steps = self.sudo().search_fetch(
            [("book_id", "=", book_id)],
            ["name", "kind", "template"],
            order="sequence, id",
        )
        return tuple(BookStep(step.name, step.kind, step.template) for step in steps)

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
