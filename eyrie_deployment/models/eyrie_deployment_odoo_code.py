import logging

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..tools.executor import (
    ClusterConnectionError,
    StepError,
    TransientStepError,
)
from ..tools.git_sources import (
    IMAGE_KEYS,
    GitError,
    check_allowed_sources,
    check_modules,
    check_repositories,
    pin,
)
from ..tools.kubernetes_executor import read_logs
from ..tools.scrub import Scrubber, secret_strings
from .eyrie_release import planned_modules, upgrade_failures

_logger = logging.getLogger(__name__)

ADDONS_ROOT = "/mnt/addons"
# The image's own addons folder stays last on the addons path.
IMAGE_ADDONS = "/mnt/extra-addons"
UPGRADE_JOB = "odoo-upgrade"


class EyrieDeployment(models.Model):
    """The code an Odoo deployment runs: its addons repositories pinned to
    commits at each deploy, its modules, the upgrade Job of a deploy that
    changes code, the rollback of a failed upgrade, and the releases."""

    _inherit = "eyrie.deployment"

    release_ids = fields.One2many("eyrie.release", "deployment_id", string="Releases")
    pinned_commits = fields.Text(
        compute="_compute_release_summary",
        help="The commits of the addons repositories the last deploy ran.",
    )
    last_upgrade = fields.Char(
        compute="_compute_release_summary",
        help="What the last deploy that changed code upgraded and installed.",
    )

    @api.depends("release_ids.outcome")
    def _compute_release_summary(self):
        for deployment in self:
            releases = deployment._odoo_releases()
            served = releases.filtered(lambda r: r.outcome == "deployed")[:1]
            deployment.pinned_commits = served.commits_display or False
            upgraded = releases.filtered("upgrade")[:1]
            deployment.last_upgrade = upgraded._summary() if upgraded else False

    # ------------------------------------------------------------------
    # Checks
    # ------------------------------------------------------------------

    @api.model
    def _job_run_fields(self):
        # A deploy's outcome records its release (of the deployment's
        # company), reads its upgrade's log on its cluster, and reports on
        # the source of an upgrade copy.
        return super()._job_run_fields() | {"upgrade_copy", "company_id", "cluster_id"}

    def _odoo_value_checks(self):
        return {
            "repositories": check_repositories,
            "modules": check_modules,
            "tests": check_modules,
        }

    @api.constrains("values", "scope_id", "deployment_type")
    def _check_code_sources(self):
        for deployment in self.filtered(lambda d: d.deployment_type == "odoo"):
            if deployment._is_typed():
                deployment._odoo_check_code_sources(deployment._effective_values())

    def _odoo_check_code_sources(self, values):
        """The repositories on the scope's git hosts with its credentials,
        the images from its registries: checked when the values are saved
        and at each deploy (the scope may have changed since)."""
        repositories = bool(values.get("repositories"))
        if not repositories and not self.scope_id.image_registries:
            return
        hosts, credentials, registries = self.scope_id._code_sources(repositories)
        with self._refusing_values():
            check_allowed_sources(values, hosts, registries, credentials, IMAGE_KEYS)

    # ------------------------------------------------------------------
    # Deploy: pin, plan, record
    # ------------------------------------------------------------------

    def _odoo_code_values(self, values, release=None, served=None):
        """The code of this deploy, added to the books' ``values``: the
        commits (of ``release``, of the ``served`` code, or every ref pinned
        now), the addons folders in order, and whether the code changed
        (``upgrade``)."""
        if release:
            served = release._code()
        if served:
            values["image"] = served["image"]
            commits = served["commits"]
        else:
            self._odoo_check_code_sources(values)
            commits = self._odoo_pin(values["repositories"])
        values["commits"] = commits
        values["addons"] = [
            {
                "folder": f"{ADDONS_ROOT}/{index}",
                "subfolder": item["path"],
                "path": "/".join(
                    part for part in (f"{ADDONS_ROOT}/{index}", item["path"]) if part
                ),
                "url": item["url"],
                "commit": item["commit"],
                "credential": item["credential"],
            }
            for index, item in enumerate(commits)
        ]
        # In this order; the pods keep those that hold modules (``run.sh``).
        values["addons_path"] = ",".join(
            [item["path"] for item in values["addons"]] + [IMAGE_ADDONS]
        )
        values["upgrade"] = self._odoo_code_changed(values)
        return values

    def _odoo_pin(self, repositories):
        """[{url, ref, path, credential, commit}]: each ref's commit now."""
        pinned = []
        for repository in repositories:
            name = repository.get("credential") or ""
            credential = self.scope_id._git_credential(name) if name else None
            secrets_ = credential._secrets() if credential else {}
            try:
                commit = pin(repository, secrets_)
            except GitError as error:
                message = Scrubber(secret_strings(secrets_))(str(error))
                raise UserError(
                    self.env._(
                        "Deployment %(name)s: the ref %(ref)s of repository "
                        "%(url)s could not be pinned to a commit: %(error)s",
                        name=self.name,
                        ref=repository["ref"],
                        url=repository["url"],
                        error=message,
                    )
                ) from None
            pinned.append(
                {
                    "url": repository["url"],
                    "ref": repository["ref"],
                    "path": repository.get("path") or "",
                    "credential": name,
                    "commit": commit,
                }
            )
        return pinned

    def _odoo_code_changed(self, values):
        """Whether this deploy runs other code than the instance serves: a
        first deploy, another image, other commits, new modules."""
        if self.repository_state in ("draft", "initialize"):
            return True
        served = self._odoo_served_code()
        if served is None:
            # Deployed before any record of its code: an upgrade Job where
            # the values name code (it finds what to do), none otherwise.
            return bool(values["commits"] or values["modules"])
        return (
            served["image"] != values["image"]
            or [item["commit"] for item in served["commits"]]
            != [item["commit"] for item in values["commits"]]
            or bool(set(values["modules"]) - set(served["modules"]))
        )

    def _odoo_releases(self):
        """The releases, the latest first (also those created in this
        transaction, which the cache lists last)."""
        return self.release_ids.sorted("id", reverse=True)

    def _odoo_served_code(self):
        """{image, commits, modules} of the code that serves: the last
        release deployed, else (deployed before releases were recorded) the
        values of the last deploy done, else None."""
        # Releases are the system's records: users read them.
        release = (
            self.env["eyrie.release"]
            .sudo()
            .search_fetch(
                [("deployment_id", "=", self.id), ("outcome", "=", "deployed")],
                ["image", "commits", "modules"],
                order="id desc",
                limit=1,
            )
        )
        if release:
            return release._code()
        # Jobs are the system's records: users only read them.
        job = (
            self.env["eyrie.job"]
            .sudo()
            .search(
                [
                    ("deployment_id", "=", self.id),
                    ("action", "=", "deploy"),
                    ("state", "=", "done"),
                ],
                order="id desc",
                limit=1,
            )
        )
        if not job:
            return None
        values = job._job_values()
        return {
            "image": values.get("image"),
            "commits": values.get("commits") or [],
            "modules": values.get("modules") or [],
        }

    def _odoo_record_release(self, job, values, outcome, log="", message=False):
        """The release of the deploy ``job`` ran (``values``: its values),
        recorded as it ends."""
        backup = None
        if values.get("upgrade"):
            # The backup taken before it, if any (chained before this job).
            # Backups are the system's records: users only read them.
            backup = (
                self.env["eyrie.backup"]
                .sudo()
                .search(
                    [
                        ("deployment_id", "=", self.id),
                        ("kind", "=", "before_update"),
                        ("job_id", "<", job.id),
                    ],
                    order="id desc",
                    limit=1,
                )
            )
        # Releases are the system's records: users read them.
        return (
            self.env["eyrie.release"]
            .sudo()
            .create(
                {
                    "deployment_id": self.id,
                    "company_id": self.company_id.id,
                    "job_id": job.id,
                    "image": values.get("image"),
                    "commits": values.get("commits") or [],
                    "modules": ",".join(values.get("modules") or []),
                    "upgrade": bool(values.get("upgrade")),
                    "backup_id": backup.id if backup else False,
                    "rollback_of_id": values.get("rollback_of") or False,
                    "outcome": outcome,
                    "message": message,
                }
                | self.env["eyrie.release"]._upgrade_fields(log)
            )
        )

    def _start_update_backup(self):
        # A deploy that changes code takes a backup first wherever the type
        # backs up, whatever 'Backup Before Update' says.
        values = self.env.context.get("eyrie_code_values")
        if (
            self.deployment_type == "odoo"
            and values
            and values.get("upgrade")
            and self.repository_state == "deploy"
        ):
            return self._start_backup_before("before_update", "'Backup Before Update'")
        return super()._start_update_backup()

    def _template_context(self, values=None):
        context = super()._template_context(values)
        if self.deployment_type != "odoo":
            return context
        names = {
            item.get("credential") for item in context["values"].get("commits") or ()
        }
        git = {}
        for name in sorted(names - {"", None}):
            credential = self.scope_id._git_credential(name)
            if credential:
                git[name] = credential._book_secret()
        if git:
            context["secrets"] = dict(context["secrets"], git=git)
        registry = self.scope_id._image_pull_secret()
        if registry:
            context["secrets"] = dict(context["secrets"], registry=registry)
        return context

    # ------------------------------------------------------------------
    # Outcome
    # ------------------------------------------------------------------

    def _odoo_code_job_values(self, job):
        """The values of an Odoo deploy job that carries its code (every one
        since releases are recorded), else None."""
        if self.deployment_type != "odoo":
            return None
        values = job._job_values()
        return values if "commits" in values else None

    def _on_deploy_done(self, job):
        values = self._odoo_code_job_values(job)
        super()._on_deploy_done(job)
        if values is None or not (values["upgrade"] or values.get("rollback_of")):
            # The code that already serves (a resume, new values): its
            # release is the one recorded when that code was deployed.
            return
        log = self._odoo_upgrade_log(values)
        release = self._odoo_record_release(job, values, "deployed", log)
        failed = release.rollback_of_id
        if failed:
            # Served again by the previous code: it says why it went back.
            self._set_lifecycle(error_message=failed.message)
        elif self.upgrade_copy:
            self._upgrade_copy_report(
                self.env._(
                    "the code of %(commits)s deployed on a neutralized copy of "
                    "the data: %(summary)s.",
                    commits=release._commits_summary(),
                    summary=release._summary(),
                )
            )

    def _on_deploy_failed(self, job):
        values = self._odoo_code_job_values(job)
        if values is None:
            self._fail_as_error(job)
            return
        log = self._odoo_upgrade_log(values)
        failures = upgrade_failures(log)
        if not failures or values.get("rollback_of"):
            # Not an upgrade the Job undid: the deployment is in error.
            release = self._odoo_record_release(
                job, values, "failed", log, job.error_message
            )
            self._fail_as_error(job)
        else:
            release = self._odoo_record_release(job, values, "rolled_back", log)
            self._odoo_roll_back(release, failures[0], planned_modules(log))
        if self.upgrade_copy and self.state == "error":
            self._upgrade_copy_report(
                self.env._(
                    "the code of %(commits)s failed on a neutralized copy of the "
                    "data: %(error)s",
                    commits=release._commits_summary(),
                    error=self.error_message,
                )
            )

    def _odoo_roll_back(self, release, error, planned):
        """The upgrade of ``release`` failed and its Job restored the
        database: deploy the code that served before, saying why."""
        served = self._odoo_served_code() or {}
        commits = ", ".join(item["commit"][:12] for item in served.get("commits", []))
        back_on = commits or served.get("image") or self.env._("the previous code")
        modules = planned or self.env._("the modules")
        if not served:
            # Nothing served before (a first deploy, a copy): nothing to go
            # back to; the Job left the database as it was.
            message = self.env._(
                "upgrade of %(modules)s failed: %(error)s; the database is as it "
                "was before the upgrade, and nothing serves it",
                modules=modules,
                error=error,
            )
            release.message = message
            self.message_post(body=message)
            self._set_lifecycle(state="error", error_message=message)
            return
        message = self.env._(
            "upgrade of %(modules)s failed: %(error)s; back on %(commits)s",
            modules=modules,
            error=error,
            commits=back_on,
        )
        release.message = message
        self.message_post(body=message)
        try:
            values = self._odoo_code_values(self._odoo_values(), served=served)
        except (UserError, ValidationError) as refused:
            # The values changed since, and no longer deploy: say both.
            reason = self.env._(
                "%(message)s; going back failed: %(error)s",
                message=message,
                error=refused.args[0],
            )
            self._set_lifecycle(state="error", error_message=reason)
            self.message_post(body=reason)
            return
        values["upgrade"] = False
        values["rollback_of"] = release.id
        self._start_deploy(values=values)
        self._set_lifecycle(error_message=message)

    def _odoo_upgrade_log(self, values):
        """What the upgrade Job of a deploy printed (secrets masked), read
        from its pod; empty where none ran or the cluster cannot tell."""
        if not values.get("upgrade"):
            return ""
        return self._odoo_job_log(UPGRADE_JOB, "upgrade")

    def _odoo_job_log(self, job_name, container_name):
        """What container ``container_name`` of the pods of the Kubernetes
        Job ``job_name`` printed (secrets masked); empty where the cluster
        cannot tell."""
        # The cluster's credentials are manager-only fields.
        cluster = self.sudo().cluster_id
        if cluster.dry_run:
            return ""
        try:
            found = read_logs(
                cluster._get_client(),
                self.namespace,
                selector={"job-name": job_name},
                tail_lines=2000,
            )
        except (StepError, ClusterConnectionError, TransientStepError) as error:
            _logger.warning(
                "Eyrie: the log of Job %s of %s could not be read: %s",
                job_name,
                self.name,
                error,
            )
            return ""
        found = self._scrubbed_logs(found)
        return "\n".join(
            container["log"]
            for pod in found["pods"]
            for container in pod["containers"]
            if container["name"] == container_name
        )
