import re

from odoo import api, fields, models
from odoo.exceptions import UserError

RELEASE_OUTCOMES = [
    ("deployed", "Deployed"),
    ("rolled_back", "Rolled back"),
    ("failed", "Failed"),
]

# What the upgrade Job's script prints for Eyrie to read (upgrade.sh).
MARKER_RE = re.compile(
    r"^EYRIE-(UPGRADED|INSTALLED|UPGRADE-FAILED|PLAN-UPGRADE|PLAN-INSTALL): ?(.*)$",
    re.MULTILINE,
)


def upgrade_failures(log):
    """The error lines an upgrade Job's log gives for its failure."""
    return [
        match.group(2).strip()
        for match in MARKER_RE.finditer(log or "")
        if match.group(1) == "UPGRADE-FAILED"
    ]


def planned_modules(log):
    """The modules an upgrade Job's log says it was about to upgrade or
    install (its plan), comma-separated."""
    planned = [
        match.group(2).strip()
        for match in MARKER_RE.finditer(log or "")
        if match.group(1) in ("PLAN-UPGRADE", "PLAN-INSTALL")
    ]
    return ",".join(part for part in planned if part)


class EyrieRelease(models.Model):
    """What one deploy of an Odoo deployment ran: its image and the commits
    of its addons repositories, the modules its upgrade changed, the backup
    taken first and how it ended. A release can be deployed again."""

    _name = "eyrie.release"
    _description = "Eyrie Release"
    _order = "id desc"

    deployment_id = fields.Many2one(
        "eyrie.deployment", required=True, ondelete="cascade", index=True, readonly=True
    )
    # The deployment's, set at creation: the multi-company rule reads it.
    company_id = fields.Many2one("res.company", readonly=True, index=True)
    job_id = fields.Many2one(
        "eyrie.job", ondelete="set null", readonly=True, index="btree_not_null"
    )
    image = fields.Char(readonly=True)
    commits = fields.Json(
        readonly=True,
        help="The addons repositories as deployed: url, ref, path and the "
        "commit the ref was pinned to.",
    )
    commits_display = fields.Text(
        string="Pinned Commits", compute="_compute_commits_display"
    )
    modules = fields.Char(readonly=True, help="The modules the values asked for.")
    upgrade = fields.Boolean(
        readonly=True,
        help="The code changed: an upgrade Job ran before the new code served.",
    )
    modules_upgraded = fields.Char(readonly=True)
    modules_installed = fields.Char(readonly=True)
    backup_id = fields.Many2one(
        "eyrie.backup",
        ondelete="set null",
        readonly=True,
        help="The backup taken before the upgrade, where the scope keeps "
        "backups; the upgrade Job also dumps the database into the "
        "filestore volume, which a failed upgrade is restored from.",
    )
    rollback_of_id = fields.Many2one(
        "eyrie.release",
        ondelete="set null",
        readonly=True,
        help="The release whose failed upgrade this one went back from.",
    )
    outcome = fields.Selection(RELEASE_OUTCOMES, required=True, readonly=True)
    message = fields.Text(readonly=True)
    can_redeploy = fields.Boolean(compute="_compute_can_redeploy")
    upgrade_log = fields.Text(readonly=True, prefetch=False)

    @api.depends("commits")
    def _compute_commits_display(self):
        for release in self:
            release.commits_display = "\n".join(
                f"{item['url']} {item['ref']} @ {item['commit'][:12]}"
                for item in release.commits or []
            )

    @api.depends("outcome", "deployment_id")
    @api.depends_context("uid")
    def _compute_can_redeploy(self):
        for release in self:
            release.can_redeploy = (
                release.outcome == "deployed" and release.deployment_id.can_act
            )

    @api.depends("image", "create_date")
    def _compute_display_name(self):
        for release in self:
            when = fields.Datetime.to_string(release.create_date) or ""
            release.display_name = f"{release.image or ''} · {when}"

    def action_redeploy(self):
        """Deploy this release's image and commits again (no new pin)."""
        self.ensure_one()
        deployment = self.deployment_id
        if not self.commits and not self.image:
            raise UserError(self.env._("This release recorded no code to deploy."))
        if self.outcome != "deployed":
            raise UserError(
                self.env._(
                    "Release of %(when)s did not deploy (%(outcome)s): redeploy a "
                    "release that served.",
                    when=fields.Datetime.to_string(self.create_date),
                    outcome=dict(RELEASE_OUTCOMES)[self.outcome],
                )
            )
        deployment._run_action("deploy", trigger="user", release=self)
        return True

    @api.model
    def _upgrade_fields(self, log):
        """What an upgrade Job's ``log`` says it upgraded and installed."""
        found = {"UPGRADED": "", "INSTALLED": ""}
        for match in MARKER_RE.finditer(log or ""):
            if match.group(1) in found:
                found[match.group(1)] = match.group(2).strip()
        return {
            "upgrade_log": log or False,
            "modules_upgraded": found["UPGRADED"] or False,
            "modules_installed": found["INSTALLED"] or False,
        }

    def _code(self):
        """{image, commits, modules}: the code this release ran."""
        self.ensure_one()
        return {
            "image": self.image,
            "commits": self.commits or [],
            "modules": self.modules.split(",") if self.modules else [],
        }

    def _commits_summary(self):
        self.ensure_one()
        commits = ", ".join(item["commit"][:12] for item in self.commits or [])
        return commits or self.image or ""

    def _summary(self):
        self.ensure_one()
        parts = []
        if self.modules_upgraded:
            parts.append(self.env._("upgraded %s", self.modules_upgraded))
        if self.modules_installed:
            parts.append(self.env._("installed %s", self.modules_installed))
        if self.outcome == "rolled_back":
            parts.append(self.env._("rolled back"))
        if parts:
            return "; ".join(parts)
        if not self.upgrade_log:
            # A dry-run cluster runs no Job; a real one may not give its log.
            return self.env._("no log of the upgrade Job")
        return self.env._("nothing to upgrade")
