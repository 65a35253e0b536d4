from odoo import api, fields, models
from odoo.exceptions import ValidationError

# Fields that move the deployments' pause timers.
SLEEP_TIMER_FIELDS = frozenset(
    {"pause_on_inactivity", "wake_for_scheduled_actions", "scheduled_wake_seconds"}
)


class EyrieScope(models.Model):
    """How the Odoo deployments of a scope sleep and wake."""

    _inherit = "eyrie.scope"

    wake_on_request = fields.Boolean(
        string="Wake on Request",
        tracking=True,
        help="A paused Odoo deployment wakes (resumes) on the first request to "
        "its hostname; the cluster's waker answers meanwhile with a waiting "
        "page. Needs the waker installed on the cluster.",
    )
    pause_on_inactivity = fields.Boolean(
        string="Pause on Inactivity",
        tracking=True,
        help="The pause timer counts from the last request a person made to the "
        "instance (as it reports it), not from the last deploy.",
    )
    wake_for_scheduled_actions = fields.Boolean(
        string="Wake for Scheduled Actions",
        tracking=True,
        help="A paused Odoo deployment wakes when its next scheduled action is "
        "due (as it reported it before its pause), then pauses again.",
    )
    scheduled_wakes_per_day = fields.Integer(
        string="Scheduled Wakes per Day",
        default=4,
        tracking=True,
        help="At most this many wakes for scheduled actions per deployment and "
        "day (UTC).",
    )
    scheduled_wake_seconds = fields.Integer(
        string="Awake for Scheduled Actions",
        default=900,
        tracking=True,
        help="How long an instance woken for its scheduled actions stays up "
        "before it pauses again, unless a person uses it (stored in seconds).",
    )
    database_pause_after_seconds = fields.Integer(
        string="Pause Database After",
        tracking=True,
        help="A paused Odoo's own database keeps running this long, so that a "
        "wake takes seconds; then it is shut down too (stored in seconds). 0: "
        "with the instance.",
    )

    _sql_constraints = [
        (
            "sleep_durations_not_negative",
            (
                "CHECK(scheduled_wakes_per_day >= 0 AND scheduled_wake_seconds >= 0 "
                "AND database_pause_after_seconds >= 0)"
            ),
            "Scheduled wakes and sleep durations cannot be negative.",
        ),
    ]

    @api.constrains(
        "wake_on_request",
        "wake_for_scheduled_actions",
        "pause_on_inactivity",
        "deployment_pause_after_seconds",
        "scheduled_wake_seconds",
        "cluster_id",
    )
    def _check_sleep(self):
        for scope in self:
            if (
                scope.wake_on_request or scope.wake_for_scheduled_actions
            ) and not scope.cluster_id._waker_ready():
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s wakes its deployments, but cluster "
                        "%(cluster)s has no waker: a manager installs it from the "
                        "cluster's form (Install Waker) first.",
                        scope=scope.name,
                        cluster=scope.cluster_id.name,
                    )
                )
            if scope.pause_on_inactivity and not scope.deployment_pause_after_seconds:
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s pauses on inactivity: set 'Pause After' "
                        "(how long without a request), or clear 'Pause on "
                        "Inactivity'.",
                        scope=scope.name,
                    )
                )
            if scope.wake_for_scheduled_actions and scope.scheduled_wake_seconds < 60:
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: 'Awake for Scheduled Actions' must be at "
                        "least 1 minute, or the actions would not have run.",
                        scope=scope.name,
                    )
                )

    def write(self, vals):
        result = super().write(vals)
        if SLEEP_TIMER_FIELDS & vals.keys():
            self._timers_moved()
        return result
