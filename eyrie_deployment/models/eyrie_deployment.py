import ipaddress
import json
import logging
import re
import time
from datetime import timedelta

from markupsafe import escape

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.tools import SQL

from ..tools.confinement import check_book
from ..tools.executor import DEPLOYMENT_LABEL, MANAGED_BY_LABEL
from ..tools.parameters import int_param
from ..tools.passwords import generate_password, is_unsafe
from ..tools.template import render_documents
from ..tools.transaction import commit_unless_testing, in_test
from ..tools.values import (
    CONTROL_RE,
    ValuesError,
    check_values,
    parse_json_object,
)
from .eyrie_scope import BOOK_ACTIONS

_logger = logging.getLogger(__name__)

NAMESPACE_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
NAMESPACE_MAX_LENGTH = 63
# Namespaces of the cluster itself (with every kube-* one): never a deployment's.
RESERVED_NAMESPACES = frozenset({"default"})

REPOSITORY_STATES = [
    ("draft", "Draft"),
    ("initialize", "Initialize"),
    ("deploy", "Deploy"),
    ("pause", "Pause"),
]
# States of a deployment while one of its jobs is pending or running.
IN_FLIGHT_STATES = ("initializing", "deploying", "pausing", "dropping")
STATES = [
    ("draft", "Draft"),
    ("initializing", "Initializing"),
    ("initialize", "Initialize"),
    ("deploying", "Deploying"),
    ("deploy", "Deployed"),
    ("pausing", "Pausing"),
    ("pause", "Paused"),
    ("dropping", "Dropping"),
    ("error", "Error"),
]
# Written only by the lifecycle itself (sudo), never directly by users or RPC.
LIFECYCLE_FIELDS = frozenset(
    {
        "state",
        "repository_state",
        "error_message",
        "deployed_at",
        "paused_at",
        "timer_blocked_until",
        "credentials",
        "timer_extension_seconds",
        "resumed_at",
        "drop_warned_for",
        "drop_warned_hours",
        # Stored computes: only the lifecycle moves the timers.
        "next_pause_at",
        "next_drop_at",
        "drop_warning_due_at",
    }
)
BOOK_FIELDS = frozenset(f"deployment_{action}_book_id" for action in BOOK_ACTIONS)
# What a deployment is made of on the cluster; fixed once it left draft.
FIELDS_LOCKED_AFTER_DRAFT = frozenset(
    {
        "deployment_type",
        "scope_id",
        "namespace",
        "database_mode",
        "database_deployment_id",
    }
)
# The shipped books' PostgresCluster name (PGO derives db-primary, db-pguser-*).
POSTGRES_CLUSTER_NAME = "db"
ODOO_DEFAULT_VALUES = {
    "image": "odoo:18.0",
    "replicas": 1,
    "workers": 2,
    "storage": "10Gi",
    "database_storage": "10Gi",
    "backup_storage": "10Gi",
    "storage_class": "",
    "postgres_version": 16,
    "db_user": "odoo",
    "cpu_request": "250m",
    "memory_limit": "2Gi",
    "ingress_class": "",
    "tls_secret": "",
    "dns_ttl": 300,
}
# Keys an Odoo deployment accepts beyond its defaults (derived when unset).
ODOO_OPTIONAL_KEYS = frozenset({"hostname", "dns_target", "db_name"})
PGO_DEFAULT_VALUES = {
    "postgres_version": 16,
    "replicas": 1,
    "storage": "10Gi",
    "backup_storage": "10Gi",
    "storage_class": "",
    "users": ["odoo"],
}
# A failed or refused automatic action is not tried again before this delay.
TIMER_RETRY_DELAY = timedelta(hours=1)
# How long a run of the timers cron waits for a timer due in the meantime.
DEFAULT_TIMERS_WAIT_SECONDS = 50


def _is_ip_address(value):
    try:
        ipaddress.ip_address(value)
    except (TypeError, ValueError):
        return False
    return True


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


