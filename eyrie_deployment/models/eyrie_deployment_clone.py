import json

from odoo import api, fields, models
from odoo.exceptions import UserError

from .eyrie_deployment import REPOSITORY_STATES


class EyrieDeployment(models.Model):
    """Clones: a new deployment of the same type whose data starts from a
    backup of this one (or from it as it is now). A type implements
    ``<type>_action_clone`` (``@api.private``, in its backup file) with
    ``_create_clone``; the clone's first deploy reads where it starts from
    with ``_clone_source``, which checks the lineage again at every deploy."""

    _inherit = "eyrie.deployment"

    cloned_from_id = fields.Many2one(
        "eyrie.deployment",
        readonly=True,
        copy=False,
        ondelete="set null",
        index="btree_not_null",
    )
    clone_backup_id = fields.Many2one(
        "eyrie.backup",
        string="Clone of Backup",
        readonly=True,
        copy=False,
        ondelete="set null",
        help="The backup of the source whose data this clone started from; "
        "empty: the source as it was when the clone started.",
    )
    clone_target_time = fields.Datetime(
        string="Data As Of",
        readonly=True,
        copy=False,
        help="The moment (UTC) of the source's data that this clone starts from.",
    )
    clone_neutralize = fields.Boolean(
        string="Neutralized",
        readonly=True,
        copy=False,
        help="The clone ran 'odoo neutralize' before it took traffic.",
    )
    cloned_from_name = fields.Char(
        string="Source Name",
        readonly=True,
        copy=False,
        help="The source's name, kept when the source is dropped.",
    )
    clone_ids = fields.One2many("eyrie.deployment", "cloned_from_id", string="Clones")
    clone_supported = fields.Boolean(
        compute="_compute_clone_supported",
        help="Its type implements <type>_action_clone.",
    )

    @api.model
    def _job_run_fields(self):
        # A clone's run reads its source's namespace (_namespaces_read).
        return super()._job_run_fields() | {"cloned_from_name"}

    @api.depends("deployment_type")
    def _compute_clone_supported(self):
        for deployment in self:
            deployment.clone_supported = deployment._type_has("action_clone")

    @api.constrains("scope_id")
    def _check_clone_scope(self):
        # A clone that has not copied its data yet reads it inside its
        # source's cluster: a scope on another cluster would make its first
        # deploy copy a namespace of that name there, someone else's.
        for deployment in self.filtered("cloned_from_name"):
            deployment._clone_source()

    # ------------------------------------------------------------------
    # Public action (form button, XML-RPC)
    # ------------------------------------------------------------------

    def action_clone(self, scope_id=None, name=None, backup_id=None, neutralize=True):
        """Duplicate with data: a new deployment in scope ``scope_id``
        (default: this one's), named ``name``, whose data starts from backup
        ``backup_id`` of this deployment (default: this deployment as it is
        now). Neutralized before it takes traffic where the scope requires
        it or ``neutralize`` asks. Returns the clone's form action."""
        self.ensure_one()
        clones = []
        self._run_action(
            "clone",
            trigger="user",
            scope_id=scope_id,
            name=name,
            backup_id=backup_id,
            neutralize=neutralize,
            created=clones,
        )
        return {
            "type": "ir.actions.act_window",
            "res_model": "eyrie.deployment",
            "res_id": clones[0].id,
            "view_mode": "form",
            "target": "current",
        }

    def action_open_clone(self):
        self.ensure_one()
        # Refused before the wizard opens, not once it is filled in.
        self._check_can_act(self._verb_words("clone"))
        self._check_action_allowed("clone")
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Duplicate %s with data", self.name),
            "res_model": "eyrie.clone.wizard",
            "view_mode": "form",
            "target": "new",
            "context": {"default_source_id": self.id},
        }

    # ------------------------------------------------------------------
    # Checks and building blocks for the types
    # ------------------------------------------------------------------

    def _check_action_allowed(self, verb):
        result = super()._check_action_allowed(verb)
        if verb == "deploy":
            self._clone_source()
        if verb == "clone" and self.repository_state not in ("deploy", "pause"):
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be cloned: it is in phase "
                    "%(phase)s; only a deployed or paused deployment has data to "
                    "clone.",
                    name=self.name,
                    phase=dict(REPOSITORY_STATES)[self.repository_state],
                )
            )
        return result

    def _clone_scope(self, scope_id):
        """The scope a clone goes to, checked: one the caller may use, on
        this deployment's cluster (the data is copied inside the cluster)."""
        self.ensure_one()
        scope = self.scope_id
        if scope_id:
            scope = self.env["eyrie.scope"].browse(int(scope_id)).exists()
            if not scope:
                raise UserError(
                    self.env._(
                        "Clone of %(name)s: scope %(scope)s does not exist.",
                        name=self.name,
                        scope=scope_id,
                    )
                )
            # The caller's own rights: a user clones only into scopes of theirs.
            scope.check_access("read")
        if scope.cluster_id != self.cluster_id:
            raise UserError(
                self.env._(
                    "Clone of %(name)s: scope %(scope)s is on cluster %(cluster)s, "
                    "but the data of %(name)s is on cluster %(home)s. Choose a "
                    "scope on %(home)s.",
                    name=self.name,
                    scope=scope.name,
                    cluster=scope.cluster_id.name,
                    home=self.cluster_id.name,
                )
            )
        return scope

    def _clone_backup(self, backup_id):
        self.ensure_one()
        if not backup_id:
            return self.env["eyrie.backup"]
        # Backups are the system's records: users only read them.
        backup = (
            self.env["eyrie.backup"]
            .sudo()
            .search(
                [
                    ("id", "=", int(backup_id)),
                    ("deployment_id", "=", self.id),
                    ("state", "=", "done"),
                ]
            )
        )
        if not backup:
            raise UserError(
                self.env._(
                    "Clone of %(name)s: backup %(backup)s is not a finished backup "
                    "of this deployment. Choose one of its Backups, or none to "
                    "clone it as it is now.",
                    name=self.name,
                    backup=backup_id,
                )
            )
        return backup

    def _create_clone(self, scope, name, backup, neutralize, values):
        """The clone record, created with the caller's rights (their scope,
        their deployment), then told where it starts from. ``values``: its
        own values (a dict)."""
        self.ensure_one()
        name = (name or "").strip() or self.env._("%s (clone)", self.name)
        if scope.neutralize_clones and not neutralize:
            raise UserError(
                self.env._(
                    "Clone of %(name)s: scope %(scope)s requires clones to be "
                    "neutralized. Keep 'Neutralize' on, or choose another scope.",
                    name=self.name,
                    scope=scope.name,
                )
            )
        clone = self.create(
            {
                "name": name,
                "deployment_type": self.deployment_type,
                "scope_id": scope.id,
                "values": json.dumps(values, indent=2, sort_keys=True),
            }
        )
        # The lineage is the lifecycle's: users never write it.
        clone.sudo().write(
            {
                "cloned_from_id": self.id,
                "cloned_from_name": self.name,
                "clone_backup_id": backup.id,
                "clone_target_time": backup.completed_at or False,
                "clone_neutralize": bool(neutralize or scope.neutralize_clones),
            }
        )
        return clone

    def _clone_started(self, clone, backup, backup_job=None, detail=None, created=None):
        """Say on the source what ``clone`` starts from (``detail``: what the
        type adds), and hand the clone to ``action_clone`` (``created``)."""
        if backup_job:
            data = self.env._("its data as it is now, by backup %s", backup.label)
        elif backup:
            data = backup.display_name
        else:
            data = self.env._("its data as it is now")
        # A note, as mail's tracking logs: the user who clones may have no
        # email address, which a posted message needs as its sender's.
        self._message_log(
            body=self.env._(
                "Cloned into %(clone)s (%(data)s%(detail)s).",
                clone=clone.name,
                data=data,
                detail=f"; {detail}" if detail else "",
            )
        )
        if created is not None:
            created.append(clone)
        return clone

    def _clone_source(self, check=True):
        """The source a clone that never ran copies its data from, checked
        (it still exists, on this deployment's cluster); an empty recordset
        for a deployment that is no clone or already has its data. Raises
        ``UserError`` naming the fix otherwise, or, without ``check`` (what
        a pause or a drop renders), returns an empty recordset."""
        self.ensure_one()
        if not self.cloned_from_name or self.repository_state not in (
            "draft",
            "initialize",
        ):
            return self.browse()
        # The source may be another user's: the lineage, not the caller's
        # rights, says this clone reads it.
        source = self.sudo().cloned_from_id
        if not check:
            return source if source.cluster_id == self.cluster_id else self.browse()
        if not source:
            raise UserError(
                self.env._(
                    "Clone %(name)s cannot start: its source %(origin)s was dropped "
                    "before the clone copied its data. Drop this clone and clone "
                    "from a backup of another deployment.",
                    name=self.name,
                    origin=self.cloned_from_name,
                )
            )
        if source.cluster_id != self.cluster_id:
            raise UserError(
                self.env._(
                    "Clone %(name)s copies its data from %(origin)s on cluster "
                    "%(home)s, but its scope %(scope)s is on cluster %(cluster)s. "
                    "Choose a scope on %(home)s for it.",
                    name=self.name,
                    origin=source.name,
                    home=source.cluster_id.name,
                    scope=self.scope_id.name,
                    cluster=self.cluster_id.name,
                )
            )
        return source

    def _namespaces_read(self, action):
        namespaces = super()._namespaces_read(action)
        # Only the jobs that copy the data read the source: a drop or a
        # pause of a clone stopped before it copied anything must run.
        source = self._clone_source() if action in ("initialize", "deploy") else None
        if source:
            namespaces[source.namespace] = source.id
        return namespaces

    def _on_chained_job_cancelled(self, job):
        if not self.cloned_from_name:
            return super()._on_chained_job_cancelled(job)
        if not self._back_from_cancelled(job):
            return None
        message = self.env._(
            "The clone was not started: the backup of %(origin)s it starts from "
            "did not finish (%(error)s). Nothing was created on the cluster; "
            "drop this clone and clone again, or clone from an earlier backup.",
            origin=self.cloned_from_name,
            error=job.previous_job_id.error_message or job.previous_job_id.state,
        )
        self._set_lifecycle(error_message=message)
        self.message_post(body=message)
        return None

    def _on_initialize_failed(self, job):
        if not self.cloned_from_name:
            return self._fail_as_error(job)
        message = self.env._(
            "The clone was not started: %(error)s Its Odoo was never scaled up, "
            "so nothing was served. Deploy it again to retry, or drop it.",
            error=job.error_message,
        )
        self._set_lifecycle(state="error", error_message=message)
        self.message_post(body=message)
