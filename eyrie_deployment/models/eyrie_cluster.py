from odoo import fields, models

from ..tools.executor import ClusterConnectionError, DryRunExecutor


class EyrieCluster(models.Model):
    """A Kubernetes cluster where Deployment Books run.

    A dry-run cluster renders and validates every step and writes to the job
    log what it would send, without contacting anything.
    """

    _name = "eyrie.cluster"
    _description = "Eyrie Cluster"
    _inherit = ["mail.thread"]
    _order = "name, id"

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    dry_run = fields.Boolean(
        tracking=True,
        help="Render and validate every step and log what would be sent, "
        "without contacting any cluster.",
    )
    kubeconfig = fields.Text(
        groups="eyrie_deployment.group_eyrie_manager",
        help="Kubeconfig used to reach the cluster. Readable by Eyrie managers only.",
    )
    context = fields.Char(
        help="Kubeconfig context to use; empty means the kubeconfig's current context."
    )
    scope_ids = fields.One2many("eyrie.scope", "cluster_id", string="Scopes")
    description = fields.Text()

    _sql_constraints = [
        ("name_uniq", "unique(name)", "A cluster with this name already exists."),
    ]

    def _get_executor(self, default_namespace):
        """Return the executor that runs book steps on this cluster."""
        self.ensure_one()
        if self.dry_run:
            return DryRunExecutor(self.name, default_namespace)
        raise ClusterConnectionError(
            self.env._(
                "Cluster %(cluster)s: this version of Eyrie can only run books on "
                "dry-run clusters; enable 'Dry run' on the cluster.",
                cluster=self.name,
            )
        )
