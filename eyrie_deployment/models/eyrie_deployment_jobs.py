import contextlib
import functools
import json
import uuid

from odoo import api, models
from odoo.exceptions import UserError, ValidationError
from odoo.tools import SQL

from ..tools.confinement import check_book
from ..tools.executor import DEPLOYMENT_LABEL, MANAGED_BY_LABEL
from ..tools.passwords import generate_password, is_unsafe
from ..tools.template import render_documents
from ..tools.values import (
    ValuesError,
    check_values,
    parse_json_object,
)


@functools.lru_cache(maxsize=16)
def _select_columns(table, names):
    # Composed once: every run reads the same columns.
    return SQL(
        "SELECT %s FROM %s",
        SQL(", ").join(SQL.identifier(name) for name in names),
        SQL.identifier(table),
    )


class EyrieDeployment(models.Model):
    """Building blocks for the types' ``<type>_action_<verb>``: the jobs they
    create, the books and values those run with, what the books see."""

    _inherit = "eyrie.deployment"

    # ------------------------------------------------------------------
    # Jobs
    # ------------------------------------------------------------------

    def _start_deploy(
        self, initialize_book=None, deploy_book=None, values=None, after=None
    ):
        """Create the deploy job, preceded by an initialize job when the
        deployment was never deployed successfully. ``values`` (default: the
        effective values) are what the books see; the first job runs once
        job ``after`` (if any) is done. Returns the jobs."""
        self.ensure_one()
        deploy_book = deploy_book or self._get_book("deploy")
        if self.repository_state in ("draft", "initialize"):
            initialize_book = initialize_book or self._get_book("initialize")
            initialize_job = self._create_job(
                "initialize", initialize_book, values, previous_job=after
            )
            deploy_job = self._create_job(
                "deploy", deploy_book, values, previous_job=initialize_job
            )
            self._set_lifecycle(repository_state="initialize", state="initializing")
            return initialize_job | deploy_job
        backup = self._start_update_backup()
        deploy_job = self._create_job(
            "deploy", deploy_book, values, previous_job=backup or after
        )
        self._set_lifecycle(state="backing_up" if backup else "deploying")
        return (backup or deploy_job.browse()) | deploy_job

    def _start_pause(self, book=None, values=None):
        self.ensure_one()
        job = self._create_job("pause", book or self._get_book("pause"), values)
        self._set_lifecycle(state="pausing")
        return job

    def _start_drop(self, book=None, values=None):
        """The drop job, after a final backup where the scope asks for one
        (``_start_drop_backup``): if that fails, nothing is dropped."""
        self.ensure_one()
        book = book or self._get_book("drop")
        backup = self._start_drop_backup()
        job = self._create_job("drop", book, values, previous_job=backup)
        self._set_lifecycle(state="backing_up" if backup else "dropping")
        return (backup or job.browse()) | job

    def _default_book(self, action):
        """The shipped book of this deployment's type for ``action``, if any."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_default_books", None)
        xmlid = hook().get(action) if hook else None
        book = self.env.ref(xmlid, raise_if_not_found=False) if xmlid else None
        return book or self.env["eyrie.deployment.book"]

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
        # Jobs are the system's records: users only read them.
        job = (
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
                    # Its queue job's, known before it is stored: one write
                    # of the job less.
                    "queue_job_uuid": str(uuid.uuid4()),
                }
            )
        )
        # Queued with the action's transaction: it runs once committed, and
        # a chained job once the one before it is done.
        job._enqueue(after=previous_job)
        return job

    def _set_lifecycle(self, **vals):
        # Lifecycle fields are the lifecycle's own (LIFECYCLE_FIELDS); the
        # credentials among them are a manager's, compared as superuser.
        deployments = self.sudo()
        if len(deployments) == 1:
            # What changes only: an unchanged field would still be compared
            # for tracking, recompute what depends on it and move the timers.
            vals = {
                name: value
                for name, value in vals.items()
                if deployments._field_differs(name, value)
            }
            if not vals:
                return
        if not any(getattr(self._fields[name], "tracking", None) for name in vals):
            # Nothing the chatter tracks (the phase is): no tracked value to
            # read before and compare after, and no follower to add (no
            # lifecycle field names a user).
            deployments = deployments.with_context(tracking_disable=True)
        deployments.write(vals)

    # ------------------------------------------------------------------
    # Credentials
    # ------------------------------------------------------------------

    def _ensure_credentials(self, names):
        """Generate the missing credentials ``names``; existing ones never
        change, so redeploys apply the same Secrets."""
        self.ensure_one()
        # Credentials are manager-only fields; the lifecycle reads them.
        credentials = dict(self.sudo().credentials or {})
        missing = [name for name in names if not credentials.get(name)]
        if missing:
            credentials.update({name: generate_password() for name in missing})
            self._set_lifecycle(credentials=credentials)

    @api.model
    def _regenerate_unsafe_credentials(self):
        """Regenerate, once, the database passwords that a consumer reads
        specially (a leading '-': the official Odoo image's wait-for-psql.py
        takes it for an option and the pod never starts), except those a
        deploy cannot apply again (``_credentials_set_once``). Returns the
        deployments changed; each says in its chatter that a Deploy applies
        the change."""
        changed = self.browse()
        # A migration's pass over every company's deployments.
        for deployment in self.sudo().search([("credentials", "!=", False)]):
            credentials = dict(deployment.credentials or {})
            names = sorted(
                name
                for name, value in credentials.items()
                if name not in deployment._credentials_set_once() and is_unsafe(value)
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

    def _credentials_set_once(self):
        """Credentials the deployed program takes once, on its first start:
        regenerating them would lock their users out. A type names its own."""
        return set()

    # ------------------------------------------------------------------
    # What the books see
    # ------------------------------------------------------------------

    def _effective_values(self):
        """The type's defaults, overridden by the scope's section for the
        type, overridden by the deployment's own values; checked."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_default_values", None)
        values = hook() if hook else {}
        values |= self.scope_id._type_values(self.deployment_type)
        with self._refusing_values():
            values |= parse_json_object(self.values)
            check_values(
                values,
                self._accepted_value_keys(self.deployment_type, self.scope_id),
                self._value_checks(self.deployment_type),
            )
        return values

    @contextlib.contextmanager
    def _refusing_values(self):
        """A ``ValuesError`` inside, as the ``ValidationError`` users read:
        the deployment's name, the key and the fix."""
        try:
            yield
        except ValuesError as error:
            raise ValidationError(
                self.env._(
                    "Values of deployment %(name)s: %(error)s.",
                    name=self.name,
                    error=error,
                )
            ) from error

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

    @api.model
    def _value_checks(self, deployment_type):
        """{key: check} of the values a type checks itself
        (``_<type>_value_checks``), besides the shared ``VALUE_CHECKS``."""
        hook = getattr(self, f"_{deployment_type}_value_checks", None)
        return hook() if hook else {}

    def _template_secrets(self):
        """Credentials the books see as ``secrets``; never logged."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_template_secrets", None)
        # Credentials are manager-only fields; the books need them.
        secrets_ = hook() if hook else dict(self.sudo().credentials or {})
        # The bucket's keys only reach the types that back up to it (asked
        # only with a bucket: a computed field costs every run).
        if self.scope_id._backup_bucket() and self.backup_supported:
            secrets_ |= self.scope_id._backup_secrets()
        return secrets_

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

    @api.model
    def _job_run_fields(self):
        """The stored fields a job's run reads of its deployment, to render
        its book and record its outcome: fetched in one query when the run
        starts (``_fetch_for_run``) instead of every column of the row (its
        values, which the job carries, and what only the form shows). A
        concern adds those it reads (``super()``); a field left out is still
        read, in a query of its own."""
        return {
            "name",
            "active",
            "deployment_type",
            "namespace",
            "scope_id",
            "state",
            "repository_state",
            "error_message",
            "credentials",
            "drop_protected",
            "deployed_at",
            "paused_at",
        }

    def _fetch_for_run(self):
        """Read what a job's run needs of this deployment in one statement,
        into Odoo's cache as Odoo's own read puts it (``_fetch_query``:
        the columns' values, never over what the cache holds). It is the
        deployment of the job being run, which the job's user was allowed to
        act on when the job was queued; its credentials come with it, which
        the run reads as superuser for the books' secrets."""
        self.ensure_one()
        names = tuple(
            sorted(
                name
                for name in self._job_run_fields()
                # Plain columns only: any other field is read as Odoo reads it.
                if self._fields[name].column_type
                and self._fields[name].store
                and not self._fields[name].translate
            )
        )
        cr = self.env.cr
        select = _select_columns(self._table, names)
        cr.execute(SQL("%s WHERE id = %s", select, self.id))
        row = cr.fetchone()
        if row:
            cache = self.env.cache
            for name, value in zip(names, row, strict=True):
                cache.insert_missing(self, self._fields[name], (value,))

    def _namespaces_read(self, action):
        """{namespace: deployment id}: the namespaces besides its own that
        this deployment's books for ``action`` read from or run in (a
        clone's source, a shared database), each of which must carry that
        deployment's ownership label on the cluster before the job's first
        step. A type adds its own with ``_<type>_namespaces_read()``."""
        self.ensure_one()
        hook = getattr(self, f"_{self.deployment_type}_namespaces_read", None)
        return dict(hook() if hook else {})

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