def namespace_from_name(name):
    slug = re.sub(r"[^a-z0-9-]+", "-", (name or "").lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-")
    return slug[:NAMESPACE_MAX_LENGTH].rstrip("-")


class EyrieDeployment(models.Model):
    """A deployment (an Odoo instance, a PGO PostgresCluster, ...) on a cluster.

    Lifecycle: ``action_deploy``, ``action_pause`` and ``action_drop`` check
    their preconditions, then dispatch to ``<deployment_type>_action_<verb>``.
    A deployment type added by another module (``selection_add`` on
    ``deployment_type``) implements, decorated with ``@api.private``:

    - ``<type>_action_deploy()``: choose the initialize/deploy books and
      create the jobs (see ``_start_deploy``);
    - ``<type>_action_pause()``: choose the pause book and create the job;
    - ``<type>_action_drop()``: choose the drop book and create the job.

    Jobs run asynchronously (``eyrie.job``); when one ends, the job calls
    ``_on_job_done`` or ``_on_job_failed`` which move the state.

    Optionally, per type: ``_<type>_default_books()`` (action -> XML id of the
    book used where the scope sets none), ``_<type>_default_values()`` and
    ``_<type>_template_secrets()``.
    """

    _name = "eyrie.deployment"
    _description = "Eyrie Deployment"
    _inherit = ["mail.thread", "mail.activity.mixin"]
    _order = "id desc"
    _check_company_auto = True
    _sql_constraints = [
        (
            "namespace_cluster_uniq",
            "unique(cluster_id, namespace)",
            (
                "Another deployment on this cluster already uses this namespace "
                "(maybe in another company): choose another namespace."
            ),
        ),
    ]

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    deployment_type = fields.Selection(
        [("odoo", "Odoo"), ("pgo", "PostgreSQL (Crunchy PGO)")],
        string="Type",
        required=True,
        tracking=True,
    )
    scope_id = fields.Many2one(
        "eyrie.scope",
        required=True,
        ondelete="restrict",
        tracking=True,
        index=True,
        check_company=True,
    )
    company_id = fields.Many2one(
        related="scope_id.company_id", store=True, index=True, precompute=True
    )
    user_id = fields.Many2one(
        "res.users",
        string="Responsible",
        default=lambda self: self.env.user,
        ondelete="set null",
        tracking=True,
        index="btree_not_null",
        help="Gets the warnings before the drop timer fires.",
    )
    drop_protected = fields.Boolean(
        string="Drop Protection",
        tracking=True,
        copy=False,
        help="Refuses manual drop and exempts the deployment from the drop timer. "
        "Only Eyrie managers change it.",
    )
    cluster_id = fields.Many2one(
        related="scope_id.cluster_id", store=True, index=True, precompute=True
    )
    allow_drop = fields.Boolean(related="scope_id.allow_drop")
    namespace = fields.Char(
        compute="_compute_namespace",
        store=True,
        readonly=False,
        precompute=True,
        required=True,
        tracking=True,
        help="Kubernetes namespace of the deployment (a DNS-1123 label: lower-case "
        "letters, digits and '-', at most 63 characters). Defaults from the name.",
    )
    values = fields.Text(
        default="{}",
        help="JSON object of parameters given to the book templates as 'values'. "
        "They override the type's defaults and the scope's default values.",
    )
    effective_values = fields.Text(
        compute="_compute_effective_values",
        help="The values the books get: type defaults, then the scope's, then "
        "the deployment's own.",
    )
    hostname = fields.Char(
        compute="_compute_hostname",
        help="Where an Odoo deployment is served: 'hostname' in its values, or "
        "<namespace>.<scope domain>.",
    )
    database_mode = fields.Selection(
        [
            ("own", "Own PostgreSQL cluster"),
            ("shared", "Existing PostgreSQL deployment"),
        ],
        string="Database",
        default="own",
        required=True,
        tracking=True,
        help="Odoo deployments: run a PostgresCluster of their own in their "
        "namespace, or use a database in the cluster of a PostgreSQL deployment.",
    )
    database_deployment_id = fields.Many2one(
        "eyrie.deployment",
        string="PostgreSQL Deployment",
        ondelete="restrict",
        tracking=True,
        index="btree_not_null",
        domain="[('deployment_type', '=', 'pgo'), ('id', '!=', id)]",
        help="The PostgreSQL deployment whose cluster holds this Odoo's database.",
    )
    credentials = fields.Json(
        groups="eyrie_deployment.group_eyrie_manager",
        copy=False,
        help="Generated once, on the first deploy; kept across redeploys. Books "
        "see them as 'secrets'.",
    )
    admin_password = fields.Char(
        string="Odoo Admin Password",
        compute="_compute_admin_password",
        groups="eyrie_deployment.group_eyrie_manager",
        help="Password of the 'admin' user of an Odoo deployment, set on its "
        "first start.",
    )
    repository_state = fields.Selection(
        REPOSITORY_STATES,
        string="Phase",
        default="draft",
        required=True,
        readonly=True,
        copy=False,
        tracking=True,
        index=True,
    )
    # Not tracked: it moves at every action, and the jobs are that history;
    # the chatter tracks the phase (repository_state) and posts failures.
    state = fields.Selection(
        STATES,
        default="draft",
        required=True,
        readonly=True,
        copy=False,
        index=True,
    )
    error_message = fields.Text(readonly=True, copy=False)
    deployment_initialize_book_id = fields.Many2one(
        "eyrie.deployment.book",
        string="Initialize Book",
        compute="_compute_books",
        store=True,
        readonly=False,
        precompute=True,
        ondelete="restrict",
    )
    deployment_deploy_book_id = fields.Many2one(
        "eyrie.deployment.book",
        string="Deploy Book",
        compute="_compute_books",
        store=True,
        readonly=False,
        precompute=True,
        ondelete="restrict",
    )
    deployment_pause_book_id = fields.Many2one(
        "eyrie.deployment.book",
        string="Pause Book",
        compute="_compute_books",
        store=True,
        readonly=False,
        precompute=True,
        ondelete="restrict",
    )
    deployment_drop_book_id = fields.Many2one(
        "eyrie.deployment.book",
        string="Drop Book",
        compute="_compute_books",
        store=True,
        readonly=False,
        precompute=True,
        ondelete="restrict",
    )
    job_ids = fields.One2many("eyrie.job", "deployment_id", string="Jobs")
    job_count = fields.Integer(compute="_compute_job_count")
    active_job_id = fields.Many2one(
        "eyrie.job",
        compute="_compute_active_job_id",
        help="The job currently pending or running for this deployment.",
    )
    deployed_at = fields.Datetime(readonly=True, copy=False)
    paused_at = fields.Datetime(readonly=True, copy=False)
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
    # Computes and constraints
    # ------------------------------------------------------------------

    @api.depends("name")
    def _compute_namespace(self):
        for deployment in self:
            if (
                deployment.repository_state in (False, "draft")
                or not deployment.namespace
            ):
                deployment.namespace = namespace_from_name(deployment.name)

    @api.depends("scope_id", "deployment_type")
    def _compute_books(self):
        for deployment in self:
            for field_name, book in deployment._scope_books().items():
                deployment[field_name] = book

    def _scope_books(self):
        """{book field: book}: the scope's book for each action, or the type's
        shipped one where the scope sets none for this type."""
        self.ensure_one()
        scope = self.scope_id
        books = {}
        for action in BOOK_ACTIONS:
            field_name = f"deployment_{action}_book_id"
            book = scope[field_name]
            if not book or not book._serves(self.deployment_type):
                book = self._default_book(action)
            books[field_name] = book
        return books

    @api.depends("values", "deployment_type", "scope_id.values")
    def _compute_effective_values(self):
        for deployment in self:
            try:
                values = deployment._effective_values()
            except ValidationError:
                values = {}
            deployment.effective_values = json.dumps(values, indent=2, sort_keys=True)

    @api.depends("values", "namespace", "deployment_type", "scope_id.domain")
    def _compute_hostname(self):
        for deployment in self:
            hostname = False
            if deployment.deployment_type == "odoo":
                try:
                    hostname = deployment._odoo_hostname()
                except (UserError, ValidationError):
                    hostname = False
            deployment.hostname = hostname

    @api.depends("credentials")
    def _compute_admin_password(self):
        for deployment in self:
            deployment.admin_password = (deployment.credentials or {}).get(
                "admin_password"
            )

    @api.depends("job_ids")
    def _compute_job_count(self):
        counts = dict(
            self.env["eyrie.job"]._read_group(
                [("deployment_id", "in", self.ids)], ["deployment_id"], ["__count"]
            )
        )
        for deployment in self:
            deployment.job_count = counts.get(deployment, 0)

    @api.depends("job_ids.state")
    def _compute_active_job_id(self):
        for deployment in self:
            deployment.active_job_id = deployment.job_ids.filtered(
                lambda job: job.state in ("pending", "running")
            )[:1]

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

    @api.depends("next_pause_at", "next_drop_at")
    def _compute_timer_summary(self):
        now = fields.Datetime.now()
        for deployment in self:
            parts = []
            if deployment.next_pause_at:
                parts.append(
                    self.env._(
                        "pauses %s", _relative(deployment.next_pause_at - now, self.env)
                    )
                )
            if deployment.next_drop_at:
                parts.append(
                    self.env._(
                        "drops %s", _relative(deployment.next_drop_at - now, self.env)
                    )
                )
            deployment.timer_summary = " · ".join(parts)

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

    @api.constrains("name")
    def _check_name(self):
        for deployment in self:
            if CONTROL_RE.search(deployment.name or ""):
                raise ValidationError(
                    self.env._(
                        "The name of deployment %(name)r holds a control character "
                        "(a newline, tab, ...): write it on one line.",
                        name=deployment.name,
                    )
                )

    @api.constrains("namespace", "scope_id")
    def _check_namespace(self):
        # Uniqueness per cluster is the SQL constraint's (namespace_cluster_uniq):
        # across companies and record rules, and without a race.
        for deployment in self:
            deployment._check_namespace_name()

    def _check_namespace_name(self):
        self.ensure_one()
        namespace = self.namespace or ""
        if len(namespace) > NAMESPACE_MAX_LENGTH or not NAMESPACE_RE.match(namespace):
            raise ValidationError(
                self.env._(
                    "Namespace '%(namespace)s' of deployment %(name)s is not a valid "
                    "DNS-1123 label: use at most 63 lower-case letters, digits and "
                    "'-', starting and ending with a letter or digit.",
                    namespace=namespace,
                    name=self.name,
                )
            )
        if namespace in RESERVED_NAMESPACES or namespace.startswith("kube-"):
            raise ValidationError(
                self.env._(
                    "Namespace '%(namespace)s' of deployment %(name)s belongs to the "
                    "cluster itself (default, kube-*): choose a namespace of your "
                    "own.",
                    namespace=namespace,
                    name=self.name,
                )
            )
        pattern = self.scope_id.namespace_pattern
        if pattern and not re.search(pattern, namespace):
            raise ValidationError(
                self.env._(
                    "Namespace '%(namespace)s' of deployment %(name)s does not match "
                    "the namespace pattern %(pattern)s of scope %(scope)s: choose a "
                    "namespace that does (ask a manager which prefix your team uses).",
                    namespace=namespace,
                    name=self.name,
                    pattern=pattern,
                    scope=self.scope_id.name,
                )
            )

    @api.constrains("values", "deployment_type", "scope_id")
    def _check_values(self):
        for deployment in self:
            deployment._effective_values()

    @api.constrains(
        "deployment_type", "database_mode", "database_deployment_id", "values"
    )
    def _check_database(self):
        for deployment in self.filtered(lambda d: d.deployment_type == "odoo"):
            database = deployment.database_deployment_id
            if deployment.database_mode == "shared" and not database:
                raise ValidationError(
                    self.env._(
                        "Deployment %(name)s uses an existing PostgreSQL deployment: "
                        "choose it in 'PostgreSQL Deployment', or set 'Database' to "
                        "its own cluster.",
                        name=deployment.name,
                    )
                )
            if deployment.database_mode != "shared" or not database:
                continue
            db_name = deployment._effective_values().get("db_name")
            if db_name not in (None, deployment.namespace):
                # The namespace is unique on the cluster, so is the database
                # named after it: a drop never drops another deployment's.
                raise ValidationError(
                    self.env._(
                        "Deployment %(name)s keeps its database in a shared "
                        "PostgreSQL deployment, where it is named after the "
                        "namespace (%(namespace)s): remove 'db_name' from its values "
                        "and its scope's.",
                        name=deployment.name,
                        namespace=deployment.namespace,
                    )
                )
            if (
                database.deployment_type != "pgo"
                or database.cluster_id != deployment.cluster_id
            ):
                raise ValidationError(
                    self.env._(
                        "Deployment %(name)s: its PostgreSQL Deployment must be a "
                        "PostgreSQL deployment on the same cluster (%(cluster)s); "
                        "%(database)s is not.",
                        name=deployment.name,
                        cluster=deployment.cluster_id.name,
                        database=database.name,
                    )
                )

    @api.constrains(
        "deployment_type",
        "deployment_initialize_book_id",
        "deployment_deploy_book_id",
        "deployment_pause_book_id",
        "deployment_drop_book_id",
    )
    def _check_books_type(self):
        for deployment in self:
            for action in BOOK_ACTIONS:
                field_name = f"deployment_{action}_book_id"
                book = deployment[field_name]
                if book and not book._serves(deployment.deployment_type):
                    raise ValidationError(
                        self.env._(
                            "%(field)s '%(book)s' serves deployments of type "
                            "%(book_type)s, "
                            "not %(type)s: choose a book for this type or one for any "
                            "type.",
                            field=self._fields[field_name].string,
                            book=book.name,
                            book_type=book.deployment_type,
                            type=deployment.deployment_type,
                        )
                    )

    # ------------------------------------------------------------------
    # CRUD
    # ------------------------------------------------------------------

    def copy_data(self, default=None):
        # A copy is a new environment: its own name, hence its own namespace.
        vals_list = super().copy_data(default=default)
        for deployment, vals in zip(self, vals_list, strict=True):
            if "name" not in (default or {}):
                vals["name"] = self.env._("%s (copy)", deployment.name)
            if "namespace" not in (default or {}):
                vals.pop("namespace", None)
        return vals_list

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su:
            for vals in vals_list:
                self._check_lifecycle_fields_untouched(vals)
                if vals.get("drop_protected"):
                    self._check_may_protect()
        deployments = super().create(vals_list)
        if not self.env.su and not self._is_manager():
            for deployment in deployments:
                deployment._check_books_are_scope_books()
        return deployments

    def write(self, vals):
        if not self.env.su:
            self._check_lifecycle_fields_untouched(vals)
            if "drop_protected" in vals and any(
                d.drop_protected != bool(vals["drop_protected"]) for d in self
            ):
                self._check_may_protect()
        if "active" in vals and not vals["active"]:
            self._check_may_archive()
        books_before = self._books_snapshot(vals)
        locked = FIELDS_LOCKED_AFTER_DRAFT & vals.keys()
        if locked:
            live = self.filtered(lambda d: d.repository_state != "draft")
            changed = live.filtered(
                lambda d: any(d._field_differs(name, vals[name]) for name in locked)
            )
            if changed:
                raise UserError(
                    self.env._(
                        "Deployment %(name)s has left draft: its %(fields)s can no "
                        "longer "
                        "change. Drop it and create a new deployment instead.",
                        name=changed[0].name,
                        fields=", ".join(
                            sorted(self._fields[name].string for name in locked)
                        ),
                    )
                )
        result = super().write(vals)
        self._check_books_unchanged(books_before)
        return result

    def _field_differs(self, field_name, value):
        current = self[field_name]
        if isinstance(current, models.BaseModel):
            current = current.id
        return current != value

    @api.model
    def _is_manager(self):
        return self.env.user.has_group("eyrie_deployment.group_eyrie_manager")

    def _books_snapshot(self, vals):
        """{deployment: {book field: book}} for the book fields in ``vals``
        when a non-manager writes them (None otherwise), to be checked after
        the write by ``_check_books_unchanged``."""
        names = BOOK_FIELDS & vals.keys()
        if self.env.su or not names or self._is_manager():
            return None
        return {d: {name: d[name] for name in names} for d in self}

    def _check_books_unchanged(self, before):
        # The books decide what the lifecycle and the timers do on the
        # cluster (a drop book that deletes nothing would orphan everything):
        # a user may only get the scope's books, as a scope change gives.
        for deployment, books in (before or {}).items():
            expected = deployment._scope_books()
            for name, book in books.items():
                if deployment[name] not in (book, expected[name]):
                    raise AccessError(
                        self.env._(
                            "Only Eyrie managers choose a deployment's books "
                            "(%(field)s): the scope's books apply. Ask a manager to "
                            "change them.",
                            field=self._fields[name].string,
                        )
                    )

    def _check_books_are_scope_books(self):
        self.ensure_one()
        for field_name, book in self._scope_books().items():
            if self[field_name] != book:
                raise AccessError(
                    self.env._(
                        "Only Eyrie managers choose a deployment's books (%(field)s): "
                        "leave it out and the scope's book applies.",
                        field=self._fields[field_name].string,
                    )
                )

    def _check_may_archive(self):
        live = self.filtered(lambda d: d.active and d.repository_state != "draft")
        if live:
            raise UserError(
                self.env._(
                    "Deployment %(name)s is live on its cluster: an archived "
                    "deployment would escape its scope's timers. Pause or drop it "
                    "instead; only drafts can be archived.",
                    name=live[0].name,
                )
            )

    @api.model
    def _check_may_protect(self):
        if not self._is_manager():
            raise AccessError(
                self.env._(
                    "Only Eyrie managers can change Drop Protection; ask one to "
                    "protect or unprotect this deployment."
                )
            )

    @api.model
    def _check_lifecycle_fields_untouched(self, vals):
        forbidden = LIFECYCLE_FIELDS & vals.keys()
        if forbidden:
            raise UserError(
                self.env._(
                    "Fields %(fields)s are set by the deployment lifecycle only; use "
                    "the "
                    "Deploy, Pause and Drop actions instead of writing them.",
                    fields=", ".join(sorted(forbidden)),
                )
            )

    @api.ondelete(at_uninstall=False)
    def _unlink_except_live(self):
        for deployment in self:
            if deployment.active_job_id:
                raise UserError(
                    self.env._(
                        "Deployment %(name)s has a job in progress; wait for it to "
                        "end.",
                        name=deployment.name,
                    )
                )
            if deployment.repository_state != "draft" and not deployment._is_dropped():
                raise UserError(
                    self.env._(
                        "Deployment %(name)s may still have resources on its cluster: "
                        "use Drop to remove them and the deployment.",
                        name=deployment.name,
                    )
                )

    def _is_dropped(self):
        self.ensure_one()
        return any(job.action == "drop" and job.state == "done" for job in self.job_ids)

    # ------------------------------------------------------------------
    # Public lifecycle actions (form buttons, XML-RPC, timers)
    # ------------------------------------------------------------------

    def action_deploy(self):
        """Deploy: initialize then deploy from draft or after a failed first
        deploy, resume from pause, update when deployed."""
        return self._run_action("deploy", trigger="user")

    def action_pause(self):
        """Pause a deployed deployment (its pause book)."""
        return self._run_action("pause", trigger="user")

    def action_drop(self):
        """Remove the deployment from its cluster, then delete the record."""
        return self._run_action("drop", trigger="user")

    def action_keep_awake(self):
        """Postpone the pause and drop timers by the scope's keep-awake
        extension, never beyond the scope's maximum lifetime."""
        self.check_access("write")
        for deployment in self:
            deployment._keep_awake()
        self._schedule_timers_cron()
        return True

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
                "Kept awake by %(user)s for %(seconds)s s: pause %(pause)s, drop "
                "%(drop)s (UTC).",
                user=self.env.user.name,
                seconds=extension - current,
                pause=fields.Datetime.to_string(self.next_pause_at) or "-",
                drop=fields.Datetime.to_string(self.next_drop_at) or "-",
            )
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

    def action_view_jobs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "eyrie_deployment.eyrie_job_action"
        )
        action["domain"] = [("deployment_id", "=", self.id)]
        action["context"] = {"create": False}
        return action

    # ------------------------------------------------------------------
    # Dispatch
    # ------------------------------------------------------------------

    def _run_action(self, verb, trigger):
        if trigger == "user":
            # The lifecycle writes as superuser: the caller's own rights are
            # checked here, so a user runs actions on their own deployments.
            self.check_access("write")
        deployments = self.with_context(eyrie_job_trigger=trigger)
        deployments._lock_rows()
        for deployment in deployments:
            deployment._check_action_allowed(verb)
            deployment._dispatch(verb)
        self._wake_job_runner()
        return True

    def _lock_rows(self):
        # Serialises concurrent actions on one deployment: the second waits,
        # then sees the first one's job and is refused.
        if self.ids:
            self.env.cr.execute(
                SQL(
                    "SELECT id FROM eyrie_deployment WHERE id IN %s FOR NO KEY UPDATE",
                    tuple(self.ids),
                )
            )

    def _check_action_allowed(self, verb):
        self.ensure_one()
        if not self.active:
            raise UserError(
                self.env._(
                    "Deployment %(name)s is archived; restore it first.", name=self.name
                )
            )
        running = (
            self.env["eyrie.job"]
            .sudo()
            .search(
                [
                    ("deployment_id", "=", self.id),
                    ("state", "in", ("pending", "running")),
                ],
                order="id",
                limit=1,
            )
        )
        if running:
            raise UserError(
                self.env._(
                    "Deployment %(name)s already has a %(action)s job in progress "
                    "(%(state)s); wait for it to end before running another action.",
                    name=self.name,
                    action=running.action,
                    state=running.state,
                )
            )
        if verb == "pause" and self.repository_state != "deploy":
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be paused: it is in phase %(phase)s, "
                    "only a deployed deployment can be paused.",
                    name=self.name,
                    phase=dict(REPOSITORY_STATES)[self.repository_state],
                )
            )
        if verb == "drop" and self.drop_protected:
            raise UserError(
                self.env._(
                    "Deployment %(name)s is protected against drop. A manager can "
                    "clear its 'Drop Protection' first.",
                    name=self.name,
                )
            )
        if verb == "drop" and not self.scope_id.allow_drop:
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be dropped: scope %(scope)s does not "
                    "allow drop. A manager can enable 'Allow Drop' on the scope.",
                    name=self.name,
                    scope=self.scope_id.name,
                )
            )

    def _dispatch(self, verb):
        self.ensure_one()
        method_name = f"{self.deployment_type}_action_{verb}"
        method = getattr(self, method_name, None)
        if method is None:
            raise UserError(
                self.env._(
                    "Deployment type '%(type)s' cannot %(verb)s: method %(method)s is "
                    "not implemented on eyrie.deployment.",
                    type=self.deployment_type,
                    verb=verb,
                    method=method_name,
                )
            )
        return method()

    # ------------------------------------------------------------------
    # Built-in types. Not callable over RPC: they skip the checks above.
    # ------------------------------------------------------------------

    @api.private
    def odoo_action_deploy(self):
        values = self._odoo_values()
        if values["database_mode"] == "shared":
            self._odoo_check_shared_database(values)
        self._ensure_credentials(("admin_password", "db_password"))
        return self._start_deploy(values=values)

    @api.private
    def odoo_action_pause(self):
        return self._start_pause(values=self._odoo_values(need_hostname=False))

    @api.private
    def odoo_action_drop(self):
        self._odoo_check_database_running_for_drop()
        return self._start_drop(values=self._odoo_values(need_hostname=False))

    def _odoo_check_database_running_for_drop(self):
        """A drop on a shared database ends with a Job that drops this Odoo's
        database: it needs the PostgreSQL deployment running. Refused before
        anything is deleted, so the Odoo stays whole and the user can resume
        the database first."""
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return
        if database.repository_state == "deploy" and database.state != "pausing":
            return
        raise UserError(
            self.env._(
                "Odoo deployment %(name)s cannot be dropped now: its database is in "
                "PostgreSQL deployment %(database)s, which is not running "
                "(%(state)s), so its database could not be dropped. Deploy (resume) "
                "%(database)s first, then drop %(name)s.",
                name=self.name,
                database=database.name,
                state=dict(STATES)[database.state],
            )
        )

    @api.private
    def pgo_action_deploy(self):
        values = self._effective_values()
        self._ensure_credentials(tuple(f"pguser_{user}" for user in values["users"]))
        return self._start_deploy(values=values)

    @api.private
    def pgo_action_pause(self):
        running = (
            self.sudo()
            .with_context(active_test=False)
            .search(
                [
                    ("database_deployment_id", "=", self.id),
                    ("repository_state", "=", "deploy"),
                ],
                limit=1,
            )
        )
        if running:
            # Stopping the database under a running Odoo breaks it; pause the
            # Odoo first (its own timer usually does, being shorter or equal).
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be paused: Odoo deployment %(odoo)s "
                    "runs on its database. Pause that deployment first.",
                    name=self.name,
                    odoo=running.name,
                )
            )
        return self._start_pause(values=self._effective_values())

    @api.private
    def pgo_action_drop(self):
        users = (
            self.sudo()
            .with_context(active_test=False)
            .search([("database_deployment_id", "=", self.id)], limit=1)
        )
        if users:
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be dropped: Odoo deployment %(odoo)s "
                    "keeps its database in it. Drop that deployment first.",
                    name=self.name,
                    odoo=users.name,
                )
            )
        return self._start_drop(values=self._effective_values())

    # ------------------------------------------------------------------
    # Type details: defaults, values and secrets of the built-in types
    # ------------------------------------------------------------------

    def _odoo_default_books(self):
        return {
            action: f"eyrie_deployment.eyrie_book_odoo_{action}"
            for action in BOOK_ACTIONS
        }

    def _pgo_default_books(self):
        return {
            action: f"eyrie_deployment.eyrie_book_pgo_{action}"
            for action in BOOK_ACTIONS
        }

    def _odoo_default_values(self):
        return dict(ODOO_DEFAULT_VALUES)

    def _odoo_value_keys(self):
        return set(ODOO_DEFAULT_VALUES) | ODOO_OPTIONAL_KEYS

    def _pgo_default_values(self):
        return dict(PGO_DEFAULT_VALUES)

    def _pgo_value_keys(self):
        return set(PGO_DEFAULT_VALUES)

    def _pgo_user_password(self, user):
        """The generated password of PostgreSQL user ``user``, once a deploy
        of this PostgreSQL deployment created it; else None."""
        self.ensure_one()
        return (self.sudo().credentials or {}).get(f"pguser_{user}")

    def _odoo_hostname(self, values=None):
        self.ensure_one()
        if values is None:
            values = self._effective_values()
        hostname = values.get("hostname")
        if hostname:
            return hostname
        if not self.scope_id.domain:
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s has no hostname: set a Domain on scope "
                    "%(scope)s, or 'hostname' in the deployment's values.",
                    name=self.name,
                    scope=self.scope_id.name,
                )
            )
        hostname = f"{self.namespace}.{self.scope_id.domain}"
        try:
            check_values({"hostname": hostname})
        except ValuesError as error:
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s: %(error)s. "
                    "Set 'hostname' in its values.",
                    name=self.name,
                    error=error,
                )
            ) from error
        return hostname

    def _odoo_values(self, need_hostname=True):
        """Values of the Odoo books: the effective values plus where the
        instance is served and where its database lives. Pause and drop do
        not need the hostname: a scope that lost its domain can still drop."""
        self.ensure_one()
        values = self._effective_values()
        try:
            values["hostname"] = self._odoo_hostname(values)
        except UserError:
            if need_hostname:
                raise
            values["hostname"] = ""
        if "dns_target" not in values and values["hostname"]:
            # The ingress controller's name in the domain the hostname is in.
            values["dns_target"] = "ingress." + values["hostname"].split(".", 1)[-1]
        values["dns_record_type"] = (
            "A" if _is_ip_address(values.get("dns_target")) else "CNAME"
        )
        values.setdefault("db_name", self.namespace)
        database = self.sudo().database_deployment_id
        shared = self.database_mode == "shared" and database
        db_namespace = database.namespace if shared else self.namespace
        values |= {
            "database_mode": "shared" if shared else "own",
            "db_cluster": POSTGRES_CLUSTER_NAME,
            "db_namespace": db_namespace,
            "db_host": (
                f"{POSTGRES_CLUSTER_NAME}-primary.{db_namespace}.svc"
                if shared
                else f"{POSTGRES_CLUSTER_NAME}-primary"
            ),
        }
        return values

    def _odoo_check_shared_database(self, values):
        database = self.sudo().database_deployment_id
        if database.repository_state != "deploy":
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s keeps its database in PostgreSQL "
                    "deployment %(database)s, which is not deployed (%(phase)s). "
                    "Deploy or resume it first.",
                    name=self.name,
                    database=database.name,
                    phase=dict(REPOSITORY_STATES)[database.repository_state],
                )
            )
        user = values["db_user"]
        if user in database._effective_values().get("users", []) and not (
            database._pgo_user_password(user)
        ):
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s connects as PostgreSQL user %(user)s, "
                    "whose password deployment %(database)s has not created yet: "
                    "update (deploy) %(database)s first, then deploy this one.",
                    name=self.name,
                    user=user,
                    database=database.name,
                )
            )
        if values["db_user"] not in database._effective_values().get("users", []):
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s connects as PostgreSQL user %(user)s, "
                    "which deployment %(database)s does not declare: add it to its "
                    "'users' value and update it, or change 'db_user'.",
                    name=self.name,
                    user=values["db_user"],
                    database=database.name,
                )
            )

    def _odoo_foreign_objects(self):
        """The one object an Odoo on a shared database has outside its
        namespace: the Job that drops its database, in the PostgreSQL
        deployment's namespace."""
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return set()
        return {(database.namespace, "batch/Job", f"dropdb-{self.id}")}

    def _odoo_template_secrets(self):
        secrets_ = dict(self.sudo().credentials or {})
        database = self.sudo().database_deployment_id
        if self.database_mode == "shared" and database:
            # Never a missing password rendered as text: without it the books'
            # templates fail on the undefined 'secrets.db_password'.
            secrets_.pop("db_password", None)
            password = database._pgo_user_password(self._effective_values()["db_user"])
            if password:
                secrets_["db_password"] = password
        return secrets_

    # ------------------------------------------------------------------
    # Building blocks for type implementations
    # ------------------------------------------------------------------

    def _start_deploy(self, initialize_book=None, deploy_book=None, values=None):
        """Create the deploy job, preceded by an initialize job when the
        deployment was never deployed successfully. ``values`` (default: the
        effective values) are what the books see. Returns the jobs."""
        self.ensure_one()
        deploy_book = deploy_book or self._get_book("deploy")
        if self.repository_state in ("draft", "initialize"):
            initialize_book = initialize_book or self._get_book("initialize")
            initialize_job = self._create_job("initialize", initialize_book, values)
            deploy_job = self._create_job(
                "deploy", deploy_book, values, previous_job=initialize_job
            )
            self._set_lifecycle(repository_state="initialize", state="initializing")
            return initialize_job | deploy_job
        deploy_job = self._create_job("deploy", deploy_book, values)
        self._set_lifecycle(state="deploying")
        return deploy_job

    def _start_pause(self, book=None, values=None):
        self.ensure_one()
        job = self._create_job("pause", book or self._get_book("pause"), values)
        self._set_lifecycle(state="pausing")
        return job

    def _start_drop(self, book=None, values=None):
        self.ensure_one()
        job = self._create_job("drop", book or self._get_book("drop"), values)
        self._set_lifecycle(state="dropping")
        return job

    def _default_book(self, action):
        """The shipped book of this deployment's type for ``action``, if any."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_default_books", None)
        xmlid = hook().get(action) if hook else None
        book = self.env.ref(xmlid, raise_if_not_found=False) if xmlid else None
        return book or self.env["eyrie.deployment.book"]

    def _ensure_credentials(self, names):
        """Generate the missing credentials ``names``; existing ones never
        change, so redeploys apply the same Secrets."""
        self.ensure_one()
        credentials = dict(self.sudo().credentials or {})
        missing = [name for name in names if not credentials.get(name)]
        if missing:
            credentials.update({name: generate_password() for name in missing})
            self._set_lifecycle(credentials=credentials)

    @api.model
    def _regenerate_unsafe_credentials(self):
        """Regenerate, once, the database passwords that a consumer reads
        specially (a leading '-': the official Odoo image's wait-for-psql.py
        takes it for an option and the pod never starts). The admin password
        stays: Odoo sets it once, on the first start. Returns the deployments
        changed; each says in its chatter that a Deploy applies the change."""
        changed = self.browse()
        for deployment in self.sudo().search([("credentials", "!=", False)]):
            credentials = dict(deployment.credentials or {})
            names = sorted(
                name
                for name, value in credentials.items()
                if name != "admin_password" and is_unsafe(value)
            )
            if not names:
                continue
            credentials.update({name: generate_password() for name in names})
            deployment._set_lifecycle(credentials=credentials)
            deployment._message_log(
                body=self.env._(
                    "Generated credentials %(names)s could not be used by every "
                    "consumer (a leading '-'): they were regenerated. Deploy "
                    "(update) this deployment to apply them.",
                    names=", ".join(names),
                )
            )
            changed |= deployment
        return changed

    def _get_book(self, action):
        self.ensure_one()
        field_name = f"deployment_{action}_book_id"
        book = self[field_name]
        if not book:
            raise UserError(
                self.env._(
                    "Deployment %(name)s has no %(field)s: choose one on the "
                    "deployment "
                    "or set a default on scope %(scope)s.",
                    name=self.name,
                    field=self._fields[field_name].string,
                    scope=self.scope_id.name,
                )
            )
        return book

    def _create_job(self, action, book, values=None, previous_job=None):
        self.ensure_one()
        if values is None:
            values = self._effective_values()
        trigger = self.env.context.get("eyrie_job_trigger") or "user"
        return (
            self.env["eyrie.job"]
            .sudo()
            .create(
                {
                    "deployment_id": self.id,
                    "deployment_name": self.name,
                    "book_id": book.id,
                    "cluster_id": self.scope_id.cluster_id.id,
                    "action": action,
                    "trigger": trigger,
                    "user_id": self.env.uid,
                    "previous_job_id": previous_job.id if previous_job else False,
                    "values": json.dumps(values, indent=2, sort_keys=True),
                    "company_id": self.company_id.id,
                }
            )
        )

    def _set_lifecycle(self, **vals):
        self.sudo().write(vals)

    def _wake_job_runner(self):
        if self.env.context.get("eyrie_defer_wake"):
            return
        cron = self.env.ref(
            "eyrie_deployment.ir_cron_run_jobs", raise_if_not_found=False
        )
        if cron:
            cron.sudo()._trigger()

    def _effective_values(self):
        """The type's defaults, overridden by the scope's section for the
        type, overridden by the deployment's own values; checked."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_default_values", None)
        values = hook() if hook else {}
        values |= self.scope_id._type_values(self.deployment_type)
        try:
            values |= parse_json_object(self.values)
            check_values(
                values, self._accepted_value_keys(self.deployment_type, self.scope_id)
            )
        except ValuesError as error:
            raise ValidationError(
                self.env._(
                    "Values of deployment %(name)s: %(error)s.",
                    name=self.name,
                    error=error,
                )
            ) from error
        return values

    @api.model
    def _accepted_value_keys(self, deployment_type, scope):
        """The keys a deployment of ``deployment_type`` in ``scope`` accepts:
        those its type declares (``_<type>_value_keys``, by default the keys of
        its default values), plus the scope's extra keys for custom books."""
        hook = getattr(self, f"_{deployment_type}_value_keys", None)
        if hook:
            keys = set(hook())
        else:
            defaults = getattr(self, f"_{deployment_type}_default_values", None)
            keys = set(defaults()) if defaults else set()
        return keys | scope._extra_value_keys()

    def _template_secrets(self):
        """Credentials the books see as ``secrets``; never logged."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_template_secrets", None)
        return hook() if hook else dict(self.sudo().credentials or {})

    def _template_context(self, values=None):
        """Plain data the book templates see; never ORM records."""
        self.ensure_one()
        return {
            "deployment": {
                "id": self.id,
                "name": self.name,
                "type": self.deployment_type,
                "namespace": self.namespace,
            },
            "scope": {"id": self.scope_id.id, "name": self.scope_id.name},
            "namespace": self.namespace,
            "values": self._effective_values() if values is None else values,
            "secrets": self._template_secrets(),
        }

    def _cluster_labels(self):
        """Labels of every object Eyrie creates for this deployment, so that
        drop books and audits find them."""
        self.ensure_one()
        return {MANAGED_BY_LABEL: "eyrie", DEPLOYMENT_LABEL: str(self.id)}

    def _check_confined(self, steps, cluster):
        """Raise ``ConfinementError`` when a rendered object of ``steps``
        ((label, step kind, objects)) is outside this deployment's boundary
        on ``cluster`` (see ``tools.confinement``)."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_foreign_objects", None)
        check_book(
            steps,
            self.namespace,
            cluster._allowed_kinds(),
            foreign=frozenset(hook() if hook else ()),
        )

    def _render_step(self, step, context):
        """Objects of ``step`` rendered for this deployment; a type may add to them."""
        return render_documents(step.template, context)

    # ------------------------------------------------------------------
    # Job outcomes, called by eyrie.job
    # ------------------------------------------------------------------

    def _on_job_done(self, job):
        self.ensure_one()
        getattr(self, f"_on_{job.action}_done")(job)

    def _on_initialize_done(self, job):
        # The deploy job chained after it runs next, unless it was cancelled.
        following = self.env["eyrie.job"].search_count(
            [("previous_job_id", "=", job.id), ("state", "=", "pending")], limit=1
        )
        self._set_lifecycle(state="deploying" if following else "initialize")

    def _on_deploy_done(self, job):
        resumed = self.repository_state == "pause"
        self._set_lifecycle(
            repository_state="deploy",
            state="deploy",
            deployed_at=job.ended_at,
            resumed_at=job.ended_at if resumed else self.resumed_at,
            timer_extension_seconds=0,
            error_message=False,
            timer_blocked_until=False,
        )
        self._schedule_timers_cron(self._earliest_timer())

    def _on_pause_done(self, job):
        self._set_lifecycle(
            repository_state="pause",
            state="pause",
            paused_at=job.ended_at,
            error_message=False,
            timer_blocked_until=False,
        )
        self._schedule_timers_cron(self._earliest_timer())

    def _on_job_cancelled(self, job):
        """A pending job was cancelled: back to the phase it left, unless
        another job of the deployment is still in progress."""
        self.ensure_one()
        if self.active_job_id:
            return
        # Any job that started (even one that failed) may have left objects
        # on the cluster: then the deployment stays out of draft, so that its
        # namespace stays locked and Drop cleans up.
        ran = any(other.started_at for other in self.job_ids)
        if self.repository_state == "initialize" and not ran:
            # Nothing ran on the cluster yet: the deployment is a draft again.
            self._set_lifecycle(repository_state="draft", state="draft")
        else:
            self._set_lifecycle(state=self.repository_state)
        # Logged, not posted: a user without an email address cancels too.
        self._message_log(
            body=self.env._(
                "%(user)s cancelled the %(action)s job before it ran.",
                user=self.env.user.name,
                action=job.action,
            )
        )

    def _earliest_timer(self):
        times = [self.next_pause_at, self.next_drop_at, self.drop_warning_due_at]
        return min(filter(None, times), default=None)

    def _on_drop_done(self, job):
        _logger.info("Deployment %s (%s) dropped by job %s", self.name, self.id, job.id)
        self.sudo().unlink()

    def _on_job_failed(self, job):
        self.ensure_one()
        self._set_lifecycle(state="error", error_message=job.error_message)
        self.message_post(
            body=self.env._(
                "The %(action)s job failed: %(error)s",
                action=job.action,
                error=job.error_message,
            )
        )

    # ------------------------------------------------------------------
    # Timers
    # ------------------------------------------------------------------

    @api.model
    def _cron_apply_timers(self, batch_size=200):
        """Pause and drop the deployments whose scope timers are due, then
        wait for the ones due within the next seconds (see
        ``_apply_imminent_timers``). Returns how many timers fired."""
        fired = self._apply_due_timers(batch_size)
        # Not with more due (the cron runs again at once), nor in tests, which
        # run in one transaction with frozen time.
        if fired < batch_size and not in_test():
            fired += self._apply_imminent_timers(batch_size)
        return fired

    @api.model
    def _apply_imminent_timers(self, batch_size):
        """Odoo's cron threads take a future trigger only when they poll,
        once a minute: a timer would fire up to a minute late. So, while a
        timer is due within ``eyrie.timers_wait_seconds`` (default 50), wait
        for it here and fire it on time."""
        budget = int_param(
            self.env, "eyrie.timers_wait_seconds", DEFAULT_TIMERS_WAIT_SECONDS
        )
        deadline = time.monotonic() + budget
        fired = 0
        while True:
            next_at = self._next_timer_at()
            if not next_at:
                return fired
            wait = (next_at - fields.Datetime.now()).total_seconds() + 0.2
            if wait > deadline - time.monotonic():
                # Beyond this run: the trigger set for it wakes the cron.
                return fired
            # A fresh snapshot after the wait, and no transaction held open
            # during it; everything done so far is complete in itself.
            commit_unless_testing(self.env.cr)
            time.sleep(max(0, wait))
            fired += self._apply_due_timers(batch_size)

    @api.model
    def _apply_due_timers(self, batch_size):
        now = fields.Datetime.now()
        self._send_drop_warnings(now, limit=batch_size)
        rows = self._fetch_due_timers(now, limit=batch_size + 1)
        batch = rows[:batch_size]
        # One wake-up of the job runner for the whole batch, not one each.
        deployments = self.browse([row[0] for row in batch]).with_context(
            eyrie_defer_wake=True
        )
        notes = {
            deployment.id: deployment._fire_timer(verb, now)
            for deployment, (_id, verb) in zip(deployments, batch, strict=True)
        }
        if batch:
            # One chatter note per deployment, logged together, without
            # notifying every follower.
            deployments._message_log_batch(
                {deployment_id: escape(note) for deployment_id, note in notes.items()}
            )
            deployments._set_lifecycle(timer_blocked_until=now + TIMER_RETRY_DELAY)
            self._wake_job_runner()
            # Safe: each action is complete in itself (one savepoint each), and
            # a batch lost to a crash is still due at the next run.
            commit_unless_testing(self.env.cr)
        remaining = self._count_due_timers(now) if len(rows) > batch_size else 0
        self.env["ir.cron"]._notify_progress(done=len(batch), remaining=remaining)
        if not remaining:
            self._schedule_timers_cron()
        return len(batch)

    @api.model
    def _schedule_timers_cron(self, at=None):
        """Wake the timers cron when the next timer is due (default: the
        earliest of all), so that it fires within a minute of being due
        instead of at the cron's next periodic run."""
        cron = self.env.ref(
            "eyrie_deployment.ir_cron_deployment_timers", raise_if_not_found=False
        )
        cron = cron and cron.sudo()
        if not cron or not cron.active:
            return
        if at is None:
            at = self._next_timer_at()
        if not at or at >= cron.nextcall:
            return
        already = (
            self.env["ir.cron.trigger"]
            .sudo()
            .search_count([("cron_id", "=", cron.id), ("call_at", "<=", at)], limit=1)
        )
        if not already:
            cron._trigger(at=at)

    @api.model
    def _next_timer_at(self):
        """The earliest future pause, drop or warning time; one index range
        scan per column."""
        self.flush_model(["next_pause_at", "next_drop_at", "drop_warning_due_at"])
        now = fields.Datetime.now()
        self.env.cr.execute(
            SQL(
                """
                SELECT LEAST(
                    (SELECT min(next_pause_at) FROM eyrie_deployment
                      WHERE next_pause_at > %(now)s AND active),
                    (SELECT min(next_drop_at) FROM eyrie_deployment
                      WHERE next_drop_at > %(now)s AND active),
                    (SELECT min(drop_warning_due_at) FROM eyrie_deployment
                      WHERE drop_warning_due_at > %(now)s AND active))
                """,
                now=now,
            )
        )
        return self.env.cr.fetchone()[0]

    @api.model
    def _send_drop_warnings(self, now, limit):
        due = self.search(
            [("drop_warning_due_at", "<=", now)],
            order="drop_warning_due_at",
            limit=limit,
        )
        for deployment in due:
            deployment._warn_before_drop(now)
            commit_unless_testing(self.env.cr)

    def _warn_before_drop(self, now):
        """One activity for the due lead times; each is sent once per drop time."""
        self.ensure_one()
        pending = self._pending_drop_warnings()
        due = [lead for lead in pending if self.next_drop_at - lead <= now]
        if not due:
            return
        late = self.next_drop_at <= now
        sent = sorted(self._sent_drop_warnings() | set(due))
        self._set_lifecycle(
            drop_warned_for=self.next_drop_at,
            drop_warned_hours=",".join(
                f"{lead.total_seconds() / 3600:g}" for lead in sent
            ),
        )
        if late:
            # The drop itself runs now; its chatter message says so.
            return
        summary = self.env._(
            "%(name)s will be dropped %(when)s",
            name=self.name,
            when=_relative(self.next_drop_at - now, self.env),
        )
        self.sudo().activity_schedule(
            "mail.mail_activity_data_warning",
            date_deadline=self.next_drop_at.date(),
            summary=summary,
            note=self.env._(
                "The drop timer of scope %(scope)s removes this deployment and "
                "everything it runs at %(due)s UTC. Use Keep Awake to postpone it, "
                "or ask a manager for Drop Protection.",
                scope=self.scope_id.name,
                due=fields.Datetime.to_string(self.next_drop_at),
            ),
            user_id=(self.user_id or self.create_uid).id,
        )

    def _due_timers_where(self, now):
        return SQL(
            """
            active
            AND (next_drop_at <= %(now)s OR next_pause_at <= %(now)s)
            AND state NOT IN %(in_flight)s
            AND (timer_blocked_until IS NULL OR timer_blocked_until <= %(now)s)
            """,
            now=now,
            in_flight=IN_FLIGHT_STATES,
        )

    @api.model
    def _fetch_due_timers(self, now, limit):
        """(id, verb) of due deployments, oldest first; drop wins over pause."""
        self.flush_model()
        self.env.cr.execute(
            SQL(
                """
                SELECT id,
                       CASE WHEN next_drop_at <= %(now)s THEN 'drop' ELSE 'pause' END
                  FROM eyrie_deployment
                 WHERE %(where)s
              ORDER BY LEAST(COALESCE(next_drop_at, 'infinity'),
                             COALESCE(next_pause_at, 'infinity')), id
                 LIMIT %(limit)s
                """,
                now=now,
                where=self._due_timers_where(now),
                limit=limit,
            )
        )
        return self.env.cr.fetchall()

    @api.model
    def _count_due_timers(self, now):
        self.env.cr.execute(
            SQL(
                "SELECT count(*) FROM eyrie_deployment WHERE %s",
                self._due_timers_where(now),
            )
        )
        return self.env.cr.fetchone()[0]

    def _fire_timer(self, verb, now):
        """Run the due action; returns the chatter note saying what the
        timer did. The caller blocks the timer for an hour either way."""
        self.ensure_one()
        due_at = self.next_drop_at if verb == "drop" else self.next_pause_at
        seconds = self.scope_id[f"deployment_{verb}_after_seconds"]
        timer = self.env._(
            "%(verb)s timer of scope %(scope)s (%(seconds)s s after deploy, due at "
            "%(due)s UTC)",
            verb=verb.capitalize(),
            scope=self.scope_id.name,
            seconds=seconds,
            due=fields.Datetime.to_string(due_at),
        )
        late = max(0, round((fields.Datetime.now() - due_at).total_seconds()))
        _logger.info(
            "Timer: %s of deployment %s fired %s s after it was due",
            verb,
            self.id,
            late,
        )
        try:
            with self.env.cr.savepoint():
                self._run_action(verb, trigger="timer")
            body = self.env._(
                "Automatic %(verb)s started by the %(timer)s, %(late)s s after it "
                "was due.",
                verb=verb,
                timer=timer,
                late=late,
            )
        except UserError as error:
            body = self.env._(
                "Automatic %(verb)s by the %(timer)s was refused: %(error)s "
                "It will be tried again in an hour.",
                verb=verb,
                timer=timer,
                error=error.args[0],
            )
        return body
