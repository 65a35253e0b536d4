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
    _inherit = ["mail.thread", "eyrie.cached.settings.mixin"]
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
    job_capacity = fields.Integer(
        string="Parallel Jobs",
        default=4,
        required=True,
        tracking=True,
        help="How many jobs run on this cluster at once, across every Odoo "
        "server: the capacity of its queue_job channel. The others wait their "
        "turn in the queue.",
    )
    job_channel_id = fields.Many2one(
        "queue.job.channel",
        readonly=True,
        copy=False,
        groups="eyrie_deployment.group_eyrie_manager",
        help="The queue_job channel of this cluster's jobs (root.eyrie.cluster_<id>).",
    )
    scope_ids = fields.One2many("eyrie.scope", "cluster_id", string="Scopes")
    description = fields.Text()

    _sql_constraints = [
        ("name_uniq", "unique(name)", "A cluster with this name already exists."),
        (
            "job_capacity_positive",
            "CHECK(job_capacity > 0)",
            (
                "Parallel Jobs must be at least 1: with 0 no job of the cluster would "
                "ever run."
            ),
        ),
    ]

    @api.constrains("kubeconfig")
    def _check_kubeconfig(self):
        # The kubeconfig is a manager-only field.
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

    @api.constrains("job_capacity")
    def _check_job_capacity(self):
        for cluster in self:
            if cluster.job_capacity < 1:
                raise ValidationError(
                    self.env._(
                        "Parallel Jobs of cluster %(cluster)s is %(capacity)s: set at "
                        "least 1, or no job of the cluster would ever run.",
                        cluster=cluster.name,
                        capacity=cluster.job_capacity,
                    )
                )

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

    @api.model_create_multi
    def create(self, vals_list):
        clusters = super().create(vals_list)
        clusters._sync_job_channels()
        return clusters

    def write(self, vals):
        if {"kubeconfig", "context", "dry_run"} & vals.keys():
            for cluster in self:
                forget_clients(cluster._client_key())
        result = super().write(vals)
        if "job_capacity" in vals:
            self._sync_job_channels()
        return result

    def unlink(self):
        # The channel is a manager-only field; every job needs its name.
        channels = self.sudo().job_channel_id
        result = super().unlink()
        channels.unlink()
        return result

    def _sync_job_channels(self):
        """Each cluster's queue_job channel, root.eyrie.cluster_<id>, with
        the cluster's capacity (queue_job's runner reloads it)."""
        parent = self.env.ref("eyrie_deployment.queue_job_channel_eyrie")
        # Channels are queue_job's records, kept in step by the system.
        for cluster in self.sudo():
            if cluster.job_channel_id:
                cluster.job_channel_id.capacity = cluster.job_capacity
                continue
            # queue_job's records are its managers'; Eyrie handles its own.
            cluster.job_channel_id = (
                self.env["queue.job.channel"]
                .sudo()
                .create(
                    {
                        "name": f"cluster_{cluster.id}",
                        "parent_id": parent.id,
                        "capacity": cluster.job_capacity,
                    }
                )
            )

    def _job_channel_name(self):
        self.ensure_one()
        # The channel is a manager-only field; every job needs its name.
        channel = self.sudo().job_channel_id
        if not channel:
            self._sync_job_channels()
            # The channel is a manager-only field; every job needs its name.
            channel = self.sudo().job_channel_id
        return channel.complete_name

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
        # The cluster's credentials are manager-only fields.
        cluster = self.sudo()
        return (self.name, self._client_key(), cluster.kubeconfig, cluster.context)

    def _get_client(self):
        """The cached dynamic client of this (real) cluster."""
        self.ensure_one()
        return get_client(*self._client_arguments())

    def _get_executor(self, default_namespace, labels=None):
        """Return the executor that runs book steps on this cluster."""
        self.ensure_one()
        if self.dry_run:
            return DryRunExecutor(self.name, default_namespace, labels)
        return KubernetesExecutor(
            self.name, default_namespace, labels, self._get_client()
        )
