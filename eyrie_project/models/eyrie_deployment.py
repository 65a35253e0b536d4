import logging

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError

_logger = logging.getLogger(__name__)


class EyrieDeployment(models.Model):
    """A project's build: the branch it runs, the access of the project's
    members, and what a build does when a deploy ends (a push came in
    meanwhile, or the branch was deleted)."""

    _inherit = "eyrie.deployment"

    project_branch_id = fields.Many2one(
        "eyrie.project.branch",
        string="Branch",
        readonly=True,
        copy=False,
        ondelete="set null",
        index="btree_not_null",
        help="The project branch this deployment builds.",
    )
    project_id = fields.Many2one(
        related="project_branch_id.project_id", string="Project", store=True
    )
    project_stage = fields.Selection(related="project_branch_id.stage", string="Stage")
    project_commit = fields.Char(
        related="project_branch_id.commit_short", string="Branch Commit"
    )
    project_commit_message = fields.Char(
        related="project_branch_id.message", string="Commit Message"
    )
    project_commit_author = fields.Char(
        related="project_branch_id.author", string="Commit Author"
    )

    @api.model_create_multi
    def create(self, vals_list):
        if not self.env.su and any("project_branch_id" in vals for vals in vals_list):
            self._refuse_project_fields()
        return super().create(vals_list)

    def write(self, vals):
        if not self.env.su and "project_branch_id" in vals:
            self._refuse_project_fields()
        return super().write(vals)

    def _refuse_project_fields(self):
        raise AccessError(
            self.env._(
                "A deployment's branch is set by its project's builds, never "
                "written: push the branch instead."
            )
        )

    @api.model
    def _job_run_fields(self):
        # A deploy's end looks at the branch it builds.
        return super()._job_run_fields() | {"project_branch_id"}

    def _create_clone(self, scope, name, backup, neutralize, values):
        build = self.env.context.get("eyrie_project_clone")
        if not build:
            return super()._create_clone(scope, name, backup, neutralize, values)
        values = dict(values, repositories=build["repositories"])
        clone = super()._create_clone(scope, name, backup, neutralize, values)
        # A staging build: the project's, on the branch's code; the clone's
        # deploy (queued next) runs it.
        clone.sudo().write(
            {
                "namespace": build["namespace"],
                "user_id": build["user_id"],
                "project_branch_id": build["branch_id"],
            }
        )
        return clone

    # ------------------------------------------------------------------
    # Outcomes
    # ------------------------------------------------------------------

    def _on_deploy_done(self, job):
        result = super()._on_deploy_done(job)
        if self.project_branch_id:
            self._project_follow_up(job)
        return result

    def _on_deploy_failed(self, job):
        result = super()._on_deploy_failed(job)
        if self.project_branch_id and self.exists() and not self.active_job_id:
            self._project_follow_up(job)
        return result

    def _on_drop_done(self, job):
        branch = self.sudo().project_branch_id
        if branch:
            branch.project_id._message_log(
                body=self.env._(
                    "The build %(build)s of %(branch)s was dropped.",
                    build=self.name,
                    branch=branch.name,
                )
            )
        return super()._on_drop_done(job)

    def _project_follow_up(self, job):
        """After a deploy of a build: record what it runs, then catch up
        with what happened meanwhile — the branch gone (drop it), or pushed
        again (deploy it again)."""
        # The branch is the project's record, a manager's configuration.
        branch = self.sudo().project_branch_id
        values = job._job_values()
        own = [
            item["commit"]
            for item in values.get("commits") or ()
            if branch.project_id._is_own_repository(item.get("url"))
        ]
        if own and job.state == "done":
            branch.deployed_commit = own[0]
        if self.active_job_id:
            return
        if branch.stage == "production" and job.state == "done":
            branch.project_id.branch_ids.filtered(
                lambda b: b.stage == "staging" and not b.deployment_id and not b.gone
            )._build_waiting()
        try:
            with self.env.cr.savepoint():
                if branch.gone:
                    branch._drop_build(self.env._("branch deleted"))
                elif own and branch.commit and branch.commit != own[0]:
                    self._run_action("deploy", trigger="push")
        except UserError as error:
            branch.build_message = error.args[0]
            _logger.info("Eyrie: build %s not caught up: %s", self.name, error)
