from odoo import api, fields, models
from odoo.exceptions import UserError

from ..tools.executor import (
    ClusterConnectionError,
    StepError,
    TransientStepError,
)
from ..tools.kubernetes_executor import read_logs
from ..tools.scrub import Scrubber, secret_strings


class EyrieDeployment(models.Model):
    """The Logs button: what the deployment's pods printed last and its
    namespace's recent events, read from the cluster when asked and never
    stored (not in the database, not in Odoo's log)."""

    _inherit = "eyrie.deployment"

    cluster_logs = fields.Text(
        string="Logs",
        compute="_compute_cluster_logs",
        help="Read from the cluster each time it is shown; never stored.",
    )

    @api.depends_context("eyrie_read_logs")
    def _compute_cluster_logs(self):
        # Only the Logs dialog reads the cluster: a read() of every field
        # (XML-RPC, exports) must not call it for each record.
        if not self.env.context.get("eyrie_read_logs"):
            self.cluster_logs = self.env._("Use the Logs button to read them.")
            return
        for deployment in self:
            try:
                deployment.cluster_logs = deployment._format_logs(
                    deployment.read_logs()
                )
            except UserError as error:
                deployment.cluster_logs = error.args[0]

    def action_view_logs(self):
        self.ensure_one()
        self._check_logs_access()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Logs of %s", self.name),
            "res_model": "eyrie.deployment",
            "res_id": self.id,
            "view_mode": "form",
            "views": [
                (
                    self.env.ref("eyrie_deployment.eyrie_deployment_view_form_logs").id,
                    "form",
                )
            ],
            "target": "new",
            "context": {"eyrie_read_logs": True},
        }

    def read_logs(self, tail_lines=200):
        """{"pods": [{"name", "phase", "containers": [{"name", "log"}]}],
        "events": [{"time", "type", "reason", "object", "message"}]}: the
        last ``tail_lines`` lines of every container of the pods in the
        deployment's namespace and the namespace's last 50 events, every
        secret of the deployment masked. Only from the namespace Eyrie
        created for it (its ownership label), for its users and managers."""
        self.ensure_one()
        self._check_logs_access()
        if not isinstance(tail_lines, int) or not 1 <= tail_lines <= 5000:
            raise UserError(
                self.env._("tail_lines must be a whole number from 1 to 5000.")
            )
        if self.repository_state == "draft":
            raise UserError(
                self.env._(
                    "Deployment %s is a draft: it has nothing on its cluster yet.",
                    self.name,
                )
            )
        # The cluster's credentials are manager-only fields.
        cluster = self.sudo().cluster_id
        if cluster.dry_run:
            raise UserError(
                self.env._(
                    "Cluster %s is a dry-run cluster: it runs no pods.", cluster.name
                )
            )
        try:
            # Only the namespace Eyrie created for this very deployment: a
            # namespace of that name may be someone else's on the cluster.
            cluster._get_executor(self.namespace).check_namespace_owners(
                {self.namespace: self.id}
            )
            found = read_logs(
                cluster._get_client(), self.namespace, tail_lines=tail_lines
            )
        except (StepError, ClusterConnectionError, TransientStepError) as error:
            raise UserError(
                self.env._(
                    "The logs of %(name)s could not be read: %(error)s",
                    name=self.name,
                    error=error,
                )
            ) from error
        return self._scrubbed_logs(found)

    def _scrubbed_logs(self, found):
        """``found`` with every secret of the deployment masked: a container
        may print a generated password or the scope's bucket keys."""
        scrub = Scrubber(secret_strings(self._template_secrets()))
        for pod in found["pods"]:
            for container in pod["containers"]:
                container["log"] = scrub(container["log"])
        for event in found["events"]:
            event["message"] = scrub(event["message"])
        return found

    def _check_logs_access(self):
        # Logs may show what the instance's users did: its own users (those
        # who may change it) and managers, like the lifecycle actions.
        self._check_can_act(self.env._("see the logs of"))

    def _format_logs(self, found):
        lines = []
        for pod in found["pods"]:
            for container in pod["containers"]:
                lines.append(
                    f"==> pod {pod['name']} ({pod['phase']}), "
                    f"container {container['name']} <=="
                )
                lines.append(container["log"].rstrip("\n"))
                lines.append("")
        if not found["pods"]:
            lines += [self.env._("No pod of this deployment is running."), ""]
        lines.append(self.env._("==> events of namespace %s <==", self.namespace))
        lines.extend(
            f"{event['time']} {event['type']} {event['reason']} "
            f"{event['object']}: {event['message']}"
            for event in found["events"]
        )
        return "\n".join(lines)
