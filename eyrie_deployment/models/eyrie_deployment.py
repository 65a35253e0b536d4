import json
import re

from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..tools.values import (
    CONTROL_RE,
)
from .eyrie_scope import BOOK_ACTIONS

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
IN_FLIGHT_STATES = (
    "initializing",
    "deploying",
    "pausing",
    "dropping",
    "backing_up",
    "restoring",
)
STATES = [
    ("draft", "Draft"),
    ("initializing", "Initializing"),
    ("initialize", "Initialize"),
    ("deploying", "Deploying"),
    ("deploy", "Deployed"),
    ("pausing", "Pausing"),
    ("pause", "Paused"),
    ("dropping", "Dropping"),
    ("backing_up", "Backing Up"),
    ("restoring", "Restoring"),
    ("error", "Error"),
]


def namespace_from_name(name):
    slug = re.sub(r"[^a-z0-9-]+", "-", (name or "").lower())
    slug = re.sub(r"-{2,}", "-", slug).strip("-")
    return slug[:NAMESPACE_MAX_LENGTH].rstrip("-")


class EyrieDeployment(models.Model):
    """A deployment (an Odoo instance, a PostgreSQL cluster, ...) on a cluster.

    This model names no deployment type. A module adds one as a value of
    ``deployment_type`` (``selection_add``, with
    ``ondelete={"<type>": lambda records: records._unlink_type_rows()}``) and
    the methods below, found by name, in a file of its own
    (``models/eyrie_deployment_<type>.py``).

    **Lifecycle actions.** ``action_deploy``, ``action_pause`` and
    ``action_drop`` (form buttons, XML-RPC, the timers) lock the deployments'
    rows, check what every type shares (the caller may write, the deployment
    is active, no job is in progress, the phase allows the verb, drop
    protection and the scope's *Allow Drop*, the deployments depending on
    this one: ``_check_dependents``), then call ``<type>_action_<verb>()``
    on each deployment. That method:

    - is called on one record, its row locked and the checks passed, in the
      caller's transaction: a ``UserError`` it raises undoes the whole action;
    - must be decorated with ``@api.private``: it skips the checks, so it
      must not be callable over RPC (``_dispatch`` refuses one that is);
    - may check the type's own preconditions and refuse with a ``UserError``
      that names the fix, generate credentials (``_ensure_credentials``) and
      create the jobs through the building blocks ``_start_deploy``,
      ``_start_pause`` and ``_start_drop``, which it returns;
    - must not write ``state``, ``repository_state`` or another lifecycle
      field, nor call the cluster: the jobs do, asynchronously, and their
      outcome moves the state (``_on_job_done``, ``_on_job_failed``,
      ``_on_job_cancelled``).

    **Optional hooks**, found by name, without arguments:

    - ``_<type>_default_books()``: {action: XML id of the book used where the
      scope sets none for the type};
    - ``_<type>_default_values()``: the lowest layer of the values;
    - ``_<type>_value_keys()``: the keys the values accept (default: those
      of the default values);
    - ``_<type>_template_secrets()``: what the books see as ``secrets``
      (default: the credentials);
    - ``_<type>_foreign_objects()``: the ``(namespace, "group/Kind", name)``
      the books may touch outside the deployment's namespace.

    **Between types**, overridden with ``super()``: ``_check_dependents(verb)``
    refuses an action on a deployment others depend on, and
    ``_fields_locked_after_draft()`` names the fields fixed once a
    deployment is on its cluster.
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

    # Each type's file adds its value (selection_add).
    deployment_type = fields.Selection(
        selection=[],
        string="Type",
        required=True,
        tracking=True,
        default=lambda self: self._last_deployment().deployment_type,
    )

    scope_id = fields.Many2one(
        "eyrie.scope",
        required=True,
        default=lambda self: self._default_scope(),
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
        # A duplicate is its copier's, as a new deployment is its creator's.
        copy=False,
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

    credentials = fields.Json(
        groups="eyrie_deployment.group_eyrie_manager",
        copy=False,
        help="Generated once, on the first deploy; kept across redeploys. Books "
        "see them as 'secrets'.",
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

    deployment_backup_book_id = fields.Many2one(
        "eyrie.deployment.book",
        string="Backup Book",
        compute="_compute_books",
        store=True,
        readonly=False,
        precompute=True,
        ondelete="restrict",
    )

    deployment_restore_book_id = fields.Many2one(
        "eyrie.deployment.book",
        string="Restore Book",
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

    runner_missing = fields.Text(
        compute="_compute_runner_missing",
        help="Set when its job has been due for minutes and no job runner took "
        "it: what to configure.",
    )

    can_act = fields.Boolean(
        compute="_compute_can_act",
        help="Whether the current user may act on this deployment: its owner "
        "(creator or Responsible) or an Eyrie manager. The form shows its "
        "actions only then.",
    )

    deployed_at = fields.Datetime(readonly=True, copy=False)

    paused_at = fields.Datetime(readonly=True, copy=False)

    # ------------------------------------------------------------------
    # Defaults
    # ------------------------------------------------------------------

    @api.model
    def _last_deployment(self):
        """The last deployment the user created, archived or not."""
        return self.with_context(active_test=False).search(
            [("create_uid", "=", self.env.uid)], order="id desc", limit=1
        )

    @api.model
    def _default_scope(self):
        """The scope of the user's last deployment, or their only scope."""
        scope = self._last_deployment().scope_id
        if scope.active and scope.has_access("read"):
            return scope
        scopes = self.env["eyrie.scope"].search([], limit=2)
        return scopes if len(scopes) == 1 else scopes.browse()

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
            if not deployment._is_typed():
                deployment.effective_values = False
                continue
            try:
                values = deployment._effective_values()
            except ValidationError:
                values = {}
            deployment.effective_values = json.dumps(values, indent=2, sort_keys=True)

    # Its dependencies make the web client's onchange compute it for a new
    # record (a compute without any is never recomputed there).
    @api.depends("user_id", "create_uid")
    @api.depends_context("uid")
    def _compute_can_act(self):
        writable = self._origin._filtered_access("write")
        for deployment in self:
            origin = deployment._origin
            # A record being created is its creator's.
            deployment.can_act = not origin or origin in writable

    def _is_typed(self):
        """Whether the scope and the type are chosen: what depends on the
        type is computed only then (a new record in the form has neither)."""
        self.ensure_one()
        return bool(self.scope_id and self.deployment_type)

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
        # The oldest job in progress (the one that runs or is due first, not
        # one chained after it), by one query: not every job of every
        # deployment read, logs included (the form computes it at each
        # refresh).
        jobs = self.env["eyrie.job"].search_fetch(
            [
                ("deployment_id", "in", self._origin.ids),
                ("state", "in", ("pending", "running")),
            ],
            ["deployment_id"],
            order="id",
        )
        active = {}
        for job in jobs:
            active.setdefault(job.deployment_id.id, job)
        for deployment in self:
            deployment.active_job_id = active.get(
                deployment._origin.id, self.env["eyrie.job"]
            )

    @api.depends("job_ids.state")
    def _compute_runner_missing(self):
        for deployment in self:
            deployment.runner_missing = deployment.active_job_id.runner_missing

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
        "deployment_type",
        "deployment_initialize_book_id",
        "deployment_deploy_book_id",
        "deployment_pause_book_id",
        "deployment_drop_book_id",
        "deployment_backup_book_id",
        "deployment_restore_book_id",
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
