"""Every object the shipped books apply, validated against Kubernetes' own
OpenAPI schemas in strict mode (``kubernetes-validate``): both types, own and
shared database, with the optional values set.

Strict mode refuses any field the schema does not know, so a typo in a book
(``imagePullPolicy`` misspelt, a field at the wrong level) fails here rather
than on a cluster. The custom resources (PGO's PostgresCluster, external-dns'
DNSEndpoint) have no schema in that package: they are listed, not skipped
silently, and checked by the emulator's tests only.
"""

import base64
import json

import kubernetes_validate
from kubernetes_validate.utils import latest_version

from odoo import fields
from odoo.tests import tagged

from ..tools.executor import CLUSTER_SCOPED_KINDS
from .common import EyrieCase, ShippedScopeMixin
from .kube_common import BUCKET

# A recent Kubernetes, as the package ships it.
KUBERNETES_VERSION = latest_version()
CUSTOM_KINDS = {"PostgresCluster", "DNSEndpoint", "VolumeSnapshot"}
LIFECYCLE_BOOKS = ("initialize", "deploy", "pause", "drop")
OPTIONAL_VALUES = {
    "storage_class": "fast-ssd",
    "ingress_class": "nginx",
    "tls_secret": "wildcard-tls",
    "replicas": 2,
    "workers": 4,
}


