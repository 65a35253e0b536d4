import secrets
import urllib.parse

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from odoo.addons.eyrie_deployment.tools.executor import (
    MANAGED_BY_LABEL,
    ClusterConnectionError,
    StepError,
    TransientStepError,
)
from odoo.addons.eyrie_deployment.tools.values import DNS_LABEL_RE, check_values

from ..tools.signing import deployment_key
from ..tools.waker_objects import WAKER_LABEL, waker_objects


class EyrieCluster(models.Model):
    """A cluster's waker: where the routes of its paused Odoo deployments
    point, and the key it and the instances sign their calls with."""

    _inherit = "eyrie.cluster"

    waker_state = fields.Selection(
        [("none", "Not Installed"), ("installed", "Installed")],
        string="Waker",
        default="none",
        required=True,
        readonly=True,
        copy=False,
        tracking=True,
    )
    waker_namespace = fields.Char(
        default="eyrie-waker",
        required=True,
        tracking=True,
        help="The namespace Eyrie creates for the waker. It must not exist, or "
        "be the one Eyrie created.",
    )
    waker_image = fields.Char(
        default="python:3.13-alpine",
        required=True,
        tracking=True,
        help="The image that runs the waker's script (the official Python image).",
    )
    waker_replicas = fields.Integer(default=2, required=True, tracking=True)
    waker_eyrie_url = fields.Char(
        string="Eyrie URL for the Cluster",
        tracking=True,
        help="Where the pods of this cluster reach this Eyrie (https, or http "
        "inside a private network): the waker and the instances call "
        "/eyrie/wake and /eyrie/activity there. Empty: the web.base.url.",
    )
    waker_key = fields.Char(
        groups="eyrie_deployment.group_eyrie_manager",
        copy=False,
        readonly=True,
        help="The key the waker signs its calls with (and the instances, with a "
        "key derived from it per deployment).",
    )

    _sql_constraints = [
        (
            "waker_replicas_positive",
            "CHECK(waker_replicas > 0)",
            "The waker needs at least one replica.",
        ),
    ]

    @api.constrains("waker_namespace", "waker_image", "waker_eyrie_url")
    def _check_waker(self):
        for cluster in self:
            if not DNS_LABEL_RE.match(cluster.waker_namespace or ""):
                raise ValidationError(
                    self.env._(
                        "Cluster %(cluster)s: 'Waker Namespace' must be a Kubernetes "
                        "name of lower-case letters, digits and '-'.",
                        cluster=cluster.name,
                    )
                )
            try:
                check_values({"image": cluster.waker_image})
            except ValueError as error:
                raise ValidationError(
                    self.env._(
                        "Cluster %(cluster)s: 'Waker Image': %(error)s.",
                        cluster=cluster.name,
                        error=error,
                    )
                ) from None
            url = urllib.parse.urlsplit(cluster.waker_eyrie_url or "https://x")
            if url.scheme not in ("http", "https") or not url.hostname or url.query:
                raise ValidationError(
                    self.env._(
                        "Cluster %(cluster)s: 'Eyrie URL for the Cluster' must be an "
                        "http(s) URL such as https://eyrie.example.com.",
                        cluster=cluster.name,
                    )
                )

    def _waker_url(self):
        self.ensure_one()
        base = self.waker_eyrie_url or self.env["ir.config_parameter"].sudo().get_param(
            "web.base.url"
        )  # a system parameter: read only
        return (base or "").rstrip("/")

    def _waker_ready(self):
        """Whether paused instances of this cluster are routed to its waker."""
        self.ensure_one()
        return self.waker_state == "installed"

    def _activity_key(self, deployment):
        # The key is a manager-only field; the instance gets its own key only.
        return deployment_key(self.sudo().waker_key, deployment.id)

    def action_install_waker(self):
        """Install (or update) the waker: its objects on the cluster, from
        this version's script; the key is made once."""
        self.ensure_one()
        self.check_access("write")  # managers only: it writes on the cluster
        # The key is a manager-only field, checked just above.
        cluster = self.sudo()
        if not cluster.waker_key:
            cluster.waker_key = secrets.token_hex(32)
        objects = waker_objects(
            self.id,
            self.waker_namespace,
            self.waker_image,
            self.waker_replicas,
            self._waker_url(),
            cluster.waker_key,
        )
        results = self._waker_run("apply", objects)
        self.waker_state = "installed"
        self.message_post(
            body=self.env._(
                "Waker installed in namespace %(namespace)s by %(user)s (%(count)s "
                "replicas): %(results)s",
                namespace=self.waker_namespace,
                user=self.env.user.name,
                count=self.waker_replicas,
                results="; ".join(results),
            )
        )
        return True

    def action_remove_waker(self):
        """Remove the waker's namespace. Paused instances keep their route to
        it until they are resumed: refused while any deployment sleeps."""
        self.ensure_one()
        self.check_access("write")
        sleeping = (
            self.env["eyrie.deployment"]
            .sudo()  # every deployment of the cluster, whoever's
            .search_count(
                [
                    ("scope_id.cluster_id", "=", self.id),
                    ("repository_state", "=", "pause"),
                    ("deployment_type", "=", "odoo"),
                ]
            )
        )
        if sleeping:
            raise UserError(
                self.env._(
                    "Cluster %(cluster)s has %(count)s paused Odoo deployments "
                    "whose route points to the waker: resume or drop them first.",
                    cluster=self.name,
                    count=sleeping,
                )
            )
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.waker_namespace},
        }
        results = self._waker_run("delete", [namespace])
        self.waker_state = "none"
        self.message_post(
            body=self.env._(
                "Waker removed by %(user)s: %(results)s",
                user=self.env.user.name,
                results="; ".join(results),
            )
        )
        return True

    def _waker_run(self, verb, objects):
        """Run ``verb`` on the waker's objects, in its namespace only, after
        checking that namespace is the waker's (or does not exist)."""
        labels = {MANAGED_BY_LABEL: "eyrie", WAKER_LABEL: str(self.id)}
        executor = self._get_executor(self.waker_namespace, labels)
        try:
            self._check_waker_namespace(executor)
            results = executor.run_step(verb, objects)
        except (StepError, ClusterConnectionError, TransientStepError) as error:
            raise UserError(
                self.env._(
                    "The waker of cluster %(cluster)s could not be changed: %(error)s",
                    cluster=self.name,
                    error=error,
                )
            ) from error
        return results

    def _check_waker_namespace(self, executor):
        client = getattr(executor, "client", None)
        if client is None:  # a dry run reads nothing
            return
        namespace = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": self.waker_namespace},
        }
        resource = client.resources.get(api_version="v1", kind="Namespace")
        live = executor._read_live(resource, self.waker_namespace, None, namespace)
        labels = ((live or {}).get("metadata") or {}).get("labels") or {}
        if live is not None and labels.get(WAKER_LABEL) != str(self.id):
            raise StepError(
                f"namespace {self.waker_namespace} exists and is not the waker "
                f"namespace Eyrie created for this cluster (no {WAKER_LABEL}="
                f"{self.id} label): choose another 'Waker Namespace'"
            )
