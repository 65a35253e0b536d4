import base64
import json

from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from .common import EyrieCase, ShippedScopeMixin
from .kube_common import (
    DNS,
    MANAGED,
    PGO,
    KubernetesCase,
    KubernetesRpcCase,
    OperatorsMixin,
)
from .queue_jobs import resume_waiting_jobs, run_queue_jobs

# PGO's own password generation, if it ever runs, makes letters and digits.
USER_SPEC = {
    "name": "odoo",
    "options": "CREATEDB",
    "password": {"type": "AlphaNumeric"},
}


def _decoded(secret):
    return {
        key: base64.b64decode(value).decode() for key, value in secret["data"].items()
    }


class TestDefaultBooks(ShippedScopeMixin, OperatorsMixin, KubernetesCase):
    """The shipped books of both types, run against the emulated cluster."""

    SHIPPED_SCOPE_VALUES = {
        "values": json.dumps({"odoo": {"dns_target": "lb.example.com"}})
    }

    def _get(self, api_version, kind, name, namespace):
        return self.emulator.get(api_version, kind, name, namespace=namespace)

    def _objects(self, deployment):
        return sorted(
            (obj["kind"], obj["metadata"]["name"]) for obj in self._labelled(deployment)
        )

    def _versions(self, deployment):
        return {
            (obj["kind"], obj["metadata"]["name"]): obj["metadata"]["resourceVersion"]
            for obj in self._labelled(deployment)
        }

    def _logs(self, name):
        jobs = self.env["eyrie.job"].search([("deployment_name", "=", name)])
        return "\n".join(
            f"{job.log}\n{job.values}\n{job.error_message}" for job in jobs
        )

    # -- PostgreSQL ------------------------------------------------------

    def test_pgo_lifecycle_objects(self):
        db = self._create("shop-db", "pgo", values='{"replicas": 2, "storage": "20Gi"}')
        self.assertEqual(
            db.deployment_deploy_book_id,
            self.env.ref("eyrie_deployment.eyrie_book_pgo_deploy"),
        )
        self._run(db, "deploy")
        self.assertEqual((db.repository_state, db.state), ("deploy", "deploy"))
        self.assertEqual(
            self._objects(db),
            [
                ("Namespace", "shop-db"),
                ("PostgresCluster", "db"),
                ("Secret", "db-pguser-odoo"),
            ],
        )
        cluster = self._get(PGO, "PostgresCluster", "db", "shop-db")
        spec = cluster["spec"]
        self.assertIs(spec["shutdown"], False)
        self.assertEqual(spec["postgresVersion"], 16)
        self.assertEqual(spec["users"], [USER_SPEC])
        instance = spec["instances"][0]
        self.assertEqual(instance["replicas"], 2)
        self.assertEqual(
            instance["dataVolumeClaimSpec"]["resources"]["requests"]["storage"], "20Gi"
        )
        self.assertNotIn("storageClassName", instance["dataVolumeClaimSpec"])
        repo = spec["backups"]["pgbackrest"]["repos"][0]
        self.assertEqual(
            repo["volume"]["volumeClaimSpec"]["resources"]["requests"]["storage"],
            "10Gi",
        )
        user_secret = self._get("v1", "Secret", "db-pguser-odoo", "shop-db")
        self.assertEqual(
            user_secret["metadata"]["labels"][
                "postgres-operator.crunchydata.com/pguser"
            ],
            "odoo",
        )
        password = _decoded(user_secret)["password"]
        self.assertEqual(password, db.credentials["pguser_odoo"])
        self.assertGreaterEqual(len(password), 24)
        self.assertIn("Wait until ready", self._job(db, "deploy").log)

        self._run(db, "pause")
        self.assertEqual(db.repository_state, "pause")
        self.assertIs(
            self._get(PGO, "PostgresCluster", "db", "shop-db")["spec"]["shutdown"], True
        )
        self.assertIn(("Secret", "db-pguser-odoo"), self._objects(db))

        self._run(db, "deploy")
        self.assertEqual(db.repository_state, "deploy")
        self.assertIs(
            self._get(PGO, "PostgresCluster", "db", "shop-db")["spec"]["shutdown"],
            False,
        )
        self.assertEqual(
            _decoded(self._get("v1", "Secret", "db-pguser-odoo", "shop-db"))[
                "password"
            ],
            password,
        )

        self._run(db, "drop")
        self.assertFalse(db.exists())
        self.assertEqual(self.emulator.list(labels=MANAGED), [])
        self.assertIsNone(self._get("v1", "Namespace", "shop-db", None))
        self.assertNotIn(password, self._logs("shop-db"))

    # -- Odoo with its own database --------------------------------------

    def test_odoo_own_database_objects(self):
        odoo = self._create(
            "acme", "odoo", values='{"replicas": 2, "image": "odoo:18.0-20261101"}'
        )
        self._run(odoo, "deploy")
        self.assertEqual((odoo.repository_state, odoo.state), ("deploy", "deploy"))
        self.assertEqual(
            self._objects(odoo),
            [
                ("ConfigMap", "odoo-code"),
                ("ConfigMap", "odoo-scripts"),
                ("DNSEndpoint", "odoo"),
                ("Deployment", "odoo"),
                ("Ingress", "odoo"),
                # The first deploy installs base (and the values' modules).
                ("Job", "odoo-upgrade"),
                ("Namespace", "acme"),
                ("PersistentVolumeClaim", "odoo-filestore"),
                ("PostgresCluster", "db"),
                ("Secret", "db-pguser-odoo"),
                ("Secret", "odoo"),
                ("Service", "odoo"),
            ],
        )
        credentials = odoo.credentials
        secret = _decoded(self._get("v1", "Secret", "odoo", "acme"))
        self.assertEqual(
            secret,
            {
                "admin-password": credentials["admin_password"],
                "db-password": credentials["db_password"],
            },
        )
        login = odoo.action_show_login()
        shown = self.env["eyrie.deployment.login"].browse(login["res_id"])
        self.assertEqual(shown.password, credentials["admin_password"])
        self.assertEqual(
            _decoded(self._get("v1", "Secret", "db-pguser-odoo", "acme"))["password"],
            credentials["db_password"],
        )
        pvc = self._get("v1", "PersistentVolumeClaim", "odoo-filestore", "acme")
        self.assertEqual(pvc["spec"]["resources"]["requests"]["storage"], "10Gi")

        workload = self._get("apps/v1", "Deployment", "odoo", "acme")
        self.assertEqual(workload["spec"]["replicas"], 2)
        pod = workload["spec"]["template"]["spec"]
        container = pod["containers"][0]
        self.assertEqual(container["image"], "odoo:18.0-20261101")
        self.assertIn("--database=acme", container["args"])
        self.assertIn("--no-database-list", container["args"])
        env = {
            item["name"]: item.get("value") or item["valueFrom"]
            for item in container["env"]
        }
        self.assertEqual(env["HOST"], "db-primary")
        self.assertEqual(env["USER"], "odoo")
        self.assertEqual(
            env["PASSWORD"], {"secretKeyRef": {"name": "odoo", "key": "db-password"}}
        )
        self.assertEqual(
            pod["initContainers"][0]["command"],
            # The code's run.sh adds the addons folders that hold modules.
            ["/bin/bash", "/eyrie-code/run.sh", "/bin/bash", "/eyrie/prepare.sh"],
        )
        self.assertEqual(
            pod["volumes"][0],
            {
                "name": "filestore",
                "persistentVolumeClaim": {"claimName": "odoo-filestore"},
            },
        )

        ingress = self._get("networking.k8s.io/v1", "Ingress", "odoo", "acme")
        rule = ingress["spec"]["rules"][0]
        self.assertEqual(rule["host"], "acme.preview.example.com")
        self.assertEqual(odoo.hostname, "acme.preview.example.com")
        self.assertEqual(
            [path["path"] for path in rule["http"]["paths"]], ["/websocket", "/"]
        )
        dns = self._get(DNS, "DNSEndpoint", "odoo", "acme")
        self.assertEqual(
            dns["spec"]["endpoints"],
            [
                {
                    "dnsName": "acme.preview.example.com",
                    "recordType": "CNAME",
                    "recordTTL": 300,
                    "targets": ["lb.example.com"],
                }
            ],
        )
        db_spec = self._get(PGO, "PostgresCluster", "db", "acme")["spec"]
        self.assertIs(db_spec["shutdown"], False)
        self.assertEqual(db_spec["users"], [USER_SPEC])

        # A second deploy changes nothing that did not change.
        versions = self._versions(odoo)
        self._run(odoo, "deploy")
        self.assertEqual(self._versions(odoo), versions)

        # Pause: no Odoo pod, database shut down, data objects kept.
        self._run(odoo, "pause")
        self.assertEqual(odoo.repository_state, "pause")
        self.assertEqual(
            self._get("apps/v1", "Deployment", "odoo", "acme")["spec"]["replicas"], 0
        )
        self.assertIs(
            self._get(PGO, "PostgresCluster", "db", "acme")["spec"]["shutdown"], True
        )
        kept = {
            ("PersistentVolumeClaim", "odoo-filestore"),
            ("Secret", "odoo"),
            ("PostgresCluster", "db"),
        }
        self.assertLessEqual(kept, set(self._objects(odoo)))

        # Resume: replicas and database back, same credentials.
        self._run(odoo, "deploy")
        self.assertEqual(odoo.repository_state, "deploy")
        self.assertEqual(
            self._get("apps/v1", "Deployment", "odoo", "acme")["spec"]["replicas"], 2
        )
        self.assertIs(
            self._get(PGO, "PostgresCluster", "db", "acme")["spec"]["shutdown"], False
        )
        self.assertEqual(_decoded(self._get("v1", "Secret", "odoo", "acme")), secret)
        self.assertEqual(odoo.credentials, credentials)

        self._run(odoo, "drop")
        self.assertFalse(odoo.exists())
        self.assertEqual(self.emulator.list(labels=MANAGED), [])
        logs = self._logs("acme")
        self.assertIn("deleted DNSEndpoint odoo in namespace acme", logs)
        for password in credentials.values():
            self.assertNotIn(password, logs)

    def test_update_applies_changed_values_only(self):
        odoo = self._create("acme", "odoo")
        self._run(odoo, "deploy")

        def changed_by_update(values):
            versions = self._versions(odoo)
            odoo.values = values
            self._run(odoo, "deploy")
            return {
                key
                for key, version in self._versions(odoo).items()
                if versions[key] != version
            }

        # The same code: the pods are not stopped, nothing is upgraded.
        changed = changed_by_update('{"replicas": 2}')
        self.assertEqual(changed, {("Deployment", "odoo")})
        self.assertEqual(len(odoo.release_ids), 1, "the first deploy's only")
        # Another image is other code: the upgrade Job runs it first.
        changed = changed_by_update('{"image": "odoo:18.0-20261201", "replicas": 2}')
        self.assertEqual(changed, {("Deployment", "odoo"), ("Job", "odoo-upgrade")})
        self.assertTrue(odoo._odoo_releases()[0].upgrade)
        workload = self._get("apps/v1", "Deployment", "odoo", "acme")
        self.assertEqual(
            workload["spec"]["template"]["spec"]["containers"][0]["image"],
            "odoo:18.0-20261201",
        )

    # -- Odoo on a shared PostgreSQL deployment ----------------------------

    def test_odoo_on_shared_database(self):
        db = self._create("shared-db", "pgo")
        odoo = self._create(
            "tenant", "odoo", database_mode="shared", database_deployment_id=db.id
        )
        with self.assertRaisesMessage(UserError, "shared-db, which is not deployed"):
            odoo.action_deploy()
        self.assertEqual(odoo.repository_state, "draft")

        self._run(db, "deploy")
        self._run(odoo, "deploy")
        self.assertEqual(odoo.repository_state, "deploy")
        odoo_objects = self._objects(odoo)
        self.assertNotIn(("PostgresCluster", "db"), odoo_objects)
        self.assertNotIn(("Secret", "db-pguser-odoo"), odoo_objects)
        # A role of its own, which the PostgreSQL deployment's cluster holds
        # beside its own users; the Odoo gets that role's password only.
        role = odoo.database_role
        self.assertEqual(role, f"eyrie-odoo-{odoo.id}")
        users = self._get(PGO, "PostgresCluster", "db", "shared-db")["spec"]["users"]
        self.assertEqual([user["name"] for user in users], ["odoo", role])
        secret = _decoded(self._get("v1", "Secret", "odoo", "tenant"))
        self.assertEqual(secret["db-password"], db.credentials[f"pguser_{role}"])
        self.assertNotEqual(secret["db-password"], db.credentials["pguser_odoo"])
        container = self._get("apps/v1", "Deployment", "odoo", "tenant")["spec"][
            "template"
        ]["spec"]["containers"][0]
        host = next(
            item["value"] for item in container["env"] if item["name"] == "HOST"
        )
        self.assertEqual(host, "db-primary.shared-db.svc")

        with self.assertRaisesMessage(
            UserError, "Odoo deployment tenant keeps its database"
        ):
            db.action_drop()

        with self.assertRaisesMessage(
            UserError, "Odoo deployment tenant uses its database"
        ):
            db.action_pause()
        self.assertEqual(db.state, "deploy")

        # Pause leaves the shared cluster running.
        self._run(odoo, "pause")
        self.assertIs(
            self._get(PGO, "PostgresCluster", "db", "shared-db")["spec"]["shutdown"],
            False,
        )

        db_objects = self._objects(db)
        self._run(odoo, "drop")
        self.assertFalse(odoo.exists())
        drop_log = (
            self.env["eyrie.job"]
            .search([("deployment_name", "=", "tenant"), ("action", "=", "drop")])
            .log
        )
        self.assertIn("applied Job dropdb-", drop_log)
        self.assertIn("deleted Job dropdb-", drop_log)
        self.assertEqual(self._labelled(odoo), [])
        self.assertEqual(self._objects(db), db_objects)
        self.assertEqual(self.emulator.list("batch/v1", "Job"), [])

        self._run(db, "drop")
        self.assertEqual(self.emulator.list(labels=MANAGED), [])


