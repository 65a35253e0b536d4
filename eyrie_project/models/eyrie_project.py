import fnmatch
import json
import logging
import secrets

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

from odoo.addons.eyrie_deployment.tools.git_sources import (
    GitError,
    branch_heads,
    check_modules,
    check_repositories,
    parse_git_url,
    split_names,
)
from odoo.addons.eyrie_deployment.tools.scrub import Scrubber, secret_strings
from odoo.addons.eyrie_deployment.tools.values import ValuesError

from ..tools.webhooks import repository_key

_logger = logging.getLogger(__name__)

MANAGERS = "eyrie_deployment.group_eyrie_manager"
STAGES = [
    ("production", "Production"),
    ("staging", "Staging"),
    ("development", "Development"),
]


class EyrieProject(models.Model):
    """A git repository whose branches become environments: its production
    branch is a deployment a manager chose, its staging branches neutralized
    clones of production on their code, its development branches fresh
    databases with demo data whose tests run. Pushes (webhooks, or a check
    of the repository's branches) keep each build on its branch's code."""

    _name = "eyrie.project"
    _description = "Eyrie Project"
    _inherit = ["mail.thread"]
    _order = "name"
    _check_company_auto = True

    name = fields.Char(required=True, tracking=True)
    active = fields.Boolean(default=True)
    company_id = fields.Many2one(
        "res.company",
        required=True,
        default=lambda self: self.env.company,
        index=True,
    )
    user_id = fields.Many2one(
        "res.users",
        string="Responsible",
        required=True,
        default=lambda self: self.env.user,
        tracking=True,
        help="Owns the builds (their Responsible); the project's chatter "
        "records pushes and builds in their name.",
    )
    member_ids = fields.Many2many(
        "res.users",
        "eyrie_project_member_rel",
        "project_id",
        "user_id",
        help="The users who see the project and act on its staging and "
        "development builds (deploy, pause, drop, logs, stage). Production "
        "stays its owner's and the managers'.",
    )
    repository_url = fields.Char(
        string="Repository",
        required=True,
        tracking=True,
        help="The git repository of the project's addons (https:// or ssh://), "
        "on a git host the stages' scopes allow.",
    )
    addons_path = fields.Char(
        string="Modules Folder",
        help="The folder of the repository that holds the modules; empty: its "
        "top folder.",
    )
    git_credential_id = fields.Many2one(
        "eyrie.git.credential",
        check_company=True,
        tracking=True,
        help="Reads the repository (builds, checks for new commits); the "
        "stages' scopes must offer it.",
    )
    extra_repositories = fields.Text(
        default="[]",
        help="Other addons repositories every build adds, as the values' "
        '"repositories": [{"url", "ref", "path"?, "credential"?}].',
    )
    modules = fields.Char(
        help="The project's modules, comma-separated: installed on every "
        "development build, and tested there.",
    )
    production_branch = fields.Char(required=True, default="main", tracking=True)
    production_deployment_id = fields.Many2one(
        "eyrie.deployment",
        string="Production",
        check_company=True,
        tracking=True,
        domain="[('deployment_type', '=', 'odoo')]",
        help="The Odoo deployment that serves the production branch: a push "
        "to the branch updates it; staging builds are its neutralized clones.",
    )
    staging_pattern = fields.Char(
        default="staging*",
        tracking=True,
        help="Branches that become staging builds (shell patterns, "
        "comma-separated, such as staging*, release-*).",
    )
    staging_scope_id = fields.Many2one(
        "eyrie.scope",
        check_company=True,
        tracking=True,
        help="Where staging builds go: their timers, values and books. On "
        "production's cluster (a clone copies its data inside it).",
    )
    development_pattern = fields.Char(
        default="*",
        tracking=True,
        help="Branches that become development builds, once neither production "
        "nor staging (shell patterns, comma-separated; * for every other one).",
    )
    development_scope_id = fields.Many2one(
        "eyrie.scope",
        check_company=True,
        tracking=True,
        help="Where development builds go: their timers, values and books.",
    )
    poll_commits = fields.Boolean(
        string="Check Periodically",
        help="Without webhooks: check the repository's branches every few "
        "minutes (git ls-remote).",
    )
    webhook_secret = fields.Char(
        groups=MANAGERS,
        copy=False,
        help="The secret of the webhook: GitHub's, Gitea's and Forgejo's "
        "'Secret', GitLab's 'Secret token'.",
    )
    webhook_url = fields.Char(compute="_compute_webhook_url")
    branch_ids = fields.One2many(
        "eyrie.project.branch", "project_id", string="Branches"
    )
    branch_count = fields.Integer(compute="_compute_branch_count")
    is_member = fields.Boolean(compute="_compute_is_member")

    _sql_constraints = [
        (
            "name_company_uniq",
            "unique(company_id, name)",
            "A project with this name already exists in this company.",
        ),
    ]

    def _compute_webhook_url(self):
        base = self.env["ir.config_parameter"].sudo().get_param("web.base.url", "")
        for project in self:
            project.webhook_url = (
                f"{base}/eyrie/projects/{project.id}/webhook" if project.id else False
            )

    @api.depends("branch_ids")
    def _compute_branch_count(self):
        for project in self:
            project.branch_count = len(project.branch_ids)

    @api.depends("member_ids")
    @api.depends_context("uid")
    def _compute_is_member(self):
        manager = self.env.user.has_group(MANAGERS)
        for project in self:
            project.is_member = manager or self.env.user in project.member_ids

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------

    @api.constrains("repository_url", "addons_path", "extra_repositories", "modules")
    def _check_code(self):
        for project in self:
            try:
                parse_git_url(project.repository_url, "repository")
                check_repositories(project._repositories("main"), "repository")
                check_modules(project._module_list(), "modules")
            except ValuesError as error:
                raise ValidationError(
                    self.env._(
                        "Project %(name)s: %(error)s.", name=project.name, error=error
                    )
                ) from None

    @api.constrains("staging_pattern", "development_pattern", "production_branch")
    def _check_patterns(self):
        for project in self:
            for pattern in project._patterns("staging") + project._patterns(
                "development"
            ):
                if any(char in pattern for char in "\\\"'`$;") or len(pattern) > 100:
                    raise ValidationError(
                        self.env._(
                            "Project %(name)s: the pattern %(pattern)r is not a "
                            "branch pattern; use *, ? and letters, such as "
                            "staging*.",
                            name=project.name,
                            pattern=pattern,
                        )
                    )

    @api.constrains("production_deployment_id", "staging_scope_id")
    def _check_stages(self):
        for project in self:
            production = project.production_deployment_id
            if production and production.deployment_type != "odoo":
                raise ValidationError(
                    self.env._(
                        "Project %(name)s: production %(deployment)s is not an Odoo "
                        "deployment; choose one.",
                        name=project.name,
                        deployment=production.name,
                    )
                )
            scope = project.staging_scope_id
            if production and scope and scope.cluster_id != production.cluster_id:
                raise ValidationError(
                    self.env._(
                        "Project %(name)s: staging builds are clones of production, "
                        "whose data is on cluster %(cluster)s, but the staging scope "
                        "%(scope)s is on %(other)s. Choose a scope on %(cluster)s.",
                        name=project.name,
                        cluster=production.cluster_id.name,
                        scope=scope.name,
                        other=scope.cluster_id.name,
                    )
                )

    # ------------------------------------------------------------------
    # What the builds are made of
    # ------------------------------------------------------------------

    def _module_list(self):
        return sorted(split_names(self.modules or ""))

    def _extra_repositories(self):
        try:
            extra = json.loads(self.extra_repositories or "[]")
        except ValueError:
            raise ValidationError(
                self.env._(
                    "Project %(name)s: 'Extra Repositories' is not JSON; write a "
                    'list such as [{"url": "https://github.com/OCA/web.git", '
                    '"ref": "18.0"}].',
                    name=self.name,
                )
            ) from None
        return extra if isinstance(extra, list) else [extra]

    def _repositories(self, ref):
        """The repositories of a build of branch ``ref``: the project's at
        that branch, then the extra ones."""
        self.ensure_one()
        own = {"url": self.repository_url, "ref": ref}
        if self.addons_path:
            own["path"] = self.addons_path
        if self.git_credential_id:
            own["credential"] = self.git_credential_id.name
        return [own, *self._extra_repositories()]

    def _patterns(self, stage):
        return [
            pattern.strip()
            for pattern in (self[f"{stage}_pattern"] or "").split(",")
            if pattern.strip()
        ]

    def _stage_of(self, branch):
        """The stage of a branch by its name; False: none (not built)."""
        self.ensure_one()
        if branch == self.production_branch:
            return "production"
        for stage in ("staging", "development"):
            if any(fnmatch.fnmatchcase(branch, p) for p in self._patterns(stage)):
                return stage
        return False

    def _is_own_repository(self, url):
        return repository_key(url) == repository_key(self.repository_url)

    # ------------------------------------------------------------------
    # Actions
    # ------------------------------------------------------------------

    def _check_member(self, what):
        for project in self:
            if not project.is_member:
                raise AccessError(
                    self.env._(
                        "You cannot %(what)s project %(name)s: only its members and "
                        "Eyrie managers can. Ask a manager to add you.",
                        what=what,
                        name=project.name,
                    )
                )

    def action_generate_webhook_secret(self):
        """A new webhook secret (managers): the git host must get it too."""
        if not self.env.user.has_group(MANAGERS):
            raise AccessError(
                self.env._("Only Eyrie managers set a project's webhook secret.")
            )
        for project in self:
            project.sudo().webhook_secret = secrets.token_urlsafe(32)
            project._message_log(
                body=self.env._(
                    "A new webhook secret was generated: give it to the git host."
                )
            )
        return True

    def action_check_commits(self):
        """Compare the repository's branches (git ls-remote) with the
        project's, and queue what changed: a new or moved branch builds or
        updates, a branch gone drops its build. Returns how many changes."""
        self._check_member(self.env._("check for new commits of"))
        changes = 0
        for project in self:
            # The credential is a manager's; the check reads the repository
            # for a member, as a webhook does.
            changes += len(project.sudo()._queue_changed_heads(project._heads()))
        return changes

    def action_view_branches(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id(
            "eyrie_project.eyrie_project_branch_action"
        )
        action["domain"] = [("project_id", "=", self.id)]
        action["context"] = {"default_project_id": self.id, "create": False}
        return action

    def _check_allowed_host(self):
        """The repository is read only on a git host its stages' scopes
        allow, as the builds' repositories are."""
        host = parse_git_url(self.repository_url, "repository")[1]
        scopes = (
            self.staging_scope_id
            | self.development_scope_id
            | self.production_deployment_id.scope_id
        )
        allowed = set().union(*(split_names(scope.git_hosts) for scope in scopes))
        if host not in allowed:
            raise UserError(
                self.env._(
                    "Project %(name)s: %(host)s is not one of the Git Hosts of its "
                    "stages' scopes; a manager adds it to a scope (tab Code).",
                    name=self.name,
                    host=host,
                )
            )

    def _heads(self):
        """{branch: commit} of the repository now."""
        self.ensure_one()
        self._check_allowed_host()
        credential = self.sudo().git_credential_id
        secrets_ = credential._secrets() if credential else {}
        try:
            return branch_heads(self.repository_url, secrets_)
        except (GitError, ValuesError) as error:
            message = Scrubber(secret_strings(secrets_))(str(error))
            raise UserError(
                self.env._(
                    "Project %(name)s: the branches of %(url)s could not be "
                    "read: %(error)s",
                    name=self.name,
                    url=self.repository_url,
                    error=message,
                )
            ) from None

    def _queue_changed_heads(self, heads):
        """Queue the events that bring the project's branches to ``heads``."""
        self.ensure_one()
        known = {
            branch.name: branch
            for branch in self.branch_ids.filtered(lambda b: b.active)
        }
        events = []
        for name, commit in sorted(heads.items()):
            branch = known.get(name)
            if self._stage_of(name) and (not branch or branch.commit != commit):
                events.append(
                    {"kind": "push", "branch": name, "commit": commit}
                    | {"author": "", "message": "", "pull_request": 0}
                )
        for name, branch in known.items():
            if name not in heads and branch.stage != "production":
                events.append(
                    {"kind": "delete", "branch": name, "commit": ""}
                    | {"author": "", "message": "", "pull_request": 0}
                )
        if events:
            self._queue_events(events, self.env._("a check of the branches"))
        return events

    def _queue_events(self, events, source):
        """Apply ``events`` in a queue job, never in the request: as the
        project's Responsible, with the lifecycle's rights (the project's
        configuration, a manager's, decides what is built)."""
        self.ensure_one()
        project = self.with_user(self.user_id).sudo()
        project.with_delay(
            description=self.env._("Project %s: apply branch events", self.name)
        )._apply_events(events, source)

    @api.model
    def _cron_poll_commits(self):
        """Check the branches of the projects that ask for it; one project's
        failure (a host down) never stops the others."""
        for project in self.search([("poll_commits", "=", True)]):
            try:
                with self.env.cr.savepoint():
                    project._queue_changed_heads(project._heads())
            # Any error: one project never stops the batch.
            except Exception as error:  # noqa: BLE001
                _logger.warning(
                    "Eyrie: the branches of project %s could not be checked: %s",
                    project.name,
                    error,
                )
