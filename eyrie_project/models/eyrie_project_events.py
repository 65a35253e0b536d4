import logging

from odoo import models
from odoo.tools import SQL

_logger = logging.getLogger(__name__)


class EyrieProject(models.Model):
    """Branch events (a push, a branch or pull request opened, a branch
    deleted or a pull request closed), from a webhook or a check of the
    branches, applied in a queue job: each builds, updates or drops the
    branch's deployment, and the project's chatter records it."""

    _inherit = "eyrie.project"

    def _apply_events(self, events, source):
        """Apply ``events`` (dicts of ``tools.webhooks.events``) in order;
        one that fails is logged and said in the chatter, the others go on."""
        self.ensure_one()
        # Serialises the events of one project across jobs and servers: a
        # branch's create and push, sent together, build it once.
        self.env.cr.execute(
            SQL("SELECT id FROM eyrie_project WHERE id = %s FOR UPDATE", self.id)
        )
        for event in events:
            try:
                with self.env.cr.savepoint():
                    note = self._apply_event(event)
            # Any error: one event never stops the others.
            except Exception as error:
                _logger.exception(
                    "Eyrie: project %s could not apply %s of %s",
                    self.name,
                    event.get("kind"),
                    event.get("branch"),
                )
                note = self.env._(
                    "%(kind)s of %(branch)s failed: %(error)s",
                    kind=event.get("kind"),
                    branch=event.get("branch"),
                    error=error,
                )
            if note:
                self._message_log(
                    body=self.env._("%(note)s (%(origin)s)", note=note, origin=source)
                )

    def _apply_event(self, event):
        name = event["branch"]
        # The events set the stage themselves: no rebuild of a moved branch.
        Branch = self.env["eyrie.project.branch"].with_context(
            active_test=False, eyrie_project_events=True
        )
        branch = Branch.search([("project_id", "=", self.id), ("name", "=", name)])
        if event["kind"] == "delete":
            if not branch or not branch.active:
                return False
            if not event["pull_request"] and name in self._heads():
                # The webhook tells, git confirms: a replayed or forged
                # delete never drops a branch's build.
                return self.env._(
                    "%(branch)s: said deleted, but the repository still has it; "
                    "its build stays.",
                    branch=name,
                )
            why = (
                self.env._("pull request #%s closed", event["pull_request"])
                if event["pull_request"]
                else self.env._("branch deleted")
            )
            dropped = branch._drop_build(why)
            if dropped:
                return self.env._(
                    "%(branch)s: %(why)s; its build %(build)s is dropped.",
                    branch=name,
                    why=why,
                    build=branch.deployment_id.name or "",
                )
            return self.env._(
                "%(branch)s: %(message)s", branch=name, message=branch.build_message
            )
        stage = branch.stage if branch.active else self._stage_of(name)
        if not stage:
            return self.env._(
                "%(branch)s: matches no stage's pattern; not built.", branch=name
            )
        commit = event["commit"]
        fresh = not branch or not branch.active or branch.gone
        vals = {
            "active": True,
            "gone": False,
            "stage": stage,
            "commit": commit or branch.commit,
            "author": event["author"]
            or (branch.author if commit == branch.commit else ""),
            "message": event["message"]
            or (branch.message if commit == branch.commit else ""),
        }
        if event["pull_request"]:
            vals["pull_request"] = event["pull_request"]
        if not branch:
            branch = Branch.create(vals | {"project_id": self.id, "name": name})
        else:
            if fresh and branch.stage != "production" and not branch.deployment_id:
                vals["stage"] = self._stage_of(name) or stage
            branch.write(vals)
        return branch._follow_push(event, fresh)

    def _production_branch(self):
        """The branch record of the production branch, linked to the
        Production deployment (created when no push told it yet)."""
        self.ensure_one()
        Branch = self.env["eyrie.project.branch"].with_context(
            active_test=False, eyrie_project_events=True
        )
        branch = Branch.search(
            [("project_id", "=", self.id), ("name", "=", self.production_branch)]
        )
        if not branch:
            branch = Branch.create(
                {
                    "project_id": self.id,
                    "name": self.production_branch,
                    "stage": "production",
                }
            )
        production = self.production_deployment_id
        if production and branch.deployment_id != production:
            branch.deployment_id = production
        if production and not production.project_branch_id:
            production.project_branch_id = branch
        return branch