class TestValues(EyrieCase):
    """Values are merged from type, scope and deployment, and checked at save."""

    def _odoo(self, values="{}"):
        return self.env["eyrie.deployment"].create(
            {
                "name": "acme",
                "deployment_type": "odoo",
                "scope_id": self.scope.id,
                "values": values,
            }
        )

    def test_defaults_scope_and_deployment_layers(self):
        self.scope.values = (
            '{"odoo": {"storage": "50Gi", "workers": 4}, "pgo": {"storage": "1Ti"}}'
        )
        odoo = self._odoo('{"workers": 8}')
        values = json.loads(odoo.effective_values)
        self.assertEqual(values["image"], "odoo:18.0")  # type default
        self.assertEqual(values["storage"], "50Gi")  # scope
        self.assertEqual(values["workers"], 8)  # deployment

    def test_bad_values_are_refused_at_save(self):
        odoo = self._odoo('{"storage": "20Gi"}')
        cases = [
            (
                '{"storage": "10 GB"}',
                "'storage' is '10 GB': use a Kubernetes quantity such as 10Gi",
            ),
            (
                '{"hostname": "Bad_Host.example.com"}',
                "'hostname' is 'Bad_Host.example.com': use a DNS name",
            ),
            ('{"replicas": -1}', "'replicas' is -1: use a whole number from 0 to 50"),
            ('{"image": "odoo 18"}', "'image' is 'odoo 18'"),
            ('{"postgres_version": 9}', "'postgres_version' is 9: use one of 13, 14"),
            ('{"storage": "0Gi"}', "it must be more than 0"),
            ("[1, 2]", "must be a JSON object"),
        ]
        for values, message in cases:
            with (
                self.subTest(values=values),
                self.assertRaisesMessage(ValidationError, message),
            ):
                odoo.values = values
                odoo.flush_recordset()
        odoo.invalidate_recordset()
        self.assertEqual(odoo.values, '{"storage": "20Gi"}')

    def test_bad_scope_values_and_domain_are_refused(self):
        cases = [
            (
                {"values": '{"odoo": {"storage": "lots"}}'},
                "Default values of scope Test scope: 'storage' is 'lots'",
            ),
            ({"values": '{"mysql": {}}'}, "'mysql' is not a deployment type"),
            ({"values": '{"odoo": 3}'}, "section 'odoo' must be a JSON object"),
            ({"domain": "preview..example.com"}, "'domain' is 'preview..example.com'"),
        ]
        for vals, message in cases:
            with (
                self.subTest(vals=vals),
                self.assertRaisesMessage(ValidationError, message),
            ):
                self.scope.write(vals)
                self.scope.flush_recordset()
        self.assertEqual(self.scope.domain, "test.example.com")

    def test_odoo_needs_a_hostname(self):
        self.scope.domain = False
        odoo = self._odoo()
        with self.assertRaisesMessage(
            UserError, "has no hostname: set a Domain on scope Test scope"
        ):
            odoo.action_deploy()
        self.assertEqual(odoo.repository_state, "draft")
        odoo.values = '{"hostname": "erp.acme.example"}'
        self.assertEqual(odoo.hostname, "erp.acme.example")
        odoo.action_deploy()
        self.assertEqual(odoo.state, "initializing")

    def test_shared_database_must_be_a_pgo_deployment(self):
        other_odoo = self._odoo()
        with self.assertRaisesMessage(
            ValidationError, "choose it in 'PostgreSQL Deployment'"
        ):
            self.env["eyrie.deployment"].create(
                {
                    "name": "x",
                    "deployment_type": "odoo",
                    "scope_id": self.scope.id,
                    "database_mode": "shared",
                }
            )
        with self.assertRaisesMessage(
            ValidationError, "must be a PostgreSQL deployment"
        ):
            self.env["eyrie.deployment"].create(
                {
                    "name": "y",
                    "deployment_type": "odoo",
                    "scope_id": self.scope.id,
                    "database_mode": "shared",
                    "database_deployment_id": other_odoo.id,
                }
            )

    def test_credentials_are_for_managers_only(self):
        odoo = self._odoo()
        odoo.action_deploy()
        self.assertTrue(odoo.sudo().credentials["admin_password"])
        as_user = odoo.with_user(self.user)
        self.assertNotIn("credentials", as_user.fields_get())
        self.assertNotIn("admin_password", as_user.fields_get())
        with self.assertRaisesMessage(
            UserError, "set by the deployment lifecycle only"
        ):
            odoo.with_user(self.manager).write({"credentials": {"admin_password": "x"}})


