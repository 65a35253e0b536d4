from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

# The roles Eyrie makes for the Odoo deployments on a shared PostgreSQL
# deployment; its own ``users`` may not take a name of this form.
CONSUMER_ROLE_PREFIX = "eyrie-odoo-"


class EyrieDeployment(models.Model):
    """A PostgreSQL deployment used by Odoo deployments of others: only by
    the ones its owner (or a manager) allows, each connecting with a
    PostgreSQL role of its own (``eyrie-odoo-<id>``), whose password only
    that Odoo's books get, and which owns only the database its Odoo
    creates (its namespace's name)."""

    _inherit = "eyrie.deployment"

    database_consumer_ids = fields.Many2many(
        "eyrie.deployment",
        "eyrie_deployment_database_consumer_rel",
        "database_id",
        "consumer_id",
        string="Allowed Odoo Deployments",
        check_company=True,
        domain="[('deployment_type', '=', 'odoo'), "
        "('database_deployment_id', '=', id)]",
        help="PostgreSQL deployments: the Odoo deployments that may keep their "
        "database here. Each gets a PostgreSQL role of its own, created by this "
        "deployment's next deploy; it sees no other database's password. Only "
        "this deployment's owner and managers change the list.",
    )
    database_role = fields.Char(
        string="PostgreSQL Role",
        compute="_compute_database_role",
        help="Odoo deployments on a shared PostgreSQL deployment: the role they "
        "connect as, their own.",
    )
    database_role_kept = fields.Char(
        readonly=True,
        copy=False,
        help="The role an Odoo deployment on a shared database used before "
        "roles of their own (18.0.6.0.0): its database belongs to it.",
    )

    @api.depends("deployment_type", "database_mode", "database_role_kept")
    def _compute_database_role(self):
        for deployment in self:
            deployment.database_role = (
                deployment._odoo_database_role()
                if deployment.deployment_type == "odoo"
                and deployment.database_mode == "shared"
                # A new record has no id yet, so no role name.
                and deployment._origin.id
                else False
            )

    def _odoo_database_role(self):
        self.ensure_one()
        return self.database_role_kept or f"{CONSUMER_ROLE_PREFIX}{self.id}"

    def _pgo_consumer_roles(self):
        """The roles of the Odoo deployments this PostgreSQL deployment
        allows, for its PostgresCluster's users."""
        self.ensure_one()
        # The allowed Odoo deployments are other users'.
        consumers = self.sudo().database_consumer_ids.filtered(
            lambda odoo: odoo.database_deployment_id == self
        )
        return sorted(consumer._odoo_database_role() for consumer in consumers)

    # ------------------------------------------------------------------
    # The link, chosen by the Odoo's owner, allowed by the database's
    # ------------------------------------------------------------------

    @api.model_create_multi
    def create(self, vals_list):
        deployments = super().create(vals_list)
        deployments.filtered("database_deployment_id")._allow_own_database_use()
        return deployments

    def write(self, vals):
        result = super().write(vals)
        if vals.get("database_deployment_id"):
            self._allow_own_database_use()
        return result

    def _allow_own_database_use(self):
        """A user who may change the PostgreSQL deployment they chose (its
        owner, a manager) allows their Odoo at once; anyone else waits for
        the owner's consent, which the deploy asks for."""
        for odoo in self.filtered(lambda d: d.deployment_type == "odoo"):
            database = odoo.database_deployment_id.with_env(self.env)
            try:
                database.check_access("write")
            except AccessError:
                continue
            database.write({"database_consumer_ids": [(4, odoo.id)]})

    def _odoo_check_database_consent(self, database):
        # The allowed list is the database owner's; anyone may be checked against it.
        if self in database.sudo().database_consumer_ids:
            return
        raise UserError(
            self.env._(
                "Odoo deployment %(name)s cannot keep its database in PostgreSQL "
                "deployment %(database)s: its owner (%(owner)s) has not allowed "
                "it. They (or an Eyrie manager) add %(name)s to its Allowed Odoo "
                "Deployments and deploy (update) %(database)s, which creates the "
                "PostgreSQL role of %(name)s.",
                name=self.name,
                database=database.name,
                owner=database.user_id.name or database.create_uid.name,
            )
        )
