"""The shipped Odoo books' container, run for real: a real Odoo 18.0 process
runs the init script and then the command of the rendered Deployment, with the
environment the Deployment gives it, against a PostgreSQL role that needs its
password (a private PostgreSQL cluster of the test, as PGO would run one);
how, ``odoo_container.py`` says.
"""

import hashlib
import os
import shutil
import subprocess
import sys
import xmlrpc.client

from odoo import fields
from odoo.tests import tagged

from .common import EyrieCase, ShippedScopeMixin
from .kube_common import BUCKET
from .odoo_container import MIRROR, OdooContainerMixin
from .private_postgres import PrivatePostgres, free_port
from .s3_peer import S3Peer


@tagged("post_install", "-at_install")
class TestOdooContainer(OdooContainerMixin, ShippedScopeMixin, EyrieCase):
    def test_own_database_container_runs_for_real(self):
        odoo = self._create("real-odoo")
        odoo._ensure_credentials(("admin_password", "db_password"))
        credentials = odoo.sudo().credentials
        values = odoo._odoo_values()
        initialize = self._rendered(odoo, "initialize")
        deploy = self._rendered(odoo, "deploy")
        secrets = {
            name: self._decoded(obj)
            for (kind, name), obj in {**initialize, **deploy}.items()
            if kind == "Secret"
        }
        pod = deploy["Deployment", "odoo"]["spec"]["template"]["spec"]
        init, main = pod["initContainers"][0], pod["containers"][0]
        http_port = free_port()

        with PrivatePostgres() as pg:
            # PGO makes the role of spec.users from the pguser Secret.
            pguser = secrets[f"db-pguser-{values['db_user']}"]
            pg.create_role(pguser["user"], pguser["password"])
            config = self._image_config(http_port)
            self._write_scripts(deploy["ConfigMap", "odoo-scripts"])
            self._write_scripts(deploy["ConfigMap", "odoo-code"], mount="/eyrie-code")
            env = self._pod_env(init, secrets, pg) | {"ODOO_RC": config}
            self._run_container_script(init, env)
            self.assertIn(values["db_name"], pg.databases())
            # Another role of the server (another Odoo on a shared database)
            # cannot even connect to it.
            pg.create_role("neighbour", "neighbour-password")
            with self.assertRaisesRegex(Exception, "permission denied for database"):
                pg.execute(
                    "SELECT 1",
                    user="neighbour",
                    password="neighbour-password",
                    dbname=values["db_name"],
                )

            env = self._pod_env(main, secrets, pg) | {"ODOO_RC": config}
            log = open(os.path.join(self.root, "odoo.log"), "w")  # noqa: SIM115
            self.addCleanup(log.close)
            server = subprocess.Popen(
                [sys.executable, MIRROR, *self._mounted(main["args"])],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            try:
                base = f"http://127.0.0.1:{http_port}"
                self._wait_healthy(server, f"{base}/web/health")
                common = xmlrpc.client.ServerProxy(f"{base}/xmlrpc/2/common")
                db_name = values["db_name"]
                uid = common.authenticate(
                    db_name, "admin", credentials["admin_password"], {}
                )
                self.assertTrue(uid, "the generated admin password is refused")
                self.assertFalse(common.authenticate(db_name, "admin", "admin", {}))
            finally:
                server.terminate()
                try:
                    server.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    server.kill()
                    server.wait()

    def test_clone_starts_from_the_sources_data_neutralized_for_real(self):
        """A backup to a bucket archives a real Odoo's filestore; its clone
        fetches and unpacks it, then neutralizes the copied database."""
        self.shipped.write(BUCKET | {"mail_catcher": True})
        source = self._create("real-prod")
        source._ensure_credentials(("admin_password", "db_password"))
        backup_job = source._start_backup(
            "manual", source._odoo_values(need_hostname=False)
        )
        backup = source._backup_of(backup_job)
        archive_book = self._rendered(source, "backup", backup_job._job_values())
        archive_pod = archive_book["Job", f"filestore-archive-{backup.label}"]["spec"][
            "template"
        ]["spec"]
        # As action_clone makes it: the copy keeps the source's database name.
        clone = self._create("real-staging", values='{"db_name": "real-prod"}')
        clone.sudo().write(
            {
                "cloned_from_id": source.id,
                "cloned_from_name": source.name,
                "clone_backup_id": backup.id,
                "clone_neutralize": True,
            }
        )
        clone._ensure_credentials(("admin_password", "db_password"))
        initialize = self._rendered(clone, "initialize")
        secrets = {
            name: self._decoded(obj)
            for (kind, name), obj in {**archive_book, **initialize}.items()
            if kind == "Secret"
        }
        job = initialize["Job", "odoo-clone"]["spec"]["template"]["spec"]
        container = job["containers"][0]
        password = secrets["odoo"]["db-password"]
        folders = {
            name: os.path.join(self.root, name)
            for name in ("source", "archive", "loaded", "clone", "fetched")
        }
        source_mounts = {
            "/var/lib/odoo": folders["source"],
            "/archive": folders["archive"],
            "/eyrie": os.path.join(self.root, "source-scripts"),
        }
        clone_mounts = {
            "/var/lib/odoo": folders["clone"],
            "/archive": folders["fetched"],
            "/eyrie": os.path.join(self.root, "clone-scripts"),
        }
        for folder in folders.values():
            os.makedirs(folder)
        # Two database clusters, as the source and the clone each have one.
        with (
            PrivatePostgres() as pg,
            PrivatePostgres() as clone_pg,
            S3Peer(BUCKET["backup_s3_bucket"]) as s3,
        ):
            pg.create_role("odoo", password)
            clone_pg.create_role("odoo", password)
            config = self._image_config(free_port(), folders["source"], "source.conf")
            # The source: a real Odoo database (its filestore holds the
            # attachments base installs) with an outgoing mail server.
            made = self._odoo(
                pg, config, password, "server", "-d", "real-prod", "-i", "base",
                "--stop-after-init", "--no-http",
            )  # fmt: skip
            self.assertEqual(made.returncode, 0, made.stderr[-3000:])
            pg.execute(
                "INSERT INTO ir_mail_server (name, smtp_host, smtp_port, "
                "smtp_encryption, smtp_authentication, active, sequence) "
                "VALUES ('Production', 'smtp.acme.example', 587, 'starttls', "
                "'login', true, 1)",
                user="odoo",
                password=password,
                dbname="real-prod",
            )

            # The backup's archive Job: pack the filestore, upload it.
            self._write_scripts(
                archive_book["ConfigMap", "odoo-filestore-scripts"], source_mounts
            )
            pack, upload = (
                archive_pod["initContainers"][0],
                archive_pod["containers"][0],
            )
            self._run_container_script(pack, os.environ.copy(), source_mounts)
            self._run_aws_container(upload, secrets, s3, source_mounts)
            key = backup._filestore_archive_url().removeprefix(
                f"s3://{BUCKET['backup_s3_bucket']}/"
            )
            peer_env = s3.client_env(
                BUCKET["backup_s3_key_id"], BUCKET["backup_s3_secret_key"]
            )
            self.assertEqual(s3.keys(peer_env), [key])

            # Its database copy in the clone's cluster, by Odoo's own dump and
            # load (by pgBackRest in a Kubernetes cluster); the filestore the
            # load writes goes elsewhere, as pgBackRest copies none.
            dump = os.path.join(self.root, "real-prod.zip")
            dumped = self._odoo(pg, config, password, "db", "dump", "real-prod", dump)
            self.assertEqual(dumped.returncode, 0, dumped.stderr[-3000:])
            load_config = self._image_config(free_port(), folders["loaded"], "l.conf")
            loaded = self._odoo(
                clone_pg, load_config, password, "db", "load", "real-prod", dump
            )
            self.assertEqual(loaded.returncode, 0, loaded.stderr[-3000:])
            self.assertEqual(os.listdir(folders["clone"]), [])

            # The clone's preparation Job, as the images run it, on the copy.
            self._write_scripts(
                initialize["ConfigMap", "odoo-clone-scripts"], clone_mounts
            )
            fetch = job["initContainers"][0]
            self._run_aws_container(fetch, secrets, s3, clone_mounts)
            clone_config = self._image_config(
                free_port(), folders["clone"], "clone.conf"
            )
            env = self._pod_env(container, secrets, clone_pg)
            env["ODOO_RC"] = clone_config
            self._run_container_script(container, env, clone_mounts)

            def query(cluster, text):
                return cluster.execute(
                    text, user="odoo", password=password, dbname="real-prod"
                )

            clone_db, source_db = clone_pg, pg
            self.assertEqual(
                query(clone_db, "SELECT value FROM ir_config_parameter "
                      "WHERE key = 'database.is_neutralized'"),
                [("true",)],
            )  # fmt: skip
            # No mail leaves: the production server is off, the one left
            # active sends to the namespace's Mailpit.
            self.assertEqual(
                query(clone_db, "SELECT smtp_host, active FROM ir_mail_server "
                      "ORDER BY smtp_host"),
                [("mailpit", True), ("smtp.acme.example", False)],
            )  # fmt: skip
            active_crons = query(
                clone_db,
                "SELECT d.name FROM ir_cron c LEFT JOIN ir_model_data d ON "
                "d.model = 'ir.cron' AND d.res_id = c.id WHERE c.active",
            )
            self.assertEqual(active_crons, [("autovacuum_job",)])
            # The source is untouched; its crons run.
            self.assertEqual(
                query(source_db, "SELECT active FROM ir_mail_server"), [(True,)]
            )
            self.assertGreater(
                query(source_db, "SELECT count(*) FROM ir_cron WHERE active")[0][0], 1
            )
            # The clone's admin password is its own, not the source's.
            from passlib.context import CryptContext

            stored = query(
                clone_db, "SELECT password FROM res_users WHERE login = 'admin'"
            )[0][0]
            self.assertTrue(
                CryptContext(["pbkdf2_sha512"]).verify(
                    clone.sudo().credentials["admin_password"], stored
                )
            )
            # Every stored attachment of the copy is in the clone's filestore,
            # byte for byte (its name is the checksum Odoo reads it by).
            stored_files = query(
                clone_db,
                "SELECT store_fname, checksum FROM ir_attachment "
                "WHERE store_fname IS NOT NULL",
            )
            self.assertTrue(stored_files, "base stored no attachment in the filestore")
            for store_fname, checksum in stored_files:
                path = os.path.join(
                    folders["clone"], "filestore", "real-prod", store_fname
                )
                with open(path, "rb") as handle:
                    self.assertEqual(hashlib.sha1(handle.read()).hexdigest(), checksum)

    def test_restore_replaces_the_filestore_by_its_archive_for_real(self):
        """The backup's archive Job, then the restore's Job, run for real
        against an S3 server: the filestore is as it was at the backup."""
        self.shipped.write(BUCKET)
        shop = self._create("real-restore", values='{"filestore_snapshot": false}')
        shop._ensure_credentials(("admin_password", "db_password"))
        backup_job = shop._start_backup("manual", shop._odoo_values())
        backup = shop._backup_of(backup_job)
        archive_book = self._rendered(shop, "backup", backup_job._job_values())
        backup.write(
            {
                "state": "done",
                "completed_at": fields.Datetime.now(),
                "filestore_archive": backup._filestore_archive_url(),
            }
        )
        restore_job = shop._start_restore(
            backup, None, shop._odoo_restore_values(backup, None)
        )[0]
        restore_book = self._rendered(shop, "restore", restore_job._job_values())
        secrets = {
            name: self._decoded(obj)
            for (kind, name), obj in {**archive_book, **restore_book}.items()
            if kind == "Secret"
        }
        data = os.path.join(self.root, "odoo")
        mounts = {
            "/var/lib/odoo": data,
            "/archive": os.path.join(self.root, "archive"),
            "/eyrie": os.path.join(self.root, "scripts"),
        }
        filestore = os.path.join(data, "filestore", "real-restore")
        os.makedirs(os.path.join(filestore, "ab"))
        os.makedirs(mounts["/archive"])
        for name, text in (("ab/kept", "at the backup"), ("ab/changed", "before")):
            with open(os.path.join(filestore, name), "w") as handle:
                handle.write(text)
        with S3Peer(BUCKET["backup_s3_bucket"]) as s3:
            pod = archive_book["Job", f"filestore-archive-{backup.label}"]["spec"][
                "template"
            ]["spec"]
            self._write_scripts(
                archive_book["ConfigMap", "odoo-filestore-scripts"], mounts
            )
            self._run_container_script(
                pod["initContainers"][0], os.environ.copy(), mounts
            )
            self._run_aws_container(pod["containers"][0], secrets, s3, mounts)
            # After the backup: one file changed, one added.
            with open(os.path.join(filestore, "ab", "changed"), "w") as handle:
                handle.write("after")
            with open(os.path.join(filestore, "ab", "added"), "w") as handle:
                handle.write("after the backup")
            os.remove(os.path.join(mounts["/archive"], "filestore.tar.gz"))
            shutil.rmtree(mounts["/eyrie"])

            label = restore_job._job_values()["restore_label"]
            pod = restore_book["Job", f"filestore-{label}"]["spec"]["template"]["spec"]
            self._write_scripts(
                restore_book["ConfigMap", "odoo-filestore-restore"], mounts
            )
            self._run_aws_container(pod["initContainers"][0], secrets, s3, mounts)
            self._run_container_script(pod["containers"][0], os.environ.copy(), mounts)
        found = {}
        for folder, _dirs, files in os.walk(filestore):
            for name in files:
                path = os.path.join(folder, name)
                with open(path) as handle:
                    found[os.path.relpath(path, filestore)] = handle.read()
        self.assertEqual(found, {"ab/kept": "at the backup", "ab/changed": "before"})

    def test_shared_database_drop_job_drops_the_database(self):
        db = self._create("real-pg", "pgo")
        odoo = self._create(
            "real-shared", database_mode="shared", database_deployment_id=db.id
        )
        role = odoo.database_role
        # The deploy of the PostgreSQL deployment that creates the Odoo's role.
        db._ensure_credentials(("pguser_odoo", f"pguser_{role}"))
        odoo._ensure_credentials(("admin_password", "db_password"))
        job = self._rendered(odoo, "drop")["Job", f"dropdb-{odoo.id}"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        password = db.sudo().credentials[f"pguser_{role}"]
        owners_password = db.sudo().credentials["pguser_odoo"]
        # The Odoo connects with its own role's password, never the owner's.
        deploy = self._rendered(odoo, "deploy")
        self.assertEqual(
            self._decoded(deploy["Secret", "odoo"])["db-password"], password
        )
        with PrivatePostgres() as pg:
            # As PGO makes the roles of spec.users: the owner's, the Odoo's.
            pg.create_role("odoo", owners_password)
            pg.create_role(role, password)
            pg.execute(
                'CREATE DATABASE "real-other"', user="odoo", password=owners_password
            )
            # The Odoo's first start creates its database, which its role owns.
            pg.execute('CREATE DATABASE "real-shared"', user=role, password=password)
            secrets = {f"db-pguser-{role}": {"user": role, "password": password}}
            env = self._pod_env(container, secrets, pg)
            env["PGHOST"], env["PGPORT"] = pg.host, str(pg.port)
            dropped = subprocess.run(
                container["command"],
                env=env,
                capture_output=True,
                check=False,
                text=True,
                timeout=60,
            )
            self.assertEqual(dropped.returncode, 0, dropped.stderr)
            self.assertNotIn("real-shared", pg.databases())
            self.assertIn("real-other", pg.databases())
            # Its role cannot drop the owner's database.
            with self.assertRaisesRegex(Exception, "must be owner of database"):
                pg.execute('DROP DATABASE "real-other"', user=role, password=password)

    def test_the_mirror_fails_as_the_image_does_on_a_leading_dash(self):
        # The fault this guards against: wait-for-psql.py's argparse.
        result = subprocess.run(
            [sys.executable, MIRROR, "odoo", "--stop-after-init"],
            env={"PATH": os.environ["PATH"], "PASSWORD": "-leading-dash"},
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
        )
        self.assertEqual(result.returncode, 2)
        self.assertIn("argument --db_password: expected one argument", result.stderr)
