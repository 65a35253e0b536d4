import base64
import xmlrpc.client

from odoo.exceptions import AccessError, UserError
from odoo.tests import new_test_user

from .common import ShippedScopeMixin
from .kube_common import (
    BUCKET,
    JOB_FAILED,
    PGO,
    KubernetesCase,
    OperatorsMixin,
    TwoUsersRpcCase,
)


class TestClones(ShippedScopeMixin, OperatorsMixin, KubernetesCase):
    """Duplicate with data, neutralization and the mail catcher, with the
    shipped books, against the emulated API (PGO's clone and the preparation
    Job played)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.staging = cls.env["eyrie.scope"].create(
            {
                "name": "Staging",
                "cluster_id": cls.cluster.id,
                "domain": "staging.example.com",
                "allow_drop": True,
            }
        )

    def _deployed_odoo(self, name="prod", **vals):
        deployment = self._create(name, **vals)
        self._run(deployment, "deploy")
        self.assertEqual(deployment.state, "deploy", deployment.error_message)
        return deployment

    def _clone(self, source, **kwargs):
        action = source.action_clone(**kwargs)
        return self.env["eyrie.deployment"].browse(action["res_id"])

    def _get(self, kind, name, namespace, api_version="v1"):
        return self.emulator.get(api_version, kind, name, namespace=namespace)

    def test_clone_starts_from_the_source_and_is_neutralized_before_it_serves(self):
        prod = self._deployed_odoo(values='{"workers": 4, "hostname": "shop.acme.io"}')
        clone = self._clone(prod, scope_id=self.staging.id, name="prod-staging")
        self.assertEqual(clone.state, "initializing")
        self._settle(between_rounds=self._play_operators)
        self.assertEqual((clone.repository_state, clone.state), ("deploy", "deploy"))
        self.assertEqual(clone.scope_id, self.staging)
        self.assertEqual(clone.cloned_from_id, prod)
        self.assertTrue(clone.clone_neutralize)
        self.assertEqual(clone.user_id, self.env.user)
        cluster = self.emulator.get(
            PGO, "PostgresCluster", "db", namespace="prod-staging"
        )
        self.assertEqual(
            cluster["spec"]["dataSource"],
            {
                "postgresCluster": {
                    "clusterName": "db",
                    "clusterNamespace": "prod",
                    "repoName": "repo1",
                }
            },
        )
        scripts = self._get("ConfigMap", "odoo-clone-scripts", "prod-staging")
        script = scripts["data"]["prepare_clone.sh"]
        self.assertIn('/entrypoint.sh odoo neutralize "$@"', script)
        job = self.emulator.get(
            "batch/v1", "Job", "odoo-clone", namespace="prod-staging"
        )
        container = job["spec"]["template"]["spec"]["containers"][0]
        # The source's database name: the copy holds it under that name.
        self.assertIn("--database=prod", container["args"])
        # Its own values, served under its own name: not the source's hostname.
        self.assertEqual(clone.hostname, "prod-staging.staging.example.com")
        self.assertIn('"workers": 4', clone.values)
        ingress = self._get(
            "Ingress", "odoo", "prod-staging", api_version="networking.k8s.io/v1"
        )
        self.assertEqual(
            ingress["spec"]["rules"][0]["host"], "prod-staging.staging.example.com"
        )
        # The preparation ran before the workload existed (initialize book).
        log = clone.job_ids.filtered(lambda j: j.action == "initialize").log
        self.assertIn("Clone: wait for its preparation", log)
        self.assertIn("Cloned into prod-staging", self._messages(prod))
        # The source is untouched.
        self.assertEqual((prod.repository_state, prod.state), ("deploy", "deploy"))

    def test_clone_of_a_backup_restores_to_its_time(self):
        prod = self._deployed_odoo()
        self._run(prod, "backup")
        backup = prod.backup_ids
        clone = self._clone(prod, name="prod-at-backup", backup_id=backup.id)
        self._settle(between_rounds=self._play_operators)
        self.assertEqual(clone.state, "deploy")
        self.assertEqual(clone.clone_backup_id, backup)
        source = self.emulator.get(
            PGO, "PostgresCluster", "db", namespace="prod-at-backup"
        )["spec"]["dataSource"]["postgresCluster"]
        # The backup as it was, by its pgBackRest set, not a point in time.
        self.assertEqual(
            source["options"], [f"--set={backup.backup_set}", "--type=immediate"]
        )

    def test_clone_from_a_bucket_backs_the_source_up_and_copies_its_filestore(self):
        self.shipped.write(BUCKET)
        prod = self._deployed_odoo("bucket-prod")
        clone = self._clone(prod, scope_id=self.staging.id, name="bucket-staging")
        backup = prod.backup_ids
        self.assertEqual((backup.kind, backup.state), ("before_clone", "pending"))
        self.assertEqual(prod.state, "backing_up")
        self.assertEqual(clone.clone_backup_id, backup)
        initialize = self._job(clone, "initialize")
        self.assertEqual(initialize.previous_job_id, backup.job_id)
        self._settle(between_rounds=self._play_operators)
        self.assertEqual((clone.repository_state, clone.state), ("deploy", "deploy"))
        self.assertEqual((prod.state, backup.state), ("deploy", "done"))
        self.assertGreaterEqual(initialize.started_at, backup.job_id.ended_at)
        # The database as it is at the clone's start, after the backup.
        source = self.emulator.get(
            PGO, "PostgresCluster", "db", namespace="bucket-staging"
        )["spec"]["dataSource"]["postgresCluster"]
        self.assertNotIn("options", source)
        # The filestore from the backup's archive, with the source bucket's keys.
        pod = self.emulator.get(
            "batch/v1", "Job", "odoo-clone", namespace="bucket-staging"
        )["spec"]["template"]["spec"]
        fetch = pod["initContainers"][0]
        self.assertEqual(
            fetch["command"][:4], ["aws", "s3", "cp", backup.filestore_archive]
        )
        self.assertTrue(backup.filestore_archive.startswith("s3://eyrie-backups/"))
        keys = self._get("Secret", "eyrie-clone-s3", "bucket-staging")
        self.assertEqual(
            base64.b64decode(keys["data"]["AWS_ACCESS_KEY_ID"]).decode(),
            BUCKET["backup_s3_key_id"],
        )
        script = self._get("ConfigMap", "odoo-clone-scripts", "bucket-staging")
        prepare = script["data"]["prepare_clone.sh"]
        # Unpacked before neutralization runs on the copy.
        self.assertLess(prepare.index("tar -xzf"), prepare.index("odoo neutralize"))
        self.assertIn(
            "the filestore from the archive in the bucket", self._messages(prod)
        )
        text = "\n".join(f"{job.log}\n{job.values}" for job in clone.job_ids)
        self.assertNotIn(BUCKET["backup_s3_secret_key"], text)

    def test_clone_whose_source_backup_fails_is_not_started(self):
        self.shipped.write(BUCKET)
        prod = self._deployed_odoo("fragile-prod")
        clone = self._clone(prod, scope_id=self.staging.id, name="fragile-staging")
        self._settle(between_rounds=lambda _r: self.emulator.play_operators(True))
        self.assertEqual((clone.repository_state, clone.state), ("draft", "draft"))
        self.assertIn(
            "The clone was not started: the backup of fragile-prod it starts from "
            "did not finish",
            clone.error_message,
        )
        self.assertIn("The clone was not started", self._messages(clone))
        self.assertEqual(
            set(clone.job_ids.mapped("state")), {"cancelled"}, clone.job_ids
        )
        self.assertIsNone(self.emulator.get("v1", "Namespace", "fragile-staging"))
        # The source keeps its phase, and says its backup failed.
        self.assertEqual((prod.repository_state, prod.state), ("deploy", "deploy"))
        self.assertIn("The backup failed", prod.error_message)

    def test_clone_from_a_volume_says_its_filestore_starts_empty(self):
        prod = self._deployed_odoo("volume-prod")
        clone = self._clone(prod, name="volume-staging")
        self.assertFalse(prod.backup_ids)
        self._settle(between_rounds=self._play_operators)
        self.assertEqual(clone.state, "deploy")
        self.assertIn("the filestore starts empty", self._messages(prod))
        pod = self.emulator.get(
            "batch/v1", "Job", "odoo-clone", namespace="volume-staging"
        )["spec"]["template"]["spec"]
        self.assertNotIn("initContainers", pod)

    def test_postgresql_clone_starts_from_its_source_with_passwords_of_its_own(self):
        self.staging.neutralize_clones = False
        db = self._create("pg-prod", "pgo")
        self._run(db, "deploy")
        self._run(db, "backup")
        backup = db.backup_ids
        clone = self._clone(
            db, scope_id=self.staging.id, name="pg-copy", backup_id=backup.id
        )
        self._settle(between_rounds=self._play_operators)
        self.assertEqual((clone.deployment_type, clone.state), ("pgo", "deploy"))
        self.assertEqual((clone.cloned_from_id, clone.clone_backup_id), (db, backup))
        self.assertFalse(clone.clone_neutralize)
        cluster = self.emulator.get(PGO, "PostgresCluster", "db", namespace="pg-copy")
        self.assertEqual(
            cluster["spec"]["dataSource"],
            {
                "postgresCluster": {
                    "clusterName": "db",
                    "clusterNamespace": "pg-prod",
                    "repoName": "repo1",
                    "options": [f"--set={backup.backup_set}", "--type=immediate"],
                }
            },
        )
        # The copied roles get the clone's own passwords (PGO adopts them).
        own = clone.sudo().credentials["pguser_odoo"]
        self.assertNotEqual(own, db.sudo().credentials["pguser_odoo"])
        secret = self._get("Secret", "db-pguser-odoo", "pg-copy")
        self.assertEqual(base64.b64decode(secret["data"]["password"]).decode(), own)
        self.assertIn("Cloned into pg-copy", self._messages(db))
        # Once deployed, it is a PostgreSQL deployment like any other.
        self._run(clone, "deploy")
        cluster = self.emulator.get(PGO, "PostgresCluster", "db", namespace="pg-copy")
        self.assertNotIn("dataSource", cluster["spec"])

    def test_postgresql_clone_refused_where_clones_must_be_neutralized(self):
        db = self._create("pg-strict", "pgo")
        self._run(db, "deploy")
        self.assertTrue(self.staging.neutralize_clones)
        with self.assertRaisesMessage(UserError, "Eyrie does not know which are Odoo"):
            self._clone(db, scope_id=self.staging.id, name="pg-strict-copy")
        self.assertFalse(db.clone_ids)

    def test_failed_neutralization_leaves_the_clone_in_error_never_served(self):
        prod = self._deployed_odoo()
        clone = self._clone(prod, name="prod-broken")

        def fail_the_preparation(_round):
            self.emulator.play_operators()
            job = self.emulator.list("batch/v1", "Job", namespace="prod-broken")
            if job:
                self.emulator.set_status(
                    "batch/v1", "Job", "odoo-clone", JOB_FAILED, namespace="prod-broken"
                )

        self._settle(between_rounds=fail_the_preparation)
        self.assertEqual((clone.repository_state, clone.state), ("initialize", "error"))
        self.assertIn("The clone was not started", clone.error_message)
        self.assertIn("Job odoo-clone", clone.error_message)
        self.assertIn("nothing was served", self._messages(clone))
        # No Odoo workload, no Ingress: nothing ever took traffic.
        self.assertFalse(
            self.emulator.list("apps/v1", "Deployment", namespace="prod-broken")
        )
        self.assertFalse(
            self.emulator.list(
                "networking.k8s.io/v1", "Ingress", namespace="prod-broken"
            )
        )
        # Deploy again: the failed preparation Job is replaced and runs again.
        self._run(clone, "deploy")
        self.assertEqual(clone.state, "deploy")
        self.assertEqual(
            self.emulator.get("batch/v1", "Job", "odoo-clone", namespace="prod-broken")[
                "status"
            ],
            {"succeeded": 1},
        )

    def test_scope_that_requires_neutralization_refuses_a_plain_clone(self):
        prod = self._deployed_odoo()
        with self.assertRaisesMessage(UserError, "requires clones to be neutralized"):
            self._clone(prod, name="prod-raw", neutralize=False)
        self.assertFalse(
            self.env["eyrie.deployment"].search([("name", "=", "prod-raw")])
        )
        self.staging.neutralize_clones = False
        clone = self._clone(
            prod, name="prod-raw", scope_id=self.staging.id, neutralize=False
        )
        self._settle(between_rounds=self._play_operators)
        self.assertFalse(clone.clone_neutralize)
        script = self._get("ConfigMap", "odoo-clone-scripts", "prod-raw")["data"][
            "prepare_clone.sh"
        ]
        self.assertNotIn("neutralize", script)
        # The copied database still gets the clone's own admin password.
        self.assertIn("prepare_clone.py", script)

    def test_clone_refusals(self):
        draft = self._create("draft-prod")
        with self.assertRaisesMessage(UserError, "only a deployed or paused"):
            draft.action_clone()
        prod = self._deployed_odoo()
        with self.assertRaisesMessage(UserError, "is not a finished backup"):
            prod.action_clone(backup_id=999999)
        other_cluster = self.env["eyrie.cluster"].create(
            {"name": "Elsewhere", "kubeconfig": self.cluster.sudo().kubeconfig}
        )
        far = self.env["eyrie.scope"].create(
            {"name": "Far", "cluster_id": other_cluster.id, "domain": "far.example"}
        )
        with self.assertRaisesMessage(UserError, "Choose a scope on"):
            prod.action_clone(scope_id=far.id)
        self._run(prod, "pause")
        with self.assertRaisesMessage(UserError, "cannot be cloned while paused"):
            prod.action_clone()
        _db, shared = self._deployed_on_shared_database("shared-db", "on-shared")
        with self.assertRaisesMessage(UserError, "cannot be cloned by itself"):
            shared.action_clone()
        self.assertFalse(
            self.env["eyrie.deployment"].search([("cloned_from_id", "!=", False)])
        )

    def test_users_cannot_write_where_a_clone_comes_from(self):
        prod = self._deployed_odoo()
        user = new_test_user(
            self.env, login="clone_forger", groups="eyrie_deployment.group_eyrie_user"
        )
        mine = self._create("forged").with_user(user)
        mine.sudo().user_id = user
        with self.assertRaisesMessage(UserError, "set by the deployment lifecycle"):
            mine.write({"cloned_from_id": prod.id})
        with self.assertRaisesMessage(UserError, "set by the deployment lifecycle"):
            self.env["eyrie.deployment"].with_user(user).create(
                {
                    "name": "forged-2",
                    "deployment_type": "odoo",
                    "scope_id": self.shipped.id,
                    "cloned_from_id": prod.id,
                }
            )
        # Nor clone a deployment that is not theirs.
        with self.assertRaises(AccessError):
            prod.with_user(user).action_clone()

    def test_the_wizard_clones(self):
        prod = self._deployed_odoo()
        wizard = (
            self.env["eyrie.clone.wizard"]
            .with_context(**prod.action_open_clone()["context"])
            .create({"name": "prod-wizard", "scope_id": self.staging.id})
        )
        action = wizard.action_clone()
        clone = self.env["eyrie.deployment"].browse(action["res_id"])
        self.assertEqual((clone.name, clone.scope_id), ("prod-wizard", self.staging))
        self.assertEqual(clone.state, "initializing")

    # -- mail catcher ------------------------------------------------------

    def test_mail_catcher_objects_and_odoo_pointed_at_it(self):
        self.staging.mail_catcher = True
        shop = self._deployed_odoo("caught", scope_id=self.staging.id)
        mailpit = self.emulator.get(
            "apps/v1", "Deployment", "mailpit", namespace="caught"
        )
        container = mailpit["spec"]["template"]["spec"]["containers"][0]
        self.assertEqual(container["image"], "axllent/mailpit:v1.27")
        env = {item["name"]: item for item in container["env"]}
        self.assertEqual(env["MP_WEBROOT"]["value"], "/mail")
        secret = self._get("Secret", "mailpit", "caught")
        self.assertEqual(
            base64.b64decode(secret["data"]["ui-auth"]).decode(),
            "admin:" + shop.sudo().credentials["admin_password"],
        )
        service = self._get("Service", "mailpit", "caught")
        self.assertEqual(
            {p["name"]: p["port"] for p in service["spec"]["ports"]},
            {"smtp": 1025, "http": 8025},
        )
        odoo = self.emulator.get("apps/v1", "Deployment", "odoo", namespace="caught")
        args = odoo["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertIn("--smtp=mailpit", args)
        self.assertIn("--smtp-port=1025", args)
        ingress = self._get(
            "Ingress", "odoo", "caught", api_version="networking.k8s.io/v1"
        )
        paths = {
            p["path"]: p["backend"]["service"]["name"]
            for p in ingress["spec"]["rules"][0]["http"]["paths"]
        }
        self.assertEqual(paths["/mail"], "mailpit")
        self.assertEqual(paths["/"], "odoo")
        # Paused, it stops with the Odoo; resumed, it runs again.
        self._run(shop, "pause")
        self.assertEqual(
            self.emulator.get("apps/v1", "Deployment", "mailpit", namespace="caught")[
                "spec"
            ]["replicas"],
            0,
        )
        self._run(shop, "deploy")
        self.assertEqual(
            self.emulator.get("apps/v1", "Deployment", "mailpit", namespace="caught")[
                "spec"
            ]["replicas"],
            1,
        )
        # Turned off: the next deploy removes it and Odoo sends as before.
        self.staging.mail_catcher = False
        self._run(shop, "deploy")
        names = {
            (obj["kind"], obj["metadata"]["name"])
            for obj in self.emulator.list(namespace="caught")
        }
        self.assertNotIn(("Deployment", "mailpit"), names)
        self.assertNotIn(("Service", "mailpit"), names)
        self.assertNotIn(("Secret", "mailpit"), names)
        self.assertIn(("Deployment", "odoo"), names)
        odoo = self.emulator.get("apps/v1", "Deployment", "odoo", namespace="caught")
        self.assertNotIn(
            "--smtp=mailpit", odoo["spec"]["template"]["spec"]["containers"][0]["args"]
        )


class TestClonesXmlRpc(TwoUsersRpcCase):
    """Clone as a plain user over XML-RPC; another user is refused."""

    LOGIN = "eyrie_clone_user"

    def _deploy_and_clone(self, name):
        """An Odoo deployment ``name`` deployed, then cloned as ``<name>-copy``
        over XML-RPC by the user; returns (its id, the clone's id)."""
        shop = self.rpc(
            "eyrie.deployment",
            "create",
            {"name": name, "deployment_type": "odoo", "scope_id": self.scope.id},
        )
        self.rpc("eyrie.deployment", "action_deploy", [shop])
        self._settle_played()
        action = self.rpc(
            "eyrie.deployment", "action_clone", [shop], name=f"{name}-copy"
        )
        self._settle_played()
        return shop, action["res_id"]

    def test_clone_over_xmlrpc(self):
        shop, clone_id = self._deploy_and_clone("rpc-prod")
        clone = self.rpc(
            "eyrie.deployment",
            "read",
            [clone_id],
            ["state", "cloned_from_id", "clone_neutralize", "user_id"],
        )[0]
        self.assertEqual(clone["state"], "deploy")
        self.assertEqual(clone["cloned_from_id"][0], shop)
        self.assertTrue(clone["clone_neutralize"])
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            self._as_other("action_clone", [shop])
        self.assertIn("You cannot duplicate deployment", caught.exception.faultString)

    def test_a_user_without_an_email_address_clones(self):
        # Odoo lets a user have no email address (a login that is none):
        # Eyrie's messages are notes of the deployment, sent to nobody by mail.
        self.user.partner_id.email = False
        shop, clone_id = self._deploy_and_clone("no-mail")
        clone = self.env["eyrie.deployment"].browse(clone_id)
        self.assertEqual(clone.state, "deploy", clone.error_message)
        source = self.env["eyrie.deployment"].browse(shop)
        self.assertIn(
            "Cloned into no-mail-copy", "\n".join(source.message_ids.mapped("body"))
        )