@tagged("post_install", "-at_install")
class TestDefaultBooksXmlRpc(OperatorsMixin, KubernetesRpcCase):
    """Both built-in types, end to end over XML-RPC as an Eyrie user, with the
    shipped books alone, against the emulated cluster."""

    LOGIN = "eyrie_books"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.scope = cls.env["eyrie.scope"].create(
            {
                "name": "Shipped books RPC",
                "cluster_id": cls.cluster.id,
                "domain": "preview.example.com",
                "allow_drop": True,
            }
        )

    def _act(self, deployment_id, action):
        self.assertIs(
            self.rpc("eyrie.deployment", f"action_{action}", [deployment_id]), True
        )
        Job = self.env["eyrie.job"]
        for _round in range(30):
            run_queue_jobs(self.env)
            self._play_operators()
            active = Job.search([("state", "in", ("pending", "running"))])
            if not active:
                break
            resume_waiting_jobs(self.env)
        found = self.rpc(
            "eyrie.deployment",
            "search_read",
            [("id", "=", deployment_id)],
            fields=["repository_state", "state"],
        )
        return (found[0]["repository_state"], found[0]["state"]) if found else None

    def test_both_types_over_xmlrpc(self):
        create = {"scope_id": self.scope.id}
        db_id = self.rpc(
            "eyrie.deployment",
            "create",
            create | {"name": "rpc-db", "deployment_type": "pgo"},
        )
        odoo_id = self.rpc(
            "eyrie.deployment",
            "create",
            create
            | {
                "name": "rpc-odoo",
                "deployment_type": "odoo",
                "database_mode": "shared",
                "database_deployment_id": db_id,
            },
        )
        own_id = self.rpc(
            "eyrie.deployment",
            "create",
            create | {"name": "rpc-own", "deployment_type": "odoo"},
        )
        for deployment_id in (db_id, odoo_id, own_id):
            self.assertEqual(self._act(deployment_id, "deploy"), ("deploy", "deploy"))
        self.assertEqual(
            self.emulator.get("apps/v1", "Deployment", "odoo", namespace="rpc-odoo")[
                "spec"
            ]["replicas"],
            1,
        )
        for deployment_id in (own_id, odoo_id, db_id):
            self.assertEqual(self._act(deployment_id, "pause"), ("pause", "pause"))
        self.assertEqual(
            self.emulator.get("apps/v1", "Deployment", "odoo", namespace="rpc-own")[
                "spec"
            ]["replicas"],
            0,
        )
        for deployment_id in (db_id, odoo_id, own_id):
            self.assertEqual(self._act(deployment_id, "deploy"), ("deploy", "deploy"))
        for deployment_id in (own_id, odoo_id, db_id):
            self.assertIsNone(self._act(deployment_id, "drop"))
        self.assertEqual(self.emulator.list(labels=MANAGED), [])
