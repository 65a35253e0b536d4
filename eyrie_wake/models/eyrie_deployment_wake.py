import logging
import os
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import file_path

from odoo.addons.eyrie_deployment.models.eyrie_deployment import STATES

_logger = logging.getLogger(__name__)

INSTANCE_MODULE = "eyrie_instance"
INSTANCE_ADDONS = "/mnt/eyrie-instance"
ACTIVITY_REPORT_SECONDS = 60
# A wake that failed is not tried again, whoever asks, before this long.
WAKE_RETRY_AFTER = timedelta(minutes=5)


def instance_module_files():
    """{file name: text} of the module mounted into the instances (flat)."""
    folder = file_path(f"eyrie_wake/instance/{INSTANCE_MODULE}")
    files = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and name.endswith(".py"):
            with open(path, encoding="utf-8") as handle:
                files[name] = handle.read()
    return files


class EyrieDeployment(models.Model):
    """An Odoo deployment's route to the waker while it sleeps, and its wake
    on a request the waker reports."""

    _inherit = "eyrie.deployment"

    woken_by = fields.Selection(
        [("request", "A Request"), ("schedule", "A Scheduled Action")],
        readonly=True,
        copy=False,
        help="What woke this deployment last, until it is paused or deployed "
        "again by a person.",
    )
    wake_refusal = fields.Char(
        readonly=True,
        copy=False,
        help="Why the last wake on a request was refused, as the waiting page "
        "showed it.",
    )
    wake_blocked_until = fields.Datetime(
        readonly=True,
        copy=False,
        help="After a failed wake, the next request wakes it from this time on.",
    )

    @api.model
    def _lifecycle_fields(self):
        return super()._lifecycle_fields() | {
            "woken_by",
            "wake_refusal",
            "wake_blocked_until",
        }

    # ------------------------------------------------------------------
    # What the books see
    # ------------------------------------------------------------------

    def _odoo_values(self, need_hostname=True):
        values = super()._odoo_values(need_hostname=need_hostname)
        cluster = self.scope_id.cluster_id
        if cluster._waker_ready():
            namespace = cluster.waker_namespace
            values["waker"] = {
                "namespace": namespace,
                "service": "waker",
                "port": 80,
                "host": f"waker.{namespace}.svc.cluster.local",
            }
            values["instance_module"] = INSTANCE_MODULE
            values["activity_url"] = f"{cluster._waker_url()}/eyrie/activity"
            values["activity_report_seconds"] = ACTIVITY_REPORT_SECONDS
        return values

    def _odoo_code_values(self, values, release=None, served=None):
        values = super()._odoo_code_values(values, release=release, served=served)
        if values.get("instance_module"):
            # Only the Odoo container mounts it; the others skip the folder.
            values["addons_path"] = f"{values['addons_path']},{INSTANCE_ADDONS}"
        return values

    def _template_context(self, values=None):
        context = super()._template_context(values)
        if context["values"].get("instance_module"):
            # The module's code, from this addon: not a value of the job.
            context["instance_module_files"] = instance_module_files()
        return context

    def _odoo_template_secrets(self):
        secrets_ = super()._odoo_template_secrets()
        cluster = self.scope_id.cluster_id
        if cluster._waker_ready():
            secrets_["activity_key"] = cluster._activity_key(self)
        return secrets_

    def _odoo_foreign_objects(self):
        """The ReferenceGrant that lets this deployment's HTTPRoute point to
        the waker, in the waker's namespace."""
        foreign = set(super()._odoo_foreign_objects())
        cluster = self.scope_id.cluster_id
        if cluster._waker_ready():
            foreign.add(
                (
                    cluster.waker_namespace,
                    "gateway.networking.k8s.io/ReferenceGrant",
                    f"from-{self.namespace}",
                )
            )
        return foreign

    # ------------------------------------------------------------------
    # Wake on request
    # ------------------------------------------------------------------

    def _wake_on_request(self, host, kind):
        """What the waker shows for a request to this deployment: (state,
        message), after resuming it if it sleeps and may wake. Runs as the
        system for a signed call: the checks are the lifecycle's own."""
        self.ensure_one()
        self._lock_rows()
        self.invalidate_recordset()
        running = self.active_job_id
        if running:
            return "waking", self._waking_message(running)
        if self.repository_state == "deploy" and self.state == "deploy":
            return "serving", self.env._("It is ready.")
        refusal = self._wake_refusal_reason()
        if refusal:
            return "refused", refusal
        try:
            with self.env.cr.savepoint():
                self._run_action_jobs("deploy", trigger="wake")
        except UserError as error:
            self._refuse_wake(str(error))
            return "refused", str(error)
        self._set_lifecycle(woken_by="request", wake_refusal=False)
        self._message_log(
            body=self.env._(
                "Woken by a request to %(host)s (%(kind)s).", host=host, kind=kind
            )
        )
        _logger.info("Deployment %s woken by a request to %s", self.id, host)
        return "waking", self._waking_message(self.active_job_id)

    def _waking_message(self, job):
        if job.action in ("deploy", "initialize"):
            return self.env._("It is starting; this page reloads by itself.")
        return self.env._(
            "It is finishing a %(action)s; it starts right after.", action=job.action
        )

    def _wake_refusal_reason(self):
        """Why this deployment does not wake on a request now, for the
        waiting page (its visitors read it), or None."""
        if self.deployment_type != "odoo" or self.repository_state != "pause":
            return self.env._(
                "This instance is not asleep (%(state)s); it does not wake on a "
                "request.",
                state=dict(STATES)[self.state],
            )
        if not self.scope_id.wake_on_request:
            return self.env._(
                "This instance is asleep and does not wake by itself: its owner "
                "resumes it in Eyrie."
            )
        if self.wake_blocked_until and self.wake_blocked_until > fields.Datetime.now():
            # The job's error is for its owner, in Eyrie, not for visitors.
            return self.env._(
                "Its last wake failed; it tries again after %(when)s UTC. Its "
                "owner sees why in Eyrie.",
                when=fields.Datetime.to_string(self.wake_blocked_until),
            )
        return None

    def _refuse_wake(self, reason):
        if reason != self.wake_refusal:
            self._message_log(
                body=self.env._(
                    "A request could not wake it: %(reason)s", reason=reason
                )
            )
        self._set_lifecycle(wake_refusal=reason)

    def _on_deploy_failed(self, job):
        result = super()._on_deploy_failed(job)
        if job.trigger in ("wake", "schedule"):
            # A failing resume is not retried at every request.
            self._set_lifecycle(
                wake_blocked_until=fields.Datetime.now() + WAKE_RETRY_AFTER
            )
        return result

    def _on_deploy_done(self, job):
        result = super()._on_deploy_done(job)
        self._set_lifecycle(wake_blocked_until=False, wake_refusal=False)
        return result

    def _run_action_jobs(self, verb, trigger, **arguments):
        jobs = super()._run_action_jobs(verb, trigger, **arguments)
        if trigger == "user" and verb == "deploy":
            # A person deployed it: it is no longer up for a wake's sake.
            for deployment in self.filtered("woken_by"):
                deployment._set_lifecycle(woken_by=False)
        return jobs