@tagged("post_install", "-at_install")
class TestOpenApiSchemas(ShippedScopeMixin, EyrieCase):
    def _applied_objects(self, deployment, values, actions=LIFECYCLE_BOOKS):
        """What each apply step of the deployment's books for ``actions``
        sends: the rendered objects with Eyrie's labels and the namespace,
        as the executor adds them."""
        context = deployment._template_context(values)
        for action in actions:
            book = deployment[f"deployment_{action}_book_id"]
            for step in book.step_ids.filtered(lambda s: s.kind == "apply"):
                for obj in deployment._render_step(step, context):
                    metadata = obj.setdefault("metadata", {})
                    metadata["labels"] = {
                        **(metadata.get("labels") or {}),
                        **deployment._cluster_labels(),
                    }
                    if obj["kind"] not in CLUSTER_SCOPED_KINDS:
                        metadata.setdefault("namespace", deployment.namespace)
                    yield f"{book.name} / {step.name}", obj

    def _validate_all(self, deployment, values, actions=LIFECYCLE_BOOKS):
        validated, custom = [], []
        for where, obj in self._applied_objects(deployment, values, actions):
            if obj["kind"] in CUSTOM_KINDS:
                custom.append(obj["kind"])
                continue
            with self.subTest(where=where, kind=obj["kind"]):
                try:
                    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
                except kubernetes_validate.ValidationError as error:
                    self.fail(f"{where}: {obj['kind']}: {error.message}")
            validated.append(obj["kind"])
        return sorted(validated), sorted(set(custom))

    def test_odoo_own_database(self):
        odoo = self._create("schema-own", "odoo", values=json.dumps(OPTIONAL_VALUES))
        odoo._ensure_credentials(("admin_password", "db_password"))
        validated, custom = self._validate_all(odoo, odoo._odoo_values())
        self.assertEqual(
            validated,
            [
                # the start-up script, the code's scripts
                "ConfigMap",
                "ConfigMap",
                "Deployment",
                "Ingress",
                "Namespace",
                "PersistentVolumeClaim",
                # odoo and db-pguser-odoo, at initialize and again at deploy
                "Secret",
                "Secret",
                "Secret",
                "Secret",
                "Service",
            ],
        )
        self.assertEqual(custom, ["DNSEndpoint", "PostgresCluster"])

    def test_odoo_clone_with_a_mail_catcher(self):
        self.shipped.mail_catcher = True
        source = self._create("schema-source", "odoo")
        clone = self._create("schema-clone", "odoo", values=json.dumps(OPTIONAL_VALUES))
        clone.sudo().write(
            {
                "cloned_from_id": source.id,
                "cloned_from_name": source.name,
                "clone_neutralize": True,
            }
        )
        clone._ensure_credentials(("admin_password", "db_password"))
        validated, custom = self._validate_all(clone, clone._odoo_values())
        self.assertEqual(
            validated,
            [
                "ConfigMap",
                # the clone's preparation, the code's scripts
                "ConfigMap",
                "ConfigMap",
                "Deployment",
                # Mailpit
                "Deployment",
                "Ingress",
                "Job",
                "Namespace",
                "PersistentVolumeClaim",
                "Secret",
                "Secret",
                "Secret",
                "Secret",
                # Mailpit's login
                "Secret",
                "Service",
                "Service",
            ],
        )
        self.assertEqual(custom, ["DNSEndpoint", "PostgresCluster"])

    def test_odoo_backup_to_a_bucket_restore_and_clone_of_it(self):
        self.shipped.write(BUCKET)
        source = self._create("schema-prod", "odoo", values=json.dumps(OPTIONAL_VALUES))
        source._ensure_credentials(("admin_password", "db_password"))
        job = source._start_backup("manual", source._odoo_values(need_hostname=False))
        values = job._job_values()
        self.assertEqual(
            self._validate_all(source, values, ("backup",)),
            # the bucket's keys, the packing script, the archive Job
            (["ConfigMap", "Job", "Secret"], ["VolumeSnapshot"]),
        )
        backup = source._backup_of(job)
        backup.write(
            {
                "state": "done",
                "completed_at": fields.Datetime.now(),
                "filestore_snapshot": "filestore-x",
            }
        )
        restore = values | source._odoo_restore_values(backup, None)
        self.assertEqual(
            self._validate_all(source, restore, ("restore",)),
            (["PersistentVolumeClaim"], []),
        )
        from_archive = restore | {
            "restore_label": "eyrie-restore-1-1",
            "restore_snapshot": "",
            "restore_archive": "s3://b/x.tar.gz",
        }
        self.assertEqual(
            self._validate_all(source, from_archive, ("restore",)),
            (["ConfigMap", "Job", "Secret"], []),
        )
        clone = self._create("schema-prod-copy", "odoo")
        clone.sudo().write(
            {
                "cloned_from_id": source.id,
                "cloned_from_name": source.name,
                "clone_backup_id": backup.id,
            }
        )
        clone._ensure_credentials(("admin_password", "db_password"))
        validated, _custom = self._validate_all(
            clone, clone._odoo_values(), ("initialize",)
        )
        # the preparation's scripts, Job, and the source bucket's keys
        self.assertEqual(validated.count("Job"), 1)
        self.assertEqual(validated.count("ConfigMap"), 1)
        self.assertEqual(validated.count("Secret"), 4)

    def test_odoo_shared_database_with_an_address_record(self):
        db = self._create("schema-db", "pgo", values=json.dumps({"users": ["odoo"]}))
        odoo = self._create(
            "schema-shared",
            "odoo",
            database_mode="shared",
            database_deployment_id=db.id,
            values=json.dumps(OPTIONAL_VALUES | {"dns_target": "203.0.113.7"}),
        )
        db._ensure_credentials(("pguser_odoo", f"pguser_{odoo.database_role}"))
        odoo._ensure_credentials(("admin_password", "db_password"))
        validated, custom = self._validate_all(odoo, odoo._odoo_values())
        self.assertIn("Job", validated)  # the dropdb Job
        self.assertIn("Deployment", validated)
        self.assertEqual(custom, ["DNSEndpoint"])

    def test_postgresql(self):
        db = self._create(
            "schema-pg",
            "pgo",
            values=json.dumps({"users": ["odoo", "shop"], "storage_class": "fast"}),
        )
        db._ensure_credentials(("pguser_odoo", "pguser_shop"))
        validated, custom = self._validate_all(db, db._pgo_values())
        self.assertEqual(validated, ["Namespace", "Secret", "Secret"])
        self.assertEqual(custom, ["PostgresCluster"])

    def test_strict_mode_refuses_an_unknown_field(self):
        # The check itself can fail: a misplaced field is refused.
        with self.assertRaises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "odoo"},
                    "spec": {"ports": [{"port": 8069, "targetport": "http"}]},
                },
                KUBERNETES_VERSION,
                strict=True,
            )

    def test_odoo_with_addons_repositories_and_an_upgrade(self):
        """The code's objects: the fetch init container in the workload, the
        upgrade Job and the test Job, the credentials' Secret."""
        credential = self.env["eyrie.git.credential"].create(
            {"name": "acme-token", "kind": "https", "token": "glpat-schema-test"}
        )
        registry = self.env["eyrie.registry.credential"].create(
            {
                "name": "acme-registry",
                "registry": "registry.example.com:5000",
                "username": "puller",
                "password": "registry-s3cret",
            }
        )
        self.shipped.write(
            {
                "git_hosts": "github.com",
                "git_credential_ids": [(6, 0, credential.ids)],
                "image_pull_credential_ids": [(6, 0, registry.ids)],
            }
        )
        repositories = [
            {"url": "https://github.com/OCA/web.git", "ref": "18.0"},
            {
                "url": "https://github.com/acme/addons.git",
                "ref": "main",
                "path": "addons",
                "credential": "acme-token",
            },
        ]
        odoo = self._create(
            "schema-code",
            "odoo",
            values=json.dumps(
                {
                    "repositories": repositories,
                    "modules": ["web_m2x"],
                    "demo": True,
                    "tests": ["web_m2x"],
                }
            ),
        )
        odoo._ensure_credentials(("admin_password", "db_password"))
        release = self.env["eyrie.release"].create(
            {
                "deployment_id": odoo.id,
                "image": "odoo:18.0",
                "outcome": "deployed",
                "commits": [
                    dict(
                        item,
                        path=item.get("path", ""),
                        credential=item.get("credential", ""),
                        commit=f"{index}" * 40,
                    )
                    for index, item in enumerate(repositories, start=1)
                ],
            }
        )
        values = odoo._odoo_code_values(odoo._odoo_values(), release=release)
        self.assertTrue(values["upgrade"])
        objects = {
            (obj["kind"], obj["metadata"]["name"]): obj
            for _where, obj in self._applied_objects(odoo, values, ("deploy",))
        }
        self.assertIn(("Job", "odoo-upgrade"), objects)
        self.assertIn(("Job", "odoo-tests"), objects)
        self.assertIn(("Secret", "odoo-git"), objects)
        self.assertEqual(
            sorted(objects["Secret", "odoo-git"]["data"]),
            ["acme-token-ca", "acme-token-token", "acme-token-username"],
        )
        pull = objects["Secret", "odoo-registry"]
        self.assertEqual(pull["type"], "kubernetes.io/dockerconfigjson")
        config = json.loads(base64.b64decode(pull["data"][".dockerconfigjson"]))
        self.assertEqual(
            config["auths"]["registry.example.com:5000"]["auth"],
            base64.b64encode(b"puller:registry-s3cret").decode(),
        )
        for kind, name in (
            ("Deployment", "odoo"),
            ("Job", "odoo-upgrade"),
            ("Job", "odoo-tests"),
        ):
            self.assertEqual(
                objects[kind, name]["spec"]["template"]["spec"]["imagePullSecrets"],
                [{"name": "odoo-registry"}],
            )
        validated, _custom = self._validate_all(odoo, values, ("deploy",))
        self.assertEqual(validated.count("Job"), 2)
        self.assertEqual(validated.count("ConfigMap"), 2)
        # odoo, db-pguser-odoo, the git credentials and the registry's.
        self.assertEqual(validated.count("Secret"), 4)
