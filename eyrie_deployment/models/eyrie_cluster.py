from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..tools.confinement import DEFAULT_ALLOWED_KINDS, parse_allowed_kinds
from ..tools.executor import (
    ClusterConnectionError,
    DryRunExecutor,
    StepError,
    TransientStepError,
)
from ..tools.kubernetes_executor import (
    KubeconfigError,
    KubernetesExecutor,
    forget_clients,
    get_client,
    parse_kubeconfig,
    server_version,
)


class EyrieCluster(models.Model):
    """A Kubernetes cluster where Deployment Books run.

    A dry-run cluster renders and validates every step and writes to the job
    log what it would send, without contacting anything. Any other cluster is
    reached through the official Kubernetes client, with ``kubeconfig`` (and
    ``context``), or with the pod's service account when Odoo runs inside the
    cluster and ``kubeconfig`` is empty.
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
        help="Kubeconfig used to reach the cluster. Readable by Eyrie managers only. "
        "Leave empty when Odoo runs in the cluster: its service account is used.",
    )
    context = fields.Char(
        help="Kubeconfig context to use; empty means the kubeconfig's current context."
    )
    allowed_kinds = fields.Text(
        default="\n".join(DEFAULT_ALLOWED_KINDS),
        required=True,
        tracking=True,
        help="The kinds books may create, change or delete on this cluster, one "
        "per line as group/Kind (Kind alone for the core group), for example "
        "apps/Deployment. A book step with any other kind fails before its job "
        "calls the cluster.",
    )
    scope_ids = fields.One2many("eyrie.scope", "cluster_id", string="Scopes")
    description = fields.Text()

    _sql_constraints = [
        ("name_uniq", "unique(name)", "A cluster with this name already exists."),
    ]

    @api.constrains("kubeconfig")
    def _check_kubeconfig(self):
        for cluster in self.sudo().filtered("kubeconfig"):
            try:
                parse_kubeconfig(cluster.kubeconfig)
            except KubeconfigError as error:
                raise ValidationError(
                    self.env._(
                        "Kubeconfig of cluster %(cluster)s: %(error)s.",
                        cluster=cluster.name,
                        error=error,
                    )
                ) from None

    @api.constrains("allowed_kinds")
    def _check_allowed_kinds(self):
        for cluster in self:
            try:
                parse_allowed_kinds(cluster.allowed_kinds)
            except ValueError as error:
                raise ValidationError(
                    self.env._(
                        "Allowed kinds of cluster %(cluster)s: %(error)s.",
                        cluster=cluster.name,
                        error=error,
                    )
                ) from None

    def _allowed_kinds(self):
        self.ensure_one()
        return parse_allowed_kinds(self.allowed_kinds)

    def write(self, vals):
        if {"kubeconfig", "context", "dry_run"} & vals.keys():
            for cluster in self:
                forget_clients(cluster._client_key())
        return super().write(vals)

    def action_test_connection(self):
        """Show the server version, or the exact reason it cannot be reached."""
        self.ensure_one()
        # Managers only: it connects with the cluster's credentials.
        self.check_access("write")
        if self.dry_run:
            message = self.env._(
                "%(cluster)s is a dry-run cluster: nothing to connect to.",
                cluster=self.name,
            )
        else:
            try:
                version = server_version(*self._client_arguments())
            except (StepError, ClusterConnectionError, TransientStepError) as error:
                raise UserError(
                    self.env._(
                        "Connection to cluster %(cluster)s failed: %(error)s",
                        cluster=self.name,
                        error=error,
                    )
                ) from error
            message = self.env._(
                "Connected to cluster %(cluster)s: Kubernetes %(version)s.",
                cluster=self.name,
                version=version,
            )
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {"message": message, "type": "success", "sticky": False},
        }

    def _client_key(self):
        return (self.env.cr.dbname, self.id)

    def _client_arguments(self):
        cluster = self.sudo()
        return (self.name, self._client_key(), cluster.kubeconfig, cluster.context)

    def _get_executor(self, default_namespace, labels=None):
        """Return the executor that runs book steps on this cluster."""
        self.ensure_one()
        if self.dry_run:
            return DryRunExecutor(self.name, default_namespace, labels)
        client = get_client(*self._client_arguments())
        return KubernetesExecutor(self.name, default_namespace, labels, client)
