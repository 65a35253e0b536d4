import contextlib
import re
from datetime import timedelta

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import split_every

from ..tools.values import ValuesError, check_hostname, check_values, parse_json_object

BOOK_ACTIONS = ("initialize", "deploy", "pause", "drop", "backup", "restore")
# Fields that move the deployments' timers.
TIMER_FIELDS = frozenset(
    {
        "allow_drop",
        "deployment_pause_after_seconds",
        "deployment_drop_after_seconds",
        "resume_grace_seconds",
        "drop_warning_hours",
    }
)
# A change of the timers that moves more deployments than this moves them in
# queue jobs of this many each, not in the manager's request.
TIMERS_MOVED_INLINE = 200
TIMERS_MOVED_JOB_SIZE = 1000
VALUE_KEY_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
LEAD_TIMES_RE = re.compile(r"^\s*\d+(\.\d+)?\s*(,\s*\d+(\.\d+)?\s*)*$")


class EyrieScope(models.Model):
    """A group of deployments sharing a cluster, default books and timers."""

    _name = "eyrie.scope"
    _description = "Eyrie Scope"
    _inherit = ["mail.thread", "eyrie.cached.settings.mixin"]
    _order = "name, id"

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        index=True,
        ondelete="restrict",
        tracking=True,
        default=lambda self: self.env.company,
    )
    cluster_id = fields.Many2one(
        "eyrie.cluster",
        required=True,
        ondelete="restrict",
        tracking=True,
        default=lambda self: self.env.ref(
            "eyrie_deployment.eyrie_cluster_dry_run", raise_if_not_found=False
        ),
    )
    allow_drop = fields.Boolean(
        tracking=True,
        help="Deployments of this scope may be dropped, by hand or by the drop timer.",
    )
    deployment_pause_after_seconds = fields.Integer(
        string="Pause After",
        tracking=True,
        help="Pause a deployment this long after its last successful deploy "
        "(stored in seconds). 0 means never.",
    )
    deployment_drop_after_seconds = fields.Integer(
        string="Drop After",
        tracking=True,
        help="Drop a deployment this long after its last successful deploy, if "
        "the scope allows drop (stored in seconds). 0 means never.",
    )
    domain = fields.Char(
        tracking=True,
        help="DNS domain of the deployments' hostnames: an Odoo deployment "
        "'acme' in namespace 'acme' is served at acme.<domain> unless its "
        "values set 'hostname'.",
    )
    values = fields.Text(
        string="Default Values",
        default="{}",
        tracking=True,
        help="JSON object of default values per deployment type, for example "
        '{"odoo": {"image": "odoo:18.0", "storage": "20Gi"}}. A deployment\'s '
        "own values override them.",
    )
    keep_awake_seconds = fields.Integer(
        string="Keep Awake Extension",
        default=4 * 3600,
        tracking=True,
        help="Keep Awake postpones a deployment's pause and drop timers by this "
        "long (stored in seconds). 0 disables Keep Awake.",
    )
    max_lifetime_seconds = fields.Integer(
        string="Maximum Lifetime",
        tracking=True,
        help="Keep Awake never postpones a timer beyond this long after the "
        "deployment was created (stored in seconds). 0 means no limit.",
    )
    resume_grace_seconds = fields.Integer(
        string="Grace After Resume",
        tracking=True,
        help="A resumed deployment is not paused by the timer within this long "
        "after it was resumed (stored in seconds). 0 means no grace.",
    )
    drop_warning_hours = fields.Char(
        string="Drop Warnings (hours before)",
        default="48, 2",
        tracking=True,
        help="Comma-separated lead times in hours: the responsible user of a "
        "deployment gets a warning activity this long before its drop timer "
        "fires, once each. Empty: no warnings.",
    )
    deployment_initialize_book_id = fields.Many2one(
        "eyrie.deployment.book",
        string="Initialize Book",
        ondelete="restrict",
        help="Empty: each deployment type uses its shipped default book.",
    )
    deployment_deploy_book_id = fields.Many2one(
        "eyrie.deployment.book", string="Deploy Book", ondelete="restrict"
    )
    deployment_pause_book_id = fields.Many2one(
        "eyrie.deployment.book", string="Pause Book", ondelete="restrict"
    )
    deployment_drop_book_id = fields.Many2one(
        "eyrie.deployment.book", string="Drop Book", ondelete="restrict"
    )
    deployment_backup_book_id = fields.Many2one(
        "eyrie.deployment.book", string="Backup Book", ondelete="restrict"
    )
    deployment_restore_book_id = fields.Many2one(
        "eyrie.deployment.book", string="Restore Book", ondelete="restrict"
    )
    extra_value_keys = fields.Char(
        tracking=True,
        help="Comma-separated keys that deployments of this scope may set in "
        "their values besides the ones their type accepts, for custom books "
        "(for example: web_replicas, size). They are data like every value: "
        "render them with '| to_json'.",
    )
    namespace_pattern = fields.Char(
        tracking=True,
        help="A regular expression every namespace of this scope must match "
        "(for example ^team-a- for a required prefix). Empty: any valid name.",
    )
    deployment_ids = fields.One2many("eyrie.deployment", "scope_id")
    deployment_count = fields.Integer(compute="_compute_deployment_count")

    _sql_constraints = [
        ("name_uniq", "unique(name)", "A scope with this name already exists."),
        (
            "timers_not_negative",
            (
                "CHECK(deployment_pause_after_seconds >= 0 "
                "AND deployment_drop_after_seconds >= 0)"
            ),
            "Pause and drop timers cannot be negative; use 0 for never.",
        ),
        (
            "durations_not_negative",
            (
                "CHECK(keep_awake_seconds >= 0 AND max_lifetime_seconds >= 0 "
                "AND resume_grace_seconds >= 0)"
            ),
            (
                "Keep-awake extension, maximum lifetime and grace after resume "
                "cannot be negative; use 0 to disable them."
            ),
        ),
    ]

    @api.depends("deployment_ids")
    def _compute_deployment_count(self):
        counts = dict(
            self.env["eyrie.deployment"]._read_group(
                [("scope_id", "in", self.ids)], ["scope_id"], ["__count"]
            )
        )
        for scope in self:
            scope.deployment_count = counts.get(scope, 0)

    def write(self, vals):
        if "cluster_id" in vals:
            self._check_cluster_change(vals["cluster_id"])
        result = super().write(vals)
        if TIMER_FIELDS & vals.keys():
            self._timers_moved()
        return result

    def _timers_moved(self):
        """The deployments' timers moved (their stored times are computed,
        not written): their warnings, refusals and timer jobs follow. With
        this transaction for a few deployments; for more, in queue jobs of
        the timers' channel, so that the manager's request does not wait
        for thousands (until they run, the cron and the timer jobs already
        apply the new times: they read the stored ones)."""
        # The timers are the system's: every deployment of the scope
        # follows, whoever may read it.
        Deployment = self.env["eyrie.deployment"].sudo()
        ids = Deployment._search(
            [
                ("scope_id", "in", self.ids),
                ("repository_state", "in", ("deploy", "pause")),
            ],
            order="id",
        )
        deployments = Deployment.browse(ids)
        if len(deployments) <= TIMERS_MOVED_INLINE:
            deployments._timers_moved()
            return
        for chunk in split_every(TIMERS_MOVED_JOB_SIZE, deployments.ids):
            deployments.browse(chunk)._replan_timers_later(
                self.env._(
                    "Eyrie: timers of scope %(scope)s moved (%(count)s deployments)",
                    scope=", ".join(self.mapped("name")),
                    count=len(chunk),
                )
            )

    def _check_cluster_change(self, cluster_id):
        # The live deployments' objects are on the current cluster: moving the
        # scope would point their drop at a cluster that has none of them.
        for scope in self.filtered(lambda s: s.cluster_id.id != cluster_id):
            live = scope.with_context(active_test=False).deployment_ids.filtered(
                lambda d: d.repository_state != "draft"
            )
            if live:
                raise UserError(
                    self.env._(
                        "Scope %(scope)s has deployments on cluster %(cluster)s "
                        "(%(name)s, ...): drop them, or create another scope for the "
                        "new cluster.",
                        scope=scope.name,
                        cluster=scope.cluster_id.name,
                        name=live[0].name,
                    )
                )

    @api.constrains(
        "deployment_pause_after_seconds",
        "deployment_drop_after_seconds",
        "keep_awake_seconds",
        "max_lifetime_seconds",
        "resume_grace_seconds",
    )
    def _check_timers(self):
        for scope in self:
            for field_name in (
                "deployment_pause_after_seconds",
                "deployment_drop_after_seconds",
                "keep_awake_seconds",
                "max_lifetime_seconds",
                "resume_grace_seconds",
            ):
                if scope[field_name] < 0:
                    raise ValidationError(
                        self.env._(
                            "Scope %(scope)s: '%(field)s' cannot be negative; "
                            "enter a duration, or 0 to turn it off.",
                            scope=scope.name,
                            field=self._fields[field_name].string,
                        )
                    )

    @api.constrains("drop_warning_hours")
    def _check_drop_warning_hours(self):
        for scope in self.filtered("drop_warning_hours"):
            if not LEAD_TIMES_RE.match(scope.drop_warning_hours):
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: 'Drop Warnings' is '%(value)s'; write lead "
                        "times in hours separated by commas, such as 48, 2.",
                        scope=scope.name,
                        value=scope.drop_warning_hours,
                    )
                )

    @api.constrains("extra_value_keys")
    def _check_extra_value_keys(self):
        for scope in self:
            bad = [
                key for key in scope._extra_value_keys() if not VALUE_KEY_RE.match(key)
            ]
            if bad:
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: 'Extra Value Keys' holds '%(key)s'; use "
                        "names of lower-case letters, digits and '_' separated by "
                        "commas, such as web_replicas, size.",
                        scope=scope.name,
                        key=bad[0],
                    )
                )

    def _extra_value_keys(self):
        self.ensure_one()
        return {key.strip() for key in (self.extra_value_keys or "").split(",")} - {""}

    @api.constrains("namespace_pattern")
    def _check_namespace_pattern(self):
        for scope in self.filtered("namespace_pattern"):
            try:
                re.compile(scope.namespace_pattern)
            except re.error as error:
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: 'Namespace Pattern' is not a valid regular "
                        "expression (%(error)s); write one such as ^team-a-.",
                        scope=scope.name,
                        error=error,
                    )
                ) from error

    def _drop_warning_leads(self):
        """The drop warning lead times, longest first."""
        self.ensure_one()
        hours = (self.drop_warning_hours or "").split(",")
        return sorted(
            {timedelta(hours=float(hour)) for hour in hours if hour.strip()},
            reverse=True,
        )

    @api.constrains("domain")
    def _check_domain(self):
        for scope in self.filtered("domain"):
            try:
                check_hostname(scope.domain, key="domain")
            except ValuesError as error:
                raise ValidationError(
                    self.env._(
                        "Scope %(scope)s: %(error)s.", scope=scope.name, error=error
                    )
                ) from error

    @api.constrains("values")
    def _check_values(self):
        for scope in self:
            scope._type_values()

    def _type_values(self, deployment_type=None):
        """The scope's default values: for one type, or all sections."""
        self.ensure_one()
        types = dict(
            self.env["eyrie.deployment"]
            ._fields["deployment_type"]
            ._description_selection(self.env)
        )
        with self._refusing_values():
            sections = parse_json_object(self.values)
            for section_type, section in sections.items():
                if section_type not in types:
                    raise ValuesError(
                        f"'{section_type}' is not a deployment type; use sections "
                        f"named after the types ({', '.join(types)}), for example "
                        '{"odoo": {"image": "odoo:18.0"}}'
                    )
                if not isinstance(section, dict):
                    raise ValuesError(
                        f"section '{section_type}' must be a JSON object of values"
                    )
                Deployment = self.env["eyrie.deployment"]
                check_values(
                    section,
                    Deployment._accepted_value_keys(section_type, self),
                    Deployment._value_checks(section_type),
                )
        if deployment_type is None:
            return sections
        return sections.get(deployment_type, {})

    @contextlib.contextmanager
    def _refusing_values(self):
        """A ``ValuesError`` inside, as the ``ValidationError`` managers read:
        the scope's name, the key and the fix."""
        try:
            yield
        except ValuesError as error:
            raise ValidationError(
                self.env._(
                    "Default values of scope %(scope)s: %(error)s.",
                    scope=self.name,
                    error=error,
                )
            ) from error

    def action_view_deployments(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "eyrie_deployment.eyrie_deployment_action"
        )
        action["domain"] = [("scope_id", "=", self.id)]
        action["context"] = {"default_scope_id": self.id}
        return action
