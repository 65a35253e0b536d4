import logging
from datetime import datetime, timedelta

from odoo import api, fields, models

from odoo.addons.eyrie_deployment.models.eyrie_deployment_timers import (
    format_duration,
)

_logger = logging.getLogger(__name__)

# Activity moves the stored pause time (and its timer job) once per this
# long at most: the timer needs minutes, not seconds.
ACTIVITY_RESOLUTION = timedelta(minutes=5)
# A report may be this far ahead of Eyrie's clock; more is clamped.
CLOCK_SKEW = timedelta(minutes=5)
ACTIVITY_INPUTS = frozenset({"last_activity_at", "woken_by"})


def parse_reported_time(value):
    """A reported ``YYYY-MM-DDTHH:MM:SSZ`` as a naive UTC datetime, None for
    null; ``ValueError`` for anything else."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) != 20 or not value.endswith("Z"):
        raise ValueError(f"{value!r} is not a UTC time such as 2026-12-07T18:00:00Z")
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")


class EyrieDeployment(models.Model):
    """What an Odoo instance reports of itself (its activity module): the
    last request a person made, its next scheduled action. The pause timer
    of a scope that pauses on inactivity counts from the first."""

    _inherit = "eyrie.deployment"

    last_activity_at = fields.Datetime(
        readonly=True,
        copy=False,
        help="The last request a person made to the instance, as it reported "
        "it (to within 5 minutes).",
    )
    next_scheduled_action_at = fields.Datetime(
        readonly=True,
        copy=False,
        index="btree_not_null",
        help="When the instance's next scheduled action is due, as it reported "
        "it before it paused.",
    )
    activity_reported_at = fields.Datetime(readonly=True, copy=False)

    @api.model
    def _lifecycle_fields(self):
        return super()._lifecycle_fields() | {
            "last_activity_at",
            "next_scheduled_action_at",
            "activity_reported_at",
        }

    @api.model
    def _job_run_fields(self):
        return super()._job_run_fields() | {
            "last_activity_at",
            "woken_by",
            "wake_refusal",
            "wake_blocked_until",
            "pause_stage",
            "database_pause_at",
        }

    def write(self, vals):
        result = super().write(vals)
        if ACTIVITY_INPUTS & vals.keys():
            self._timers_moved()
        return result

    @api.depends(
        "last_activity_at",
        "woken_by",
        "scope_id.pause_on_inactivity",
        "scope_id.scheduled_wake_seconds",
    )
    def _compute_next_timers(self):
        return super()._compute_next_timers()

    def _timer_times(self, extension_seconds):
        pause_at, drop_at = super()._timer_times(extension_seconds)
        scope = self.scope_id
        if self.repository_state != "deploy":
            return pause_at, drop_at
        if pause_at and scope.pause_on_inactivity and self.last_activity_at:
            idle_since = max(self.deployed_at, self.last_activity_at)
            pause_at = max(
                pause_at,
                idle_since
                + timedelta(seconds=scope.deployment_pause_after_seconds)
                + timedelta(seconds=extension_seconds),
            )
        if self._awake_for_schedule_only():
            back_to_sleep = self.resumed_at + timedelta(
                seconds=scope.scheduled_wake_seconds
            )
            pause_at = min(pause_at or back_to_sleep, back_to_sleep)
        return pause_at, drop_at

    def _awake_for_schedule_only(self):
        """Woken for a scheduled action, and no person used it since."""
        return bool(
            self.woken_by == "schedule"
            and self.resumed_at
            and not (self.last_activity_at and self.last_activity_at > self.resumed_at)
        )

    def _record_activity(self, last_request_at, next_scheduled_action_at):
        """Keep what the instance reported (times as naive UTC); called as
        the system for a call signed with this deployment's key."""
        self.ensure_one()
        now = fields.Datetime.now()
        values = {"activity_reported_at": now}
        if last_request_at:
            last_request_at = min(last_request_at, now)
            if (
                not self.last_activity_at
                or last_request_at - self.last_activity_at >= ACTIVITY_RESOLUTION
            ):
                values["last_activity_at"] = last_request_at
        if self.repository_state == "deploy" and (
            next_scheduled_action_at != self.next_scheduled_action_at
        ):
            values["next_scheduled_action_at"] = next_scheduled_action_at
        # Not tracked: a report a minute would fill the chatter.
        self.with_context(tracking_disable=True).write(values)
        return values

    def _timer_description(self, verb):
        """The pause timer says what it counted from when it was not the
        deploy: the last activity, or a wake for a scheduled action."""
        timer, late = super()._timer_description(verb)
        if verb != "pause":
            return timer, late
        if self._awake_for_schedule_only():
            return self.env._(
                "end of its wake for a scheduled action (%(awake)s after it woke, "
                "nobody used it)",
                awake=format_duration(self.scope_id.scheduled_wake_seconds, self.env),
            ), late
        if (
            self.scope_id.pause_on_inactivity
            and self.last_activity_at
            and self.last_activity_at > self.deployed_at
        ):
            return self.env._(
                "Pause timer of scope %(scope)s (%(after)s after its last activity "
                "at %(activity)s UTC)",
                scope=self.scope_id.name,
                after=format_duration(
                    self.scope_id.deployment_pause_after_seconds, self.env
                ),
                activity=fields.Datetime.to_string(self.last_activity_at),
            ), late
        return timer, late
