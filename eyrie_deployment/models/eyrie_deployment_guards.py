from odoo import api, models
from odoo.exceptions import AccessError, UserError

from .eyrie_scope import BOOK_ACTIONS

# Written only by the lifecycle itself (sudo), never directly by users or RPC.
LIFECYCLE_FIELDS = frozenset(
    {
        "state",
        "repository_state",
        "error_message",
        "deployed_at",
        "paused_at",
        "timer_blocked_until",
        "timer_refusal",
        "credentials",
        "timer_extension_seconds",
        "resumed_at",
        "drop_warned_for",
        "drop_warned_hours",
        # Stored computes: only the lifecycle moves the timers.
        "next_pause_at",
        "next_drop_at",
        "drop_warning_due_at",
        # What a clone starts from: its database is read from that namespace.
        "cloned_from_id",
        "cloned_from_name",
        "clone_backup_id",
        "clone_target_time",
        "clone_neutralize",
        # The role an Odoo connects as on a shared database: never chosen.
        "database_role_kept",
    }
)
BOOK_FIELDS = frozenset(f"deployment_{action}_book_id" for action in BOOK_ACTIONS)
# What a deployment is made of on the cluster; fixed once it left draft.
FIELDS_LOCKED_AFTER_DRAFT = frozenset({"deployment_type", "scope_id", "namespace"})


class EyrieDeployment(models.Model):
    """What users may write: the lifecycle's fields are its own, the books
    a manager's, and a live deployment is neither archived nor deleted."""

    _inherit = "eyrie.deployment"

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
        locked = self._fields_locked_after_draft() & vals.keys()
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

    @api.model
    def _fields_locked_after_draft(self):
        """Fields that say what a deployment is made of on its cluster: once
        it left draft, changing one would orphan what it runs. A type adds
        its own (``super()``)."""
        return set(FIELDS_LOCKED_AFTER_DRAFT)

    def _field_differs(self, field_name, value):
        current = self[field_name]
        if isinstance(current, models.BaseModel):
            current = current.id
        return current != value

    def _check_can_act(self, what):
        """Refuse, with Eyrie's own words, an action on a deployment the
        user may only read: ``what`` says the action ("deploy", "see the
        logs of", ...). The form hides those actions (``can_act``); this is
        for XML-RPC and stale pages."""
        refused = self - self._filtered_access("write")
        if not refused:
            return
        if refused._filtered_access("read") != refused:
            # Not even readable (another company): Odoo's own refusal, which
            # names nothing of it.
            refused.check_access("write")
        deployment = refused[0]
        owner = deployment.user_id or deployment.create_uid
        raise AccessError(
            self.env._(
                "You cannot %(what)s deployment %(name)s: it is %(owner)s's. Only "
                "its owner (its creator or Responsible) or an Eyrie manager can; "
                "ask them, or create a deployment of your own.",
                what=what,
                name=deployment.name,
                owner=owner.name,
            )
        )

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
    def _lifecycle_fields(self):
        """Fields only the lifecycle writes (``LIFECYCLE_FIELDS``); an addon
        adds its own (``super()``)."""
        return LIFECYCLE_FIELDS

    @api.model
    def _check_lifecycle_fields_untouched(self, vals):
        forbidden = self._lifecycle_fields() & vals.keys()
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

    def _unlink_type_rows(self):
        """``ondelete`` of a type's ``deployment_type`` value, when the module
        adding the type is uninstalled: its drafts and dropped deployments
        go; one still on its cluster stops the uninstall, since nothing could
        pause or drop it any more."""
        deployments = self.with_context(active_test=False)
        live = deployments.filtered(
            lambda d: d.repository_state != "draft" and not d._is_dropped()
        )
        if live:
            raise UserError(
                self.env._(
                    "Deployments %(names)s of type %(type)s still run on their "
                    "clusters: drop them before uninstalling the module that adds "
                    "the type; nothing could pause or drop them afterwards.",
                    names=", ".join(live[:10].mapped("name")),
                    type=live[0].deployment_type,
                )
            )
        # The drop (or uninstall) removes the record, whoever asked for it.
        deployments.sudo().unlink()

    def _is_dropped(self):
        self.ensure_one()
        return any(job.action == "drop" and job.state == "done" for job in self.job_ids)
