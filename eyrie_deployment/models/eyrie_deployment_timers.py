from datetime import timedelta

import pytz

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools.misc import format_datetime


def _relative(delta, env):
    """``in 2 h`` / ``2 h ago``: a rough duration for people."""
    seconds = delta.total_seconds()
    amount = abs(seconds)
    if amount < 3600:
        text = env._("%s min", max(1, round(amount / 60)))
    elif amount < 48 * 3600:
        text = env._("%s h", round(amount / 3600))
    else:
        text = env._("%s d", round(amount / 86400))
    return env._("in %s", text) if seconds >= 0 else env._("%s ago", text)


def format_duration(seconds, env):
    """``4 h``, ``10 min``, ``2 days``, ``1 h 30 min``: a scope's timer
    setting for people, exact to the second."""
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, rest = divmod(rest, 60)
    parts = []
    if days:
        parts.append(env._("%s day", days) if days == 1 else env._("%s days", days))
    if hours:
        parts.append(env._("%s h", hours))
    if minutes:
        parts.append(env._("%s min", minutes))
    if rest or not parts:
        parts.append(env._("%s s", rest))
    return " ".join(parts)


def _reader_tz(env):
    """The reader's timezone: the context's, the user's, else UTC."""
    tz_name = env.context.get("tz") or env.user.tz
    return tz_name if tz_name in pytz.all_timezones_set else "UTC"


def _is_local_today(value, env):
    tz = pytz.timezone(_reader_tz(env))

    def local_day(moment):
        return pytz.utc.localize(moment).astimezone(tz).date()

    return local_day(value) == local_day(fields.Datetime.now())


def format_local_time(value, env):
    """``18:26`` today, ``Dec 9 18:26`` another day: a UTC ``value`` in the
    reader's timezone."""
    pattern = "HH:mm" if _is_local_today(value, env) else "MMM d HH:mm"
    return format_datetime(env, value, tz=_reader_tz(env), dt_format=pattern)


def _at_local_time(value, env):
    """``at 18:26`` today, ``on Dec 9 18:26`` another day."""
    text = format_local_time(value, env)
    if _is_local_today(value, env):
        return env._("at %s", text)
    return env._("on %s", text)


