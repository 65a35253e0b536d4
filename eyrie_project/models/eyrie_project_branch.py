import json

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

from odoo.addons.eyrie_deployment.models.eyrie_deployment import namespace_from_name

from .eyrie_project import MANAGERS, STAGES

# A namespace is a DNS label: room for the branch's id after the name.
NAMESPACE_NAME_LENGTH = 48


class EyrieProjectBranch(models.Model):
    """A branch of a project's repository and its build: the deployment
    that runs its code in its stage."""

    _name = "eyrie.project.branch"
    _description = "Eyrie Project Branch"
    _order = "project_id, stage_sequence, name"

    project_id = fields.Many2one(
        "eyrie.project", required=True, ondelete="cascade", index=True, readonly=True
    )
    company_id = fields.Many2one(related="project_id.company_id", store=True)
    name = fields.Char(string="Branch", required=True, readonly=True)
    active = fields.Boolean(default=True, readonly=True)
    stage = fields.Selection(
        STAGES,
        required=True,
        group_expand="_group_expand_stages",
        help="Production follows the project's production branch; drag a "
        "build between staging and development to build it again there.",
    )
    stage_sequence = fields.Integer(compute="_compute_stage_sequence", store=True)
    commit = fields.Char(
        string="Commit SHA", readonly=True, help="The branch's last known commit."
    )
    commit_short = fields.Char(string="Commit", compute="_compute_commit_short")
    author = fields.Char(readonly=True)
    message = fields.Char(string="Commit Message", readonly=True)
    pull_request = fields.Integer(readonly=True)
    deployed_commit = fields.Char(
        readonly=True, help="The commit the build's last deploy ran."
    )
    deployment_id = fields.Many2one(
        "eyrie.deployment",
        string="Build",
        readonly=True,
        ondelete="set null",
        index="btree_not_null",
    )
    state = fields.Selection(related="deployment_id.state", string="Build State")
    url = fields.Char(string="URL", compute="_compute_url")
    test_state = fields.Selection(related="deployment_id.test_state")
    test_summary = fields.Char(related="deployment_id.test_summary")
    gone = fields.Boolean(
        readonly=True,
        help="The branch was deleted (or its pull request closed): its build "
        "is dropped once no job of it runs.",
    )
    build_message = fields.Char(
        readonly=True, help="Why the branch has no build, or why its build stays."
    )

    _sql_constraints = [
        (
            "name_project_uniq",
            "unique(project_id, name)",
            "A project has each branch once.",
        ),
    ]

    @api.model
    def _group_expand_stages(self, stages, domain):
        return [key for key, _label in STAGES]

    @api.depends("stage")
    def _compute_stage_sequence(self):
        order = {key: index for index, (key, _label) in enumerate(STAGES)}
        for branch in self:
            branch.stage_sequence = order.get(branch.stage, 9)

    @api.depends("deployment_id.hostname")
    def _compute_url(self):
        for branch in self:
            deployment = branch.deployment_id
            base = deployment._odoo_base_url() if deployment else False
            branch.url = f"{base}/" if base else False

    @api.depends("commit")
    def _compute_commit_short(self):
        for branch in self:
            branch.commit_short = (branch.commit or "")[:12] or False

    # ------------------------------------------------------------------
    # What users may write: the stage, by drag, between staging and
    # development; everything else is the pushes'.
    # ------------------------------------------------------------------

    def write(self, vals):
        if not self.env.su:
            if set(vals) - {"stage"} and not self.env.user.has_group(MANAGERS):
                raise AccessError(
                    self.env._(
                        "A branch follows its repository: only its stage can be "
                        "changed (drag it), by the project's members."
                    )
                )
            self.project_id._check_member(self.env._("change the branches of"))
        moved = self.browse()
        if "stage" in vals and not self.env.context.get("eyrie_project_events"):
            moved = self.filtered(lambda b: b.stage != vals["stage"])
            moved._check_stage_change(vals["stage"])
        result = super().write(vals)
        for branch in moved:
            # The builds are the lifecycle's: a member moves the branch, the
            # project (a manager's configuration) decides what is built.
            branch.sudo()._rebuild()
        return result

    def _check_stage_change(self, stage):
        for branch in self:
            if "production" in (stage, branch.stage):
                raise UserError(
                    self.env._(
                        "Branch %(branch)s: production is the project's Production "
                        "Branch and Production deployment; a manager changes them "
                        "on the project. Drag between staging and development only.",
                        branch=branch.name,
                    )
                )

    def _rebuild(self):
        """Drop the build of the stage the branch left (under its scope's
        rules: a refusal keeps the branch where it was), then build it in
        its new stage."""
        self.ensure_one()
        old = self.deployment_id
        if old:
            old._run_action("drop", trigger="push")
            self.deployment_id = False
        self._build()
        self.project_id._message_log(
            body=self.env._(
                "Branch %(branch)s moved to %(stage)s by %(user)s: %(what)s",
                branch=self.name,
                stage=dict(STAGES)[self.stage],
                user=self.env.user.name,
                what=self.build_message
                or self.env._("built as %s", self.deployment_id.name),
            )
        )

    # ------------------------------------------------------------------
    # Builds
    # ------------------------------------------------------------------

    def _namespace(self):
        """A namespace of its own for each build: the project and branch,
        the stage and the branch's id, then a number where an earlier
        build (still dropping) holds it."""
        project = self.project_id
        name = namespace_from_name(f"{project.name}-{self.name}")
        base = f"{name[:NAMESPACE_NAME_LENGTH].rstrip('-')}-{self.stage[0]}{self.id}"
        # Namespaces of every company's deployments: they share the cluster.
        taken = set(
            self.env["eyrie.deployment"]
            .sudo()
            .with_context(active_test=False)
            .search([("namespace", "=like", f"{base}%")])
            .mapped("namespace")
        )
        namespace, number = base, 1
        while namespace in taken:
            number += 1
            namespace = f"{base}-{number}"
        return namespace

    def _build_name(self):
        return f"{self.project_id.name} · {self.name}"

    def _build(self):
        """Create the branch's deployment for its stage and deploy it; say
        why not where the project cannot (a stage without its scope, no
        production to clone)."""
        self.ensure_one()
        self.build_message = False
        if self.stage == "production":
            return self._deploy_production()
        builder = {
            "staging": self._build_staging,
            "development": self._build_development,
        }[self.stage]
        if self.stage == "staging" and self.project_id.production_deployment_id:
            # Production's deploy ends build the staging branches that wait
            # for it (_project_follow_up): linked to its branch, kept even
            # when this build is refused.
            self.project_id._production_branch()
        try:
            with self.env.cr.savepoint():
                deployment = builder()
        except UserError as error:
            self.build_message = error.args[0]
            return self.env["eyrie.deployment"]
        self.deployment_id = deployment
        return deployment

    def _refuse(self, message):
        raise UserError(
            self.env._("Branch %(branch)s: %(why)s", branch=self.name, why=message)
        )

    def _build_development(self):
        project = self.project_id
        scope = project.development_scope_id
        if not scope:
            self._refuse(
                self.env._("the project has no Development Scope; a manager sets one.")
            )
        modules = project._module_list()
        values = {
            "repositories": project._repositories(self.name),
            "modules": modules,
            "demo": True,
            "tests": modules,
        }
        deployment = self.env["eyrie.deployment"].create(
            {
                "name": self._build_name(),
                "deployment_type": "odoo",
                "scope_id": scope.id,
                "namespace": self._namespace(),
                "user_id": project.user_id.id,
                "values": json.dumps(values, indent=2, sort_keys=True),
                "project_branch_id": self.id,
            }
        )
        deployment._run_action("deploy", trigger="push")
        return deployment

    def _build_staging(self):
        project = self.project_id
        production = project.production_deployment_id
        scope = project.staging_scope_id
        if not scope:
            self._refuse(
                self.env._("the project has no Staging Scope; a manager sets one.")
            )
        if not production or production.repository_state not in ("deploy", "pause"):
            self._refuse(
                self.env._(
                    "a staging build is a clone of production, and the project has "
                    "no deployed Production yet."
                )
            )
        clones = []
        production.with_context(
            eyrie_project_clone={
                "branch_id": self.id,
                "namespace": self._namespace(),
                "repositories": self._staging_repositories(production),
                "user_id": project.user_id.id,
            }
        )._run_action(
            "clone",
            trigger="push",
            scope_id=scope.id,
            name=self._build_name(),
            neutralize=True,
            created=clones,
        )
        return clones[0]

    def _staging_repositories(self, production):
        """Production's repositories, the project's at this branch."""
        project = self.project_id
        repositories = production._effective_values().get("repositories") or []
        found = False
        result = []
        for repository in repositories:
            if project._is_own_repository(repository.get("url")):
                repository = dict(repository, ref=self.name)
                found = True
            result.append(repository)
        if not found:
            result.insert(0, project._repositories(self.name)[0])
        return result

    def _deploy_production(self):
        production = self.project_id.production_deployment_id
        if not production:
            self.build_message = self.env._(
                "the project has no Production deployment; a manager chooses one."
            )
            return production
        self.deployment_id = production
        if not production.project_branch_id:
            # Its deploys' ends record the branch's commit; its rights stay
            # its owner's (the members' rule is the builds').
            production.project_branch_id = self
        if production.active_job_id:
            # Its deploy's end looks at the branch again (_project_follow_up).
            return production
        if self.commit and self.commit == self._served_commit(production):
            # Already what production runs (a branch seen for the first time).
            self.deployed_commit = self.commit
            return production
        if production.repository_state != "deploy":
            # A push never starts production nor wakes it: its resume pins
            # the branch's head then.
            self.build_message = self.env._(
                "production %(name)s is not running (%(state)s): the push is "
                "deployed by its next deploy or resume.",
                name=production.name,
                state=dict(production._fields["state"].selection)[production.state],
            )
            return production
        try:
            with self.env.cr.savepoint():
                production._run_action("deploy", trigger="push")
        except UserError as error:
            self.build_message = error.args[0]
        return production

    def _served_commit(self, deployment):
        """The commit of the project's repository ``deployment`` serves."""
        served = deployment._odoo_served_code() or {}
        for item in served.get("commits") or ():
            if self.project_id._is_own_repository(item.get("url")):
                return item["commit"]
        return False

    def _build_waiting(self):
        """Build the staging branches that waited for production (its job
        in progress, or not deployed yet when they were pushed)."""
        for branch in self:
            try:
                with self.env.cr.savepoint():
                    branch._build()
            except UserError as error:
                branch.build_message = error.args[0]
            if branch.deployment_id:
                branch.project_id._message_log(
                    body=self.env._(
                        "%(branch)s: production is ready — building %(build)s",
                        branch=branch.name,
                        build=branch.deployment_id.name,
                    )
                )

    def _update(self):
        """A push to a branch that has its build: deploy it again (its refs
        pinned again: the pushed commit), unless a job of it is in progress,
        whose end does (``_project_follow_up``)."""
        self.ensure_one()
        deployment = self.deployment_id
        if not deployment.exists():
            return self._build()
        if deployment.active_job_id:
            return deployment
        self.build_message = False
        try:
            with self.env.cr.savepoint():
                deployment._run_action("deploy", trigger="push")
        except UserError as error:
            self.build_message = error.args[0]
        return deployment

    def _drop_build(self, why):
        """The branch is gone (or its pull request closed): drop its build
        under its scope's rules; a refusal keeps it, saying why."""
        self.ensure_one()
        self.gone = True
        deployment = self.deployment_id
        if self.stage == "production":
            self.build_message = self.env._(
                "the production branch is gone; production is never dropped by a push."
            )
            return False
        if not deployment.exists() or deployment.active_job_id:
            # In progress: its end drops it (_project_follow_up).
            if not deployment.exists():
                self.active = False
            return bool(deployment)
        try:
            with self.env.cr.savepoint():
                deployment._run_action("drop", trigger="push")
        except UserError as error:
            self.build_message = self.env._(
                "%(why)s, but its build stays: %(error)s", why=why, error=error.args[0]
            )
            return False
        self.active = False
        return True

    def action_open_build(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "eyrie.deployment",
            "res_id": self.deployment_id.id,
            "view_mode": "form",
            "target": "current",
        }

    def _follow_push(self, event, fresh):
        """Build or update the branch's deployment after ``event``; the
        chatter's note."""
        self.ensure_one()
        commit = (event["commit"] or "")[:12]
        pushed = self.env._(
            "%(kind)s of %(branch)s%(at)s%(by)s%(message)s",
            kind={
                "push": self.env._("Push"),
                "open": self.env._("Pull request")
                if event["pull_request"]
                else self.env._("New branch"),
            }[event["kind"]],
            branch=self.name,
            at=f" at {commit}" if commit else "",
            by=self.env._(" by %s", event["author"]) if event["author"] else "",
            message=f": {event['message']}" if event["message"] else "",
        )
        had_build = self.deployment_id.exists() and not fresh
        if event["kind"] == "open" and had_build:
            return pushed
        deployment = self._update() if had_build else self._build()
        if self.build_message:
            what = self.build_message
        elif self.stage == "production":
            what = (
                self.env._("updating %s", deployment.name)
                if deployment.active_job_id
                else self.env._("%s already runs it", deployment.name)
            )
        elif had_build:
            what = self.env._("updating %s", deployment.name)
        else:
            what = self.env._(
                "building %(build)s (%(stage)s)",
                build=deployment.name,
                stage=dict(self._fields["stage"].selection)[self.stage],
            )
        return f"{pushed} — {what}"
