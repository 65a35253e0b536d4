import ipaddress
import json

from odoo import api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..tools.values import (
    ValuesError,
    check_values,
)
from .eyrie_deployment import REPOSITORY_STATES, STATES
from .eyrie_scope import BOOK_ACTIONS

# The shipped books' PostgresCluster name (PGO derives db-primary, db-pguser-*).
POSTGRES_CLUSTER_NAME = "db"
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
        help="Where an Odoo deployment is served: 'hostname' in its values, or "
        "<namespace>.<scope domain>.",
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
        domain="[('deployment_type', '=', 'pgo'), ('id', '!=', id)]",
        help="The PostgreSQL deployment whose cluster holds this Odoo's database.",
    )

    admin_password = fields.Char(
        string="Odoo Admin Password",
        compute="_compute_admin_password",
        groups="eyrie_deployment.group_eyrie_manager",
        help="Password of the 'admin' user of an Odoo deployment, set on its "
        "first start.",
    )

    # ------------------------------------------------------------------
    # Computes and constraints
    # ------------------------------------------------------------------

    @api.depends("values", "namespace", "deployment_type", "scope_id.domain")
    def _compute_hostname(self):
        for deployment in self:
            hostname = False
            if deployment.deployment_type == "odoo":
                try:
                    hostname = deployment._odoo_hostname()
                except (UserError, ValidationError):
                    hostname = False
            deployment.hostname = hostname

    @api.depends("credentials")
    def _compute_admin_password(self):
        for deployment in self:
            deployment.admin_password = (deployment.credentials or {}).get(
                "admin_password"
            )

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

    def _check_dependents(self, verb):
        # Stopping or deleting a database under an Odoo breaks it: the Odoo
        # goes first (its own pause timer usually does, being shorter).
        super()._check_dependents(verb)
        if verb not in ("pause", "drop", "restore"):
            return
        domain = [
            ("deployment_type", "=", "odoo"),
            ("database_deployment_id", "=", self.id),
        ]
        if verb in ("pause", "restore"):
            domain.append(("repository_state", "=", "deploy"))
        dependent = self.sudo().with_context(active_test=False).search(domain, limit=1)
        if not dependent:
            return
        if verb in ("pause", "restore"):
            raise UserError(
                self.env._(
                    "Deployment %(name)s cannot be %(done)s: Odoo deployment "
                    "%(odoo)s runs on its database. Pause that deployment first.",
                    name=self.name,
                    done=self.env._("paused")
                    if verb == "pause"
                    else self.env._("restored"),
                    odoo=dependent.name,
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

    @api.private
    def odoo_action_deploy(self, after=None):
        values = self._odoo_values()
        if values["database_mode"] == "shared":
            self._odoo_check_shared_database(values)
        self._ensure_credentials(("admin_password", "db_password"))
        return self._start_deploy(values=values, after=after)

    @api.private
    def odoo_action_pause(self):
        return self._start_pause(values=self._odoo_values(need_hostname=False))

    @api.private
    def odoo_action_backup(self):
        self._odoo_check_own_database("back up")
        return self._start_backup("manual", self._odoo_values(need_hostname=False))

    @api.private
    def odoo_action_restore(self, backup_id=None, target_time=None):
        self._odoo_check_own_database("restore")
        backup, target = self._restore_point(backup_id, target_time)
        return self._start_restore(backup, target, self._odoo_values())

    @api.private
    def odoo_action_clone(
        self, scope_id=None, name=None, backup_id=None, neutralize=True, created=None
    ):
        self._odoo_check_own_database("be cloned")
        scope = self._clone_scope(scope_id)
        backup = self._clone_backup(backup_id)
        self._check_clone_source_readable()
        source_values = self._odoo_values(need_hostname=False)
        values = json.loads(self.values) if self.values else {}
        # The clone is served under a name of its own, and its database keeps
        # the name it has in the source's backup.
        for key in ("hostname", "dns_target"):
            values.pop(key, None)
        values["db_name"] = source_values["db_name"]
        backup_job = None
        if (
            not backup
            and source_values["backup_s3"]
            and source_values.get("filestore_archive")
        ):
            # A filestore reaches another namespace only by an archive in
            # the bucket: the clone starts once this backup has taken one.
            backup_job = self._start_backup("before_clone", source_values)
            backup = self._backup_of(backup_job)
        clone = self._create_clone(scope, name, backup, neutralize, values)
        clone._run_action("deploy", trigger="user", after=backup_job)
        filestore = (
            self.env._("the filestore from the archive in the bucket")
            if clone._clone_archive()
            else self.env._(
                "the filestore starts empty: only a backup to a bucket archives it"
            )
        )
        return self._clone_started(clone, backup, backup_job, filestore, created)

    def _odoo_check_own_database(self, verb):
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return
        raise UserError(
            self.env._(
                "Odoo deployment %(name)s cannot %(verb)s by itself: its database "
                "is in PostgreSQL deployment %(database)s, whose backups hold it "
                "with every other database there. Its manager backs up and "
                "restores %(database)s.",
                name=self.name,
                verb=verb,
                database=database.name,
            )
        )

    def _start_backup_before(self, kind, values, option):
        # The database of a shared PostgreSQL deployment is in that
        # deployment's own backups; this Odoo has no repository to back up to.
        if self.deployment_type == "odoo" and self.database_mode == "shared":
            self._message_log(
                body=self.env._(
                    "No backup first (%(option)s): the database is in PostgreSQL "
                    "deployment %(database)s, whose own backups hold it.",
                    option=option,
                    database=self.sudo().database_deployment_id.name,
                )
            )
            return None
        return super()._start_backup_before(kind, values, option)

    @api.private
    def odoo_action_drop(self):
        self._odoo_check_database_running_for_drop()
        return self._start_drop(values=self._odoo_values(need_hostname=False))

    def _odoo_check_database_running_for_drop(self):
        """A drop on a shared database ends with a Job that drops this Odoo's
        database: it needs the PostgreSQL deployment running. Refused before
        anything is deleted, so the Odoo stays whole and the user can resume
        the database first."""
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return
        if database.repository_state == "deploy" and database.state != "pausing":
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
        database = self.sudo().database_deployment_id
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
        user = values["db_user"]
        if user in database._effective_values().get("users", []) and not (
            database._pgo_user_password(user)
        ):
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s connects as PostgreSQL user %(user)s, "
                    "whose password deployment %(database)s has not created yet: "
                    "update (deploy) %(database)s first, then deploy this one.",
                    name=self.name,
                    user=user,
                    database=database.name,
                )
            )
        if values["db_user"] not in database._effective_values().get("users", []):
            raise UserError(
                self.env._(
                    "Odoo deployment %(name)s connects as PostgreSQL user %(user)s, "
                    "which deployment %(database)s does not declare: add it to its "
                    "'users' value and update it, or change 'db_user'.",
                    name=self.name,
                    user=values["db_user"],
                    database=database.name,
                )
            )

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
        database = self.sudo().database_deployment_id
        shared = self.database_mode == "shared" and database
        db_namespace = database.namespace if shared else self.namespace
        values = self._with_backup_values(values) | self._clone_values()
        values |= {
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
        database = self.sudo().database_deployment_id
        if self.database_mode != "shared" or not database:
            return set()
        return {(database.namespace, "batch/Job", f"dropdb-{self.id}")}

    def _credentials_set_once(self):
        # Odoo sets the admin password on its first start, never again.
        if self.deployment_type != "odoo":
            return super()._credentials_set_once()
        return super()._credentials_set_once() | {"admin_password"}

    def _odoo_template_secrets(self):
        secrets_ = dict(self.sudo().credentials or {})
        database = self.sudo().database_deployment_id
        if self.database_mode == "shared" and database:
            # Never a missing password rendered as text: without it the books'
            # templates fail on the undefined 'secrets.db_password'.
            secrets_.pop("db_password", None)
            password = database._pgo_user_password(self._effective_values()["db_user"])
            if password:
                secrets_["db_password"] = password
        return secrets_