class EyrieDeployment(models.Model):
    """The scope's pause and drop timers as each deployment sees them:
    when they fire, the warnings before a drop, Keep Awake."""

    _inherit = "eyrie.deployment"

    next_pause_at = fields.Datetime(
        compute="_compute_next_timers",
        store=True,
        index="btree_not_null",
        help="When the scope's pause timer pauses this deployment.",
    )

    next_drop_at = fields.Datetime(
        compute="_compute_next_timers",
        store=True,
        index="btree_not_null",
        help="When the scope's drop timer drops this deployment.",
    )

    is_pause_due = fields.Boolean(
        string="Due for Pause",
        compute="_compute_is_due",
        search="_search_is_pause_due",
    )

    is_drop_due = fields.Boolean(
        string="Due for Drop",
        compute="_compute_is_due",
        search="_search_is_drop_due",
    )

    timer_blocked_until = fields.Datetime(
        readonly=True,
        copy=False,
        help="A failed automatic action is not tried again before this time.",
    )

    timer_refusal = fields.Char(
        string="Timer Refused",
        readonly=True,
        copy=False,
        help="Why the timer's last automatic pause or drop was refused or "
        "failed; cleared once an action succeeds, at the next deploy, or when "
        "the timer is no longer due.",
    )

    timer_extension_seconds = fields.Integer(
        readonly=True,
        copy=False,
        help="How long Keep Awake postponed the timers since the last deploy.",
    )

    resumed_at = fields.Datetime(readonly=True, copy=False)

    timer_summary = fields.Char(
        string="Timers",
        compute="_compute_timer_summary",
        help="When the scope's timers pause and drop this deployment.",
    )

    drop_warned_for = fields.Datetime(
        readonly=True,
        copy=False,
        help="The drop time the warnings in 'drop_warned_hours' were sent for.",
    )

    drop_warned_hours = fields.Char(readonly=True, copy=False)

    drop_warning_due_at = fields.Datetime(
        compute="_compute_drop_warning_due_at",
        store=True,
        index="btree_not_null",
        help="When the next warning before drop is due.",
    )

    # ------------------------------------------------------------------
    # Computes
    # ------------------------------------------------------------------

    @api.model
    def _job_run_fields(self):
        # A deploy or a pause moves the timers: what they are computed from.
        return super()._job_run_fields() | {
            "resumed_at",
            "next_pause_at",
            "next_drop_at",
            "drop_warning_due_at",
            "drop_warned_for",
            "timer_blocked_until",
            "timer_extension_seconds",
            "timer_refusal",
        }

    @api.depends(
        "repository_state",
        "deployed_at",
        "resumed_at",
        "timer_extension_seconds",
        "drop_protected",
        "scope_id.allow_drop",
        "scope_id.deployment_pause_after_seconds",
        "scope_id.deployment_drop_after_seconds",
        "scope_id.resume_grace_seconds",
    )
    def _compute_next_timers(self):
        for deployment in self:
            pause_at, drop_at = deployment._timer_times(
                deployment.timer_extension_seconds
            )
            deployment.next_pause_at = pause_at
            deployment.next_drop_at = drop_at

    def _timer_times(self, extension_seconds):
        """(pause at, drop at) with the timers postponed by
        ``extension_seconds``; False where a timer does not apply."""
        self.ensure_one()
        scope = self.scope_id
        deployed_at = self.deployed_at
        if not deployed_at:
            return False, False
        extension = timedelta(seconds=extension_seconds)
        pause_after = scope.deployment_pause_after_seconds
        drop_after = scope.deployment_drop_after_seconds
        pause_at = drop_at = False
        if pause_after > 0 and self.repository_state == "deploy":
            pause_at = deployed_at + timedelta(seconds=pause_after) + extension
            if self.resumed_at and scope.resume_grace_seconds:
                grace_end = self.resumed_at + timedelta(
                    seconds=scope.resume_grace_seconds
                )
                pause_at = max(pause_at, grace_end)
        if (
            drop_after > 0
            and scope.allow_drop
            and not self.drop_protected
            and self.repository_state in ("deploy", "pause")
        ):
            drop_at = deployed_at + timedelta(seconds=drop_after) + extension
        return pause_at, drop_at

    @api.depends(
        "next_pause_at", "next_drop_at", "timer_refusal", "timer_blocked_until"
    )
    @api.depends_context("tz", "uid")
    def _compute_timer_summary(self):
        for deployment in self:
            if deployment.timer_refusal:
                deployment.timer_summary = deployment._refused_timer_summary()
            else:
                deployment.timer_summary = deployment._running_timers_summary()

    def _running_timers_summary(self):
        """``pauses in 2 h · drops in 7 d``"""
        now = fields.Datetime.now()
        parts = []
        if self.next_pause_at:
            parts.append(
                self.env._("pauses %s", _relative(self.next_pause_at - now, self.env))
            )
        if self.next_drop_at:
            parts.append(
                self.env._("drops %s", _relative(self.next_drop_at - now, self.env))
            )
        return " · ".join(parts)

    def _refused_timer_summary(self):
        """``pause refused: <why>; next try 18:26``: a due time long past
        tells nothing; what blocks the timer and when it tries again does."""
        if not self.timer_blocked_until:
            return self.timer_refusal
        return self.env._(
            "%(refusal)s; next try %(when)s",
            refusal=self.timer_refusal,
            when=format_local_time(self.timer_blocked_until, self.env),
        )

    @api.depends(
        "next_drop_at",
        "drop_warned_for",
        "drop_warned_hours",
        "scope_id.drop_warning_hours",
    )
    def _compute_drop_warning_due_at(self):
        for deployment in self:
            pending = deployment._pending_drop_warnings()
            deployment.drop_warning_due_at = (
                deployment.next_drop_at - pending[0] if pending else False
            )

    def _pending_drop_warnings(self):
        """Lead times (longest first) whose warning was not sent for the
        current drop time."""
        self.ensure_one()
        if not self.next_drop_at:
            return []
        sent = self._sent_drop_warnings()
        return [
            lead for lead in self.scope_id._drop_warning_leads() if lead not in sent
        ]

    def _sent_drop_warnings(self):
        """Lead times already warned of for the current drop time."""
        if self.drop_warned_for != self.next_drop_at or not self.drop_warned_hours:
            return set()
        return {
            timedelta(hours=float(hours)) for hours in self.drop_warned_hours.split(",")
        }

    @api.depends("next_pause_at", "next_drop_at")
    def _compute_is_due(self):
        now = fields.Datetime.now()
        for deployment in self:
            deployment.is_pause_due = bool(
                deployment.next_pause_at and deployment.next_pause_at <= now
            )
            deployment.is_drop_due = bool(
                deployment.next_drop_at and deployment.next_drop_at <= now
            )

    def _search_is_pause_due(self, operator, value):
        return self._search_due("next_pause_at", operator, value)

    def _search_is_drop_due(self, operator, value):
        return self._search_due("next_drop_at", operator, value)

    def _search_due(self, field_name, operator, value):
        if operator not in ("=", "!=") or not isinstance(value, bool):
            raise UserError(self.env._("Unsupported search on a due-timer filter."))
        due = [(field_name, "<=", fields.Datetime.now())]
        if (operator == "=") == value:
            return due
        return ["|", (field_name, "=", False), (field_name, ">", fields.Datetime.now())]

    def _earliest_timer(self):
        times = [self.next_pause_at, self.next_drop_at, self.drop_warning_due_at]
        return min(filter(None, times), default=None)

    # ------------------------------------------------------------------
    # Keep Awake
    # ------------------------------------------------------------------

    def action_keep_awake(self):
        """Postpone the pause and drop timers by the scope's keep-awake
        extension, never beyond the scope's maximum lifetime."""
        self._check_can_act(self.env._("keep awake"))
        for deployment in self:
            deployment._keep_awake()
        # The form reloads once the notification is shown (``next``): it
        # shows the new times.
        return {
            "type": "ir.actions.client",
            "tag": "display_notification",
            "params": {
                "title": self.env._("Kept awake"),
                "message": "; ".join(self.mapped(lambda d: d._kept_awake_notice())),
                "type": "success",
                "next": {"type": "ir.actions.act_window_close"},
            },
        }

    def _keep_awake(self):
        self.ensure_one()
        scope = self.scope_id
        if not self.next_pause_at and not self.next_drop_at:
            raise UserError(
                self.env._(
                    "Deployment %(name)s has no pause or drop timer running; there "
                    "is nothing to postpone.",
                    name=self.name,
                )
            )
        if not scope.keep_awake_seconds:
            raise UserError(
                self.env._(
                    "Scope %(scope)s does not allow Keep Awake: a manager can set its "
                    "'Keep Awake Extension'.",
                    scope=scope.name,
                )
            )
        current = self.timer_extension_seconds
        extension = self._capped_extension(current + scope.keep_awake_seconds)
        if extension <= current:
            raise UserError(
                self.env._(
                    "Deployment %(name)s reached the maximum lifetime of scope "
                    "%(scope)s; its timers cannot be postponed any more.",
                    name=self.name,
                    scope=scope.name,
                )
            )
        self._set_lifecycle(timer_extension_seconds=extension)
        self._message_log(
            body=self.env._(
                "Kept awake by %(user)s for %(duration)s: pause %(pause)s, drop "
                "%(drop)s (UTC).",
                user=self.env.user.name,
                duration=format_duration(extension - current, self.env),
                pause=fields.Datetime.to_string(self.next_pause_at) or "-",
                drop=fields.Datetime.to_string(self.next_drop_at) or "-",
            )
        )

    def _kept_awake_notice(self):
        """``acme kept awake: pauses at 18:26, drops on Dec 9 18:26``, in the
        user's timezone."""
        times = []
        if self.next_pause_at:
            times.append(
                self.env._("pauses %s", _at_local_time(self.next_pause_at, self.env))
            )
        if self.next_drop_at:
            times.append(
                self.env._("drops %s", _at_local_time(self.next_drop_at, self.env))
            )
        return self.env._(
            "%(name)s kept awake: %(times)s", name=self.name, times=", ".join(times)
        )

    def _capped_extension(self, extension):
        """``extension`` reduced so that no timer goes past the scope's
        maximum lifetime, counted from the deployment's creation."""
        lifetime = self.scope_id.max_lifetime_seconds
        if not lifetime:
            return extension
        limit = self.create_date + timedelta(seconds=lifetime)
        latest = max(filter(None, self._timer_times(extension)))
        if latest <= limit:
            return extension
        return max(0, extension - int((latest - limit).total_seconds()))
