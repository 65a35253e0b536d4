import ipaddress
import json

from odoo import api, fields, models
from odoo.exceptions import AccessError, UserError, ValidationError

from ..tools.values import (
    ValuesError,
    check_values,
)
from .eyrie_deployment import IN_FLIGHT_STATES, REPOSITORY_STATES, STATES
from .eyrie_deployment_pgbackrest import POSTGRES_CLUSTER_NAME
from .eyrie_scope import BOOK_ACTIONS

ODOO_DEFAULT_VALUES = {
    "image": "odoo:18.0",
    "replicas": 1,
    "workers": 2,
    "storage": "10Gi",
    "database_storage": "10Gi",
    "backup_storage": "10Gi",
    "storage_class": "",
    "postgres_version": 16,
    "db_user": "odoo",
    "cpu_request": "250m",
    "memory_limit": "2Gi",
    "ingress_class": "",
    "tls_secret": "",
    "dns_ttl": 300,
    # Backups take the filestore by a VolumeSnapshot (of this class; empty:
    # the cluster's default one).
    "filestore_snapshot": True,
    "snapshot_class": "",
    # Backups to a bucket also archive the filestore there (tar.gz), which a
    # clone in another namespace starts from.
    "filestore_archive": True,
    # The scope's Mail Catcher (Mailpit) runs this image.
    "mail_catcher_image": "axllent/mailpit:v1.27",
    # Addons repositories ({url, ref, path?, credential?}), in the order of
    # --addons-path, fetched at their pinned commits by this image's git.
    "repositories": [],
    "git_image": "alpine/git:2.45.2",
    # Modules installed beyond base (the first deploy, or the next one).
    "modules": [],
    # A new database gets the modules' demo data (a development build).
    "demo": False,
    # Modules whose tests run, on a throwaway database, after each deploy
    # that changes code (eyrie_deployment_odoo_tests.py).
    "tests": [],
}
# Keys an Odoo deployment accepts beyond its defaults (derived when unset).
ODOO_OPTIONAL_KEYS = frozenset({"hostname", "dns_target", "db_name"})


def _is_ip_address(value):
    try:
        ipaddress.ip_address(value)
    except (TypeError, ValueError):
        return False
    return True


class EyrieDeploymentOdoo(models.Model):
    """Deployment type ``odoo``: an Odoo instance, with a PostgresCluster of
    its own in its namespace or a database in a PostgreSQL deployment's."""

    _inherit = "eyrie.deployment"

    deployment_type = fields.Selection(
        selection_add=[("odoo", "Odoo")],
        ondelete={"odoo": lambda records: records._unlink_type_rows()},
    )

    hostname = fields.Char(
        compute="_compute_hostname",
        store=True,
        index="btree_not_null",
        help="Where an Odoo deployment is served: 'hostname' in its values, or "
        "<namespace>.<scope domain>. One deployment per hostname on a cluster.",
    )

    database_mode = fields.Selection(
        [
            ("own", "Own PostgreSQL cluster"),
            ("shared", "Existing PostgreSQL deployment"),
        ],
        string="Database",
        default="own",
        required=True,
        tracking=True,
        help="Odoo deployments: run a PostgresCluster of their own in their "
        "namespace, or use a database in the cluster of a PostgreSQL deployment.",
    )

    database_deployment_id = fields.Many2one(
        "eyrie.deployment",
        string="PostgreSQL Deployment",
        ondelete="restrict",
        tracking=True,
        index="btree_not_null",
        check_company=True,
        domain="[('deployment_type', '=', 'pgo'), ('id', '!=', id), "
        "('cluster_id', '=', cluster_id)]",
        help="The PostgreSQL deployment whose cluster holds this Odoo's database. "
        "Its owner allows this Odoo (its Allowed Odoo Deployments) before the "
        "first deploy.",
    )

    _sql_constraints = [
        (
            "hostname_cluster_uniq",
            "unique(cluster_id, hostname)",
            (
                "Another deployment on this cluster is already served at this "
                "hostname (maybe in another company): set another 'hostname' in "
                "the values, or another namespace."
            ),
        ),
    ]

    # ------------------------------------------------------------------
    # Computes and constraints
    # ------------------------------------------------------------------

    @api.depends(
        "values", "namespace", "deployment_type", "scope_id.domain", "scope_id.values"
    )
    def _compute_hostname(self):
        for deployment in self:
            hostname = False
            if deployment.deployment_type == "odoo" and deployment._is_typed():
                try:
                    hostname = deployment._odoo_hostname()
                except (UserError, ValidationError):
                    hostname = False
            deployment.hostname = hostname

    @api.constrains(
        "deployment_type", "database_mode", "database_deployment_id", "values"
    )
    def _check_database(self):
        for deployment in self.filtered(lambda d: d.deployment_type == "odoo"):
            database = deployment.database_deployment_id
            if deployment.database_mode == "shared" and not database:
                raise ValidationError(
                    self.env._(
                        "Deployment %(name)s uses an existing PostgreSQL deployment: "
                        "choose it in 'PostgreSQL Deployment', or set 'Database' to "
                        "its own cluster.",
                        name=deployment.name,
                    )
                )
            if deployment.database_mode != "shared" or not database:
                continue
            if "db_user" in (json.loads(deployment.values or "{}") or {}):
                raise ValidationError(
                    self.env._(
                        "Deployment %(name)s keeps its database in a shared "
                        "PostgreSQL deployment, where it connects with a role of "
                        "its own (%(role)s): remove 'db_user' from its values.",
                        name=deployment.name,
                        role=deployment._odoo_database_role(),
                    )
                )
            db_name = deployment._effective_values().get("db_name")
            if db_name not in (None, deployment.namespace):
                # The namespace is unique on the cluster, so is the database
                # named after it: a drop never drops another deployment's.
                raise ValidationError(
                    self.env._(
                        "Deployment %(name)s keeps its database in a shared "
                        "PostgreSQL deployment, where it is named after the "
                        "namespace (%(namespace)s): remove 'db_name' from its values "
                        "and its scope's.",
                        name=deployment.name,
                        namespace=deployment.namespace,
                    )
                )
            if (
                database.deployment_type != "pgo"
                or database.cluster_id != deployment.cluster_id
            ):
                raise ValidationError(
                    self.env._(
                        "Deployment %(name)s: its PostgreSQL Deployment must be a "
                        "PostgreSQL deployment on the same cluster (%(cluster)s); "
                        "%(database)s is not.",
                        name=deployment.name,
                        cluster=deployment.cluster_id.name,
                        database=database.name,
                    )
                )

    # ------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------

    @api.model
    def _fields_locked_after_draft(self):
        return super()._fields_locked_after_draft() | {
            "database_mode",
            "database_deployment_id",
        }

    @api.model
    def _job_run_fields(self):
        return super()._job_run_fields() | {"database_mode", "database_deployment_id"}

    def _check_dependents(self, verb):
        # Stopping or deleting a database under an Odoo breaks it: the Odoo
        # goes first (its own pause timer usually does, being shorter).
        super()._check_dependents(verb)
        if verb not in ("pause", "drop", "restore") or self.deployment_type != "pgo":
            # Only a PostgreSQL deployment holds an Odoo's database
            # (_check_database): no query for the others.
            return
        # The check reads other users' Odoo deployments.
        dependents = (
            self.sudo()
            .with_context(active_test=False)
            .search(
                [
                    ("deployment_type", "=", "odoo"),
                    ("database_deployment_id", "=", self.id),
                ]
            )
        )
        dependents._lock_shared()
        if verb != "drop":
            dependents = dependents.filtered(lambda odoo: odoo._odoo_uses_database())
        if not dependents:
            return
        dependent = dependents[0]
        if verb in ("pause", "restore"):
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be %(done)s: Odoo deployment "
                    "%(odoo)s uses its database (%(state)s). Pause that deployment "
                    "first, once its job has ended.",
                    name=self.name,
                    done=self.env._("paused")
                    if verb == "pause"
                    else self.env._("restored"),
                    odoo=dependent.name,
                    state=dict(STATES)[dependent.state],
                )
            )
        raise UserError(
            self.env._(
                "Deployment %(name)s cannot be dropped: Odoo deployment %(odoo)s "
                "keeps its database in it. Drop that deployment first.",
                name=self.name,
                odoo=dependent.name,
            )
        )

    def _odoo_uses_database(self):
        """Whether this Odoo runs, or is starting, on its database: in its
        first deploy or deployed, or with a job in flight (a resume)."""
        self.ensure_one()
        return (
            self.repository_state in ("initialize", "deploy")
            or self.state in IN_FLIGHT_STATES
        )

    @api.private
    def odoo_action_deploy(self, after=None, release=None):
        """Deploy the code of ``release`` (an eyrie.release of this
        deployment, deployed again), or the refs of the values pinned now."""
        values = self._odoo_values()
        if values["database_mode"] == "shared":
            after = self._odoo_check_shared_database(values) or after
        self._ensure_credentials(("admin_password", "db_password"))
        if release and release.deployment_id != self:
            raise UserError(
                self.env._(
                    "That release is not one of deployment %(name)s.", name=self.name
                )
            )
        values = self._odoo_code_values(values, release=release)
        return self.with_context(eyrie_code_values=values)._start_deploy(
            values=values, after=after
        )

    @api.private
    def odoo_action_pause(self):
        return self._start_pause(values=self._odoo_values(need_hostname=False))

    @api.private
    def odoo_action_drop(self):
        self._odoo_check_database_running_for_drop()
        return self._start_drop(values=self._odoo_values(need_hostname=False))

    def _odoo_check_database_running_for_drop(self):
        """A drop on a shared database ends with a Job that drops this Odoo's
        database: it needs the PostgreSQL deployment running. Refused before
        anything is deleted, so the Odoo stays whole and the user can resume
        the database first."""
        # The PostgreSQL deployment may be another user's: read, never changed.
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return
        database._lock_shared()
        if database._pgo_serves():
            return
        raise UserError(
            self.env._(
                "Odoo deployment %(name)s cannot be dropped now: its database is in "
                "PostgreSQL deployment %(database)s, which is not running "
                "(%(state)s), so its database could not be dropped. Deploy (resume) "
                "%(database)s first, then drop %(name)s.",
                name=self.name,
                database=database.name,
                state=dict(STATES)[database.state],
            )
        )

    def _odoo_check_shared_database(self, values):
        # The database is another user's deployment: read, never changed.
        database = self.sudo().database_deployment_id
        database._lock_shared()
        if database.repository_state != "deploy":
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s keeps its database in PostgreSQL "
                    "deployment %(database)s, which is not deployed (%(phase)s). "
                    "Deploy or resume it first.",
                    name=self.name,
                    database=database.name,
                    phase=dict(REPOSITORY_STATES)[database.repository_state],
                )
            )
        if not database._pgo_serves():
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s keeps its database in PostgreSQL "
                    "deployment %(database)s, which is going down (%(state)s). "
                    "Deploy it again once its job has ended, then this one.",
                    name=self.name,
                    database=database.name,
                    state=dict(STATES)[database.state],
                )
            )
        self._odoo_check_database_consent(database)
        if database._pgo_user_password(values["db_user"]):
            return None
        return self._odoo_create_database_role(database, values["db_user"])

    def _odoo_create_database_role(self, database, role):
        """The deploy job of the PostgreSQL deployment that creates this
        Odoo's role there, which this Odoo's jobs then wait for: started
        for a caller who may change that deployment (its owner, a manager);
        anyone else is told to ask them."""
        database = database.with_env(self.env)
        try:
            database.check_access("write")
        except AccessError:
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s connects as PostgreSQL role %(user)s, "
                    "which deployment %(database)s has not created yet: its owner "
                    "(or an Eyrie manager) updates (deploys) %(database)s, then "
                    "this one can be deployed.",
                    name=self.name,
                    user=role,
                    database=database.name,
                )
            ) from None
        jobs = database._run_action_jobs("deploy", trigger="user")
        self._message_log(
            body=self.env._(
                "Deploys after an update of %(database)s, which creates the "
                "PostgreSQL role %(user)s of this deployment.",
                database=database.name,
                user=role,
            )
        )
        return jobs.filtered(lambda job: job.action == "deploy")[-1:]

    # ------------------------------------------------------------------
    # Books, values and secrets
    # ------------------------------------------------------------------

    def _odoo_default_books(self):
        return {
            action: f"eyrie_deployment.eyrie_book_odoo_{action}"
            for action in BOOK_ACTIONS
        }

    def _odoo_default_values(self):
        return dict(ODOO_DEFAULT_VALUES)

    def _odoo_value_keys(self):
        return set(ODOO_DEFAULT_VALUES) | ODOO_OPTIONAL_KEYS

    def _odoo_hostname(self, values=None):
        self.ensure_one()
        if values is None:
            values = self._effective_values()
        hostname = values.get("hostname")
        if hostname:
            return hostname
        if not self.scope_id.domain:
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s has no hostname: set a Domain on scope "
                    "%(scope)s, or 'hostname' in the deployment's values.",
                    name=self.name,
                    scope=self.scope_id.name,
                )
            )
        hostname = f"{self.namespace}.{self.scope_id.domain}"
        try:
            check_values({"hostname": hostname})
        except ValuesError as error:
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s: %(error)s. "
                    "Set 'hostname' in its values.",
                    name=self.name,
                    error=error,
                )
            ) from error
        return hostname

    def _odoo_values(self, need_hostname=True):
        """Values of the Odoo books: the effective values plus where the
        instance is served and where its database lives. Pause and drop do
        not need the hostname: a scope that lost its domain can still drop."""
        self.ensure_one()
        values = self._effective_values()
        try:
            values["hostname"] = self._odoo_hostname(values)
        except UserError:
            if need_hostname:
                raise
            values["hostname"] = ""
        if "dns_target" not in values and values["hostname"]:
            # The ingress controller's name in the domain the hostname is in.
            values["dns_target"] = "ingress." + values["hostname"].split(".", 1)[-1]
        values["dns_record_type"] = (
            "A" if _is_ip_address(values.get("dns_target")) else "CNAME"
        )
        values.setdefault("db_name", self.namespace)
        # The PostgreSQL deployment may be another user's: read, never changed.
        database = self.sudo().database_deployment_id
        shared = self.database_mode == "shared" and database
        if shared:
            # Its own role there, never one the user names.
            values["db_user"] = self._odoo_database_role()
        db_namespace = database.namespace if shared else self.namespace
        if shared:
            # No backup repository of its own: the PostgreSQL deployment's
            # backups hold its database (its books read none of these).
            values.pop("backup_storage", None)
        else:
            values = self._pgbackrest_values(values)
        values |= self._odoo_clone_values()
        route = self.scope_id._route_values()
        route["stale_kind"] = self._odoo_stale_route_kind(route["kind"])
        values |= {
            "route": route,
            "mail_catcher": self.scope_id.mail_catcher,
            "database_mode": "shared" if shared else "own",
            "db_cluster": POSTGRES_CLUSTER_NAME,
            "db_namespace": db_namespace,
            "db_host": (
                f"{POSTGRES_CLUSTER_NAME}-primary.{db_namespace}.svc"
                if shared
                else f"{POSTGRES_CLUSTER_NAME}-primary"
            ),
        }
        return values

    def _odoo_foreign_objects(self):
        """The one object an Odoo on a shared database has outside its
        namespace: the Job that drops its database, in the PostgreSQL
        deployment's namespace."""
        # The PostgreSQL deployment may be another user's: read, never changed.
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return set()
        return {(database.namespace, "batch/Job", f"dropdb-{self.id}")}

    def _odoo_namespaces_read(self):
        # The PostgreSQL deployment may be another user's: read, never changed.
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return {}
        return {database.namespace: database.id}

    def _credentials_set_once(self):
        # Odoo sets the admin password on its first start, never again.
        if self.deployment_type != "odoo":
            return super()._credentials_set_once()
        return super()._credentials_set_once() | {"admin_password"}

    def _odoo_template_secrets(self):
        # Credentials are manager-only fields; the lifecycle reads them.
        secrets_ = dict(self.sudo().credentials or {})
        # The PostgreSQL deployment may be another user's: read, never changed.
        database = self.sudo().database_deployment_id
        if self.database_mode == "shared" and database:
            # Never a missing password rendered as text: without it the books'
            # templates fail on the undefined 'secrets.db_password'.
            secrets_.pop("db_password", None)
            password = database._pgo_user_password(self._odoo_database_role())
            if password:
                secrets_["db_password"] = password
        return secrets_ | self._odoo_clone_secrets()
