import base64
import json
import xmlrpc.client

from odoo.exceptions import AccessError, UserError, ValidationError

from .common import ShippedScopeMixin
from .kube_common import (
    BUCKET,
    JOB_FAILED,
    PGO,
    KubernetesCase,
    OperatorsMixin,
    TwoUsersRpcCase,
)
from .queue_jobs import run_queue_jobs

SNAPSHOT = "snapshot.storage.k8s.io/v1"


class TestBackups(ShippedScopeMixin, OperatorsMixin, KubernetesCase):
    """Backups, restores and the final backup before drop, with the shipped
    books, against the emulated API (PGO and the snapshot controller played)."""

    def _pg(self, namespace):
        return self.emulator.get(PGO, "PostgresCluster", "db", namespace=namespace)

    def _deployed_odoo(self, name="shop", scope=None):
        deployment = self._create(name, scope_id=(scope or self.shipped).id)
        self._run(deployment, "deploy")
        self.assertEqual(deployment.state, "deploy")
        return deployment

    def _bucket_scope(self, **vals):
        return self.env["eyrie.scope"].create(
            {
                "name": f"Bucket {len(vals)}",
                "cluster_id": self.cluster.id,
                "domain": "preview.example.com",
                "allow_drop": True,
            }
            | BUCKET
            | vals
        )

    # -- backup ------------------------------------------------------------

    def test_backup_of_an_odoo(self):
        shop = self._deployed_odoo()
        self._run(shop, "backup")
        backup = shop.backup_ids
        self.assertEqual(len(backup), 1)
        self.assertEqual((backup.kind, backup.state), ("manual", "done"))
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))
        cluster = self._pg("shop")
        annotations = cluster["metadata"]["annotations"]
        self.assertEqual(
            annotations["postgres-operator.crunchydata.com/pgbackrest-backup"],
            backup.label,
        )
        # pgBackRest prints the new set's label at level info, which the
        # backup records from its Job's log.
        self.assertEqual(
            cluster["spec"]["backups"]["pgbackrest"]["manual"],
            {
                "repoName": "repo1",
                "options": ["--type=full", "--log-level-console=info"],
            },
        )
        self.assertRegex(backup.backup_set, r"^\d{8}-\d{6}F$")
        snapshot = self.emulator.get(
            SNAPSHOT, "VolumeSnapshot", f"filestore-{backup.label}", namespace="shop"
        )
        self.assertEqual(
            snapshot["spec"]["source"], {"persistentVolumeClaimName": "odoo-filestore"}
        )
        self.assertEqual(
            snapshot["metadata"]["labels"]["eyrie.io/deployment"], str(shop.id)
        )
        self.assertEqual(backup.filestore_snapshot, f"filestore-{backup.label}")
        self.assertIn("filestore (VolumeSnapshot", backup.holds)
        self.assertIn("Restore on the deployment", backup.restore_hint)
        self.assertIn(f"Backup {backup.display_name} done.", self._messages(shop))

    def test_backup_of_a_paused_deployment_starts_and_stops_its_database(self):
        shop = self._deployed_odoo()
        self._run(shop, "pause")
        self.assertIs(self._pg("shop")["spec"]["shutdown"], True)
        self._run(shop, "backup")
        self.assertEqual(shop.backup_ids.state, "done")
        self.assertEqual((shop.repository_state, shop.state), ("pause", "pause"))
        log = shop.backup_ids.job_id.log
        self.assertIn("Start the paused database", log)
        self.assertIn("Shut the paused database down again", log)
        self.assertIs(self._pg("shop")["spec"]["shutdown"], True)

    def test_failed_backup_keeps_the_deployment_as_it_was(self):
        shop = self._deployed_odoo()
        shop.action_backup()
        self._settle(between_rounds=lambda _r: self.emulator.play_operators(True))
        backup = shop.backup_ids
        self.assertEqual(backup.state, "failed")
        self.assertIn(
            "PostgresCluster db in namespace shop failed", backup.error_message
        )
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))
        self.assertIn("The backup failed", shop.error_message)

    def test_backup_refused_in_draft_and_for_a_shared_database(self):
        draft = self._create("draft-shop")
        with self.assertRaisesMessage(UserError, "only a deployed or paused"):
            draft.action_backup()
        _db, shared = self._deployed_on_shared_database("shared-db", "on-shared")
        with self.assertRaisesMessage(UserError, "whose backups hold it"):
            shared.action_backup()
        self.assertFalse(shared.backup_ids)
        # Nor are its Back Up and Duplicate with Data buttons offered.
        self.assertEqual(
            (shared.backup_supported, shared.clone_supported), (False, False)
        )
        self.assertEqual((_db.backup_supported, _db.clone_supported), (True, True))

    def test_pgo_backup_and_schedules_in_the_spec(self):
        db = self._create("pg-main", "pgo")
        self._run(db, "deploy")
        repo = self._pg("pg-main")["spec"]["backups"]["pgbackrest"]["repos"][0]
        self.assertEqual(repo["name"], "repo1")
        self.assertEqual(
            repo["schedules"], {"full": "0 1 * * 0", "incremental": "0 1 * * 1-6"}
        )
        self._run(db, "backup")
        self.assertEqual(db.backup_ids.state, "done")
        self.assertNotIn("filestore", db.backup_ids.holds)

    # -- scheduled backups --------------------------------------------------

    def _report_scheduled_runs(self, namespace, runs):
        """PGO's status after its CronJobs ran: the instances ready and one
        entry per scheduled backup Job."""
        self.emulator.set_status(
            PGO,
            "PostgresCluster",
            "db",
            {
                "instances": [{"name": "instance1", "readyReplicas": 1}],
                "pgbackrest": {"scheduledBackups": runs},
            },
            namespace=namespace,
        )

    def _record_scheduled(self):
        self.env["eyrie.backup"]._cron_record_scheduled_backups()
        run_queue_jobs(self.env, also=("_record_scheduled_backups",))

    def test_scheduled_backups_are_recorded_once_per_run(self):
        db = self._create("pg-sched", "pgo")
        self._run(db, "deploy")
        full = {
            "cronJobName": "db-repo1-full",
            "repo": "repo1",
            "type": "full",
            "startTime": "2026-11-29T01:00:02Z",
            "completionTime": "2026-11-29T01:04:10Z",
            "succeeded": 1,
        }
        incremental = {
            "cronJobName": "db-repo1-incr",
            "repo": "repo1",
            "type": "incr",
            "startTime": "2026-11-30T01:00:03Z",
            "failed": 1,
        }
        running = dict(
            incremental, startTime="2026-12-01T01:00:01Z", failed=0, active=1
        )
        self._report_scheduled_runs("pg-sched", [full, incremental, running])
        self._record_scheduled()
        backups = db.backup_ids.sorted("started_at")
        self.assertEqual(
            [(b.kind, b.label, b.state) for b in backups],
            [
                ("scheduled", "db-repo1-full", "done"),
                ("scheduled", "db-repo1-incr", "failed"),
                ("scheduled", "db-repo1-incr", "running"),
            ],
        )
        self.assertEqual(str(backups[0].completed_at), "2026-11-29 01:04:10")
        self.assertIn("scheduled incr backup Job", backups[1].error_message)
        # Read again: the same runs, one record each; the running one ended.
        running |= {"active": 0, "succeeded": 1}
        running["completionTime"] = "2026-12-01T01:02:00Z"
        self._report_scheduled_runs("pg-sched", [full, incremental, running])
        self._record_scheduled()
        self.assertEqual(len(db.backup_ids), 3)
        self.assertEqual(backups[2].state, "done")
        # A scheduled backup is one to restore to, like any other.
        self.assertEqual(db._restore_point(backups[2].id, None), (backups[2], None))

    def test_one_unreadable_deployment_does_not_stop_the_recording(self):
        first = self._create("pg-first", "pgo")
        second = self._create("pg-second", "pgo")
        self._run(first, "deploy")
        self._run(second, "deploy")
        run = {
            "cronJobName": "db-repo1-full",
            "repo": "repo1",
            "startTime": "2026-11-29T01:00:02Z",
            "succeeded": 1,
        }
        self._report_scheduled_runs("pg-first", [run])
        self._report_scheduled_runs("pg-second", [run])
        self.emulator.fail("GET", "/namespaces/pg-first/postgresclusters/db", 403)
        self._record_scheduled()
        self.assertFalse(first.backup_ids)
        self.assertEqual(second.backup_ids.mapped("kind"), ["scheduled"])
        # The next run reads it.
        self._record_scheduled()
        self.assertEqual(first.backup_ids.mapped("kind"), ["scheduled"])

    # -- bucket target and final backup before drop ---------------------------

    def test_bucket_target_reaches_the_cluster_without_leaking_keys(self):
        scope = self._bucket_scope()
        self.assertTrue(scope.backup_before_drop)
        shop = self._deployed_odoo("bucket-shop", scope)
        pgbackrest = self._pg("bucket-shop")["spec"]["backups"]["pgbackrest"]
        self.assertEqual(
            pgbackrest["repos"][0]["s3"],
            {
                "bucket": "eyrie-backups",
                "endpoint": "s3.eu-west-1.amazonaws.com",
                "region": "eu-west-1",
            },
        )
        self.assertEqual(
            pgbackrest["global"]["repo2-path"], f"/eyrie/bucket-shop-{shop.id}"
        )
        secret = self.emulator.get(
            "v1", "Secret", "pgbackrest-s3", namespace="bucket-shop"
        )
        conf = base64.b64decode(secret["data"]["s3.conf"]).decode()
        self.assertEqual(
            conf,
            "[global]\nrepo2-s3-key=AKIAEYRIETEST\n"
            "repo2-s3-key-secret=k3y-s3cr3t-value\n",
        )
        text = "\n".join(f"{job.log}\n{job.values}" for job in shop.job_ids)
        self.assertNotIn("k3y-s3cr3t-value", text)
        self.assertNotIn("AKIAEYRIETEST", text)

    def test_backup_to_a_bucket_archives_the_filestore(self):
        scope = self._bucket_scope()
        shop = self._deployed_odoo("archive-shop", scope)
        self._run(shop, "backup")
        backup = shop.backup_ids
        archive = (
            f"s3://eyrie-backups/eyrie/archive-shop-{shop.id}/filestore/"
            f"{backup.label}.tar.gz"
        )
        self.assertEqual((backup.state, backup.filestore_archive), ("done", archive))
        self.assertIn(f"filestore (archive {archive})", backup.holds)
        pod = self._archive_pod(backup)
        upload = pod["containers"][0]
        self.assertEqual(
            upload["command"][:5],
            ["aws", "s3", "cp", "/archive/filestore.tar.gz", archive],
        )
        env = {item["name"]: item.get("value") for item in upload["env"]}
        self.assertEqual(
            env["AWS_ENDPOINT_URL_S3"], "https://s3.eu-west-1.amazonaws.com"
        )
        # The filestore is only read, on the node of the Odoo that mounts it.
        pack = pod["initContainers"][0]
        self.assertIn(
            {"name": "filestore", "mountPath": "/var/lib/odoo", "readOnly": True},
            pack["volumeMounts"],
        )
        term = pod["affinity"]["podAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ][0]
        self.assertEqual(
            term["labelSelector"]["matchLabels"],
            {
                "app.kubernetes.io/name": "odoo",
                "app.kubernetes.io/instance": "archive-shop",
            },
        )
        # The container that gets the keys runs the scope's image, which a
        # deployment's values cannot change.
        self.assertEqual(upload["image"], scope.backup_s3_client_image)
        with self.assertRaisesMessage(ValidationError, "'s3_client_image' is not"):
            shop.values = '{"s3_client_image": "attacker/keys:latest"}'
        keys = self.emulator.get("v1", "Secret", "eyrie-s3", namespace="archive-shop")
        self.assertEqual(
            base64.b64decode(keys["data"]["AWS_SECRET_ACCESS_KEY"]).decode(),
            "k3y-s3cr3t-value",
        )
        text = "\n".join(f"{job.log}\n{job.values}" for job in shop.job_ids)
        self.assertNotIn("k3y-s3cr3t-value", text)
        # Paused, no Odoo runs: the archive Job goes to any node.
        self._run(shop, "pause")
        self._run(shop, "backup")
        self.assertNotIn("affinity", self._archive_pod(shop.backup_ids[0]))
        self.assertEqual(shop.state, "pause")

    def _archive_pod(self, backup):
        job = self.emulator.get(
            "batch/v1",
            "Job",
            f"filestore-archive-{backup.label}",
            namespace=backup.namespace,
        )
        return job["spec"]["template"]["spec"]

    def test_backup_to_a_volume_archives_nothing(self):
        shop = self._deployed_odoo("volume-shop")
        self._run(shop, "backup")
        self.assertEqual(shop.backup_ids.state, "done")
        self.assertFalse(shop.backup_ids.filestore_archive)
        jobs = self.emulator.list("batch/v1", "Job", namespace="volume-shop")
        # The first deploy's upgrade Job (it installed base) is the only one.
        self.assertEqual([job["metadata"]["name"] for job in jobs], ["odoo-upgrade"])

    def test_failed_filestore_archive_fails_the_backup(self):
        scope = self._bucket_scope()
        shop = self._deployed_odoo("archive-fails", scope)
        shop.action_backup()

        def fail_the_archive(_round):
            self.emulator.play_operators()
            for job in self.emulator.list("batch/v1", "Job", namespace="archive-fails"):
                self.emulator.set_status(
                    "batch/v1",
                    "Job",
                    job["metadata"]["name"],
                    JOB_FAILED,
                    namespace="archive-fails",
                )

        self._settle(between_rounds=fail_the_archive)
        backup = shop.backup_ids
        self.assertEqual(backup.state, "failed")
        self.assertFalse(backup.filestore_archive)
        self.assertIn("The backup failed", shop.error_message)
        self.assertIn(f"filestore-archive-{backup.label}", shop.error_message)
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))

    def test_scopes_share_the_clusters_bucket(self):
        self.cluster.write(
            {
                "backup_s3_bucket": "cluster-backups",
                "backup_s3_endpoint": "minio.example.com",
                "backup_s3_region": "eu-central-1",
                "backup_s3_key_id": "CLUSTERKEY",
                "backup_s3_secret_key": "cluster-s3cr3t",
            }
        )
        scope = self._bucket_scope(
            backup_target="cluster",
            backup_s3_bucket=False,
            backup_s3_key_id=False,
            backup_s3_secret_key=False,
        )
        self.assertTrue(scope.backup_before_drop)
        shop = self._deployed_odoo("shared-bucket", scope)
        pgbackrest = self._pg("shared-bucket")["spec"]["backups"]["pgbackrest"]
        self.assertEqual(
            pgbackrest["repos"][0],
            {
                "name": "repo2",
                "schedules": {"full": "0 1 * * 0", "incremental": "0 1 * * 1-6"},
                "s3": {
                    "bucket": "cluster-backups",
                    "endpoint": "minio.example.com",
                    "region": "eu-central-1",
                },
            },
        )
        secret = self.emulator.get(
            "v1", "Secret", "pgbackrest-s3", namespace="shared-bucket"
        )
        self.assertIn(
            "repo2-s3-key=CLUSTERKEY",
            base64.b64decode(secret["data"]["s3.conf"]).decode(),
        )
        self._run(shop, "backup")
        backup = shop.backup_ids
        self.assertEqual(
            backup.filestore_archive,
            f"s3://cluster-backups/eyrie/shared-bucket-{shop.id}/filestore/"
            f"{backup.label}.tar.gz",
        )
        # The cluster's bucket cannot go while a scope uses it.
        with self.assertRaisesMessage(ValidationError, "back up to its bucket"):
            self.cluster.backup_s3_bucket = False
        # Its keys are a manager's, as the scope's are.
        with self.assertRaises(AccessError):
            self.cluster.with_user(self.user).read(["backup_s3_secret_key"])

    def test_the_clusters_bucket_must_be_set_and_valid(self):
        with self.assertRaisesMessage(ValidationError, "has none. Set its bucket"):
            self._bucket_scope(backup_target="cluster")
        with self.assertRaisesMessage(ValidationError, "must be an S3 bucket name"):
            self.cluster.write(
                {
                    "backup_s3_bucket": "Not A Bucket",
                    "backup_s3_endpoint": "minio.example.com",
                    "backup_s3_key_id": "K",
                    "backup_s3_secret_key": "S",
                }
            )

    def test_drop_takes_a_final_backup_that_outlives_the_deployment(self):
        scope = self._bucket_scope()
        shop = self._deployed_odoo("final-shop", scope)
        shop_id = shop.id
        self._run(shop, "drop")
        self.assertFalse(shop.exists())
        self.assertIsNone(self.emulator.get("v1", "Namespace", "final-shop"))
        backup = self.env["eyrie.backup"].search(
            [("deployment_name", "=", "final-shop")]
        )
        self.assertEqual((backup.kind, backup.state), ("before_drop", "done"))
        self.assertFalse(backup.deployment_id)
        self.assertEqual(
            backup.location, f"s3://eyrie-backups/eyrie/final-shop-{shop_id}"
        )
        self.assertIn("The deployment is gone", backup.restore_hint)
        self.assertIn("s3://eyrie-backups", backup.restore_hint)

    def test_drop_whose_final_backup_fails_drops_nothing(self):
        scope = self._bucket_scope()
        shop = self._deployed_odoo("safe-shop", scope)
        shop.action_drop()
        self.assertEqual(shop.state, "backing_up")
        self._settle(between_rounds=lambda _r: self.emulator.play_operators(True))
        self.assertTrue(shop.exists())
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))
        self.assertIn(
            "Not dropped: the final backup before drop failed", shop.error_message
        )
        self.assertEqual(self._job(shop, "drop").state, "cancelled")
        self.assertIsNotNone(self.emulator.get("v1", "Namespace", "safe-shop"))
        self.assertIsNotNone(self._pg("safe-shop"))
        self.assertEqual(shop.backup_ids.state, "failed")

    def test_update_takes_a_backup_first_where_the_scope_asks(self):
        self.shipped.backup_before_update = True
        shop = self._deployed_odoo("update-shop")
        self.assertFalse(shop.backup_ids, "a first deploy is not an update")
        shop.values = '{"workers": 6}'
        shop.action_deploy()
        self.assertEqual(shop.state, "backing_up")
        self._settle(between_rounds=self._play_operators)
        backup = shop.backup_ids
        self.assertEqual((backup.kind, backup.state), ("before_update", "done"))
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))
        deploy = self._job(shop, "deploy")
        self.assertEqual(deploy.previous_job_id, backup.job_id)
        self.assertEqual(deploy.state, "done")
        odoo = self.emulator.get(
            "apps/v1", "Deployment", "odoo", namespace="update-shop"
        )
        self.assertIn(
            "--workers=6", odoo["spec"]["template"]["spec"]["containers"][0]["args"]
        )
        # A resume is not an update: no backup.
        self._run(shop, "pause")
        self._run(shop, "deploy")
        self.assertEqual(len(shop.backup_ids), 1)

    def test_update_whose_backup_fails_changes_nothing(self):
        self.shipped.backup_before_update = True
        shop = self._deployed_odoo("careful-shop")
        shop.values = '{"workers": 6}'
        shop.action_deploy()
        self._settle(between_rounds=lambda _r: self.emulator.play_operators(True))
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))
        self.assertIn(
            "Not updated: the backup before update failed", shop.error_message
        )
        self.assertEqual(self._job(shop, "deploy").state, "cancelled")
        odoo = self.emulator.get(
            "apps/v1", "Deployment", "odoo", namespace="careful-shop"
        )
        args = odoo["spec"]["template"]["spec"]["containers"][0]["args"]
        self.assertNotIn("--workers=6", args)

    def test_backup_before_drop_needs_a_bucket(self):
        with self.assertRaisesMessage(ValidationError, "needs a bucket target"):
            self.shipped.backup_before_drop = True
        with self.assertRaisesMessage(ValidationError, "'Bucket' must be"):
            self._bucket_scope(backup_s3_bucket="Not A Bucket")
        with self.assertRaisesMessage(ValidationError, "without spaces or line breaks"):
            self._bucket_scope(backup_s3_secret_key="two\nlines")
        with self.assertRaisesMessage(ValidationError, "is not a cron schedule"):
            self.shipped.backup_full_schedule = "every sunday"

    # -- restore -------------------------------------------------------------

    def test_restore_to_a_backup_then_redeploy(self):
        shop = self._deployed_odoo("restore-shop")
        self._run(shop, "backup")
        backup = shop.backup_ids
        shop.action_restore(backup_id=backup.id)
        self.assertEqual(shop.state, "restoring")
        self._settle(between_rounds=self._play_operators)
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))
        restore = self._job(shop, "restore")
        self.assertEqual(restore.state, "done")
        spec = self._pg("restore-shop")["spec"]["backups"]["pgbackrest"]["restore"]
        # The backup as it was, by its own pgBackRest set: not a point in
        # time, which an idle database never reaches.
        self.assertTrue(backup.backup_set)
        self.assertEqual(
            spec,
            {
                "enabled": False,
                "repoName": "repo1",
                "options": [f"--set={backup.backup_set}", "--type=immediate"],
            },
        )
        target = json.loads(restore.values)["restore_target"]
        self.assertTrue(target.startswith(str(backup.completed_at)))
        volume = self.emulator.get(
            "v1", "PersistentVolumeClaim", "odoo-filestore", namespace="restore-shop"
        )
        self.assertEqual(
            volume["spec"]["dataSource"]["name"], backup.filestore_snapshot
        )
        odoo = self.emulator.get(
            "apps/v1", "Deployment", "odoo", namespace="restore-shop"
        )
        self.assertEqual(odoo["spec"]["replicas"], 1)
        self.assertIn(f"Restored to {backup.completed_at}", self._messages(shop))

    def test_restore_without_a_snapshot_takes_the_filestore_from_its_archive(self):
        scope = self._bucket_scope()
        shop = self._create(
            "archive-restore",
            scope_id=scope.id,
            values='{"filestore_snapshot": false}',
        )
        self._run(shop, "deploy")
        self._run(shop, "backup")
        backup = shop.backup_ids
        self.assertFalse(backup.filestore_snapshot)
        self.assertIn("the filestore from its archive", backup.restore_hint)
        shop.action_restore(backup_id=backup.id)
        self._settle(between_rounds=self._play_operators)
        self.assertEqual((shop.repository_state, shop.state), ("deploy", "deploy"))
        label = json.loads(self._job(shop, "restore").values)["restore_label"]
        pod = self.emulator.get(
            "batch/v1", "Job", f"filestore-{label}", namespace="archive-restore"
        )["spec"]["template"]["spec"]
        fetch, unpack = pod["initContainers"][0], pod["containers"][0]
        self.assertEqual(fetch["command"][3], backup.filestore_archive)
        self.assertIn("rm -rf /var/lib/odoo/filestore;", unpack["command"][2])
        # The volume stays: its content is replaced.
        volume = self.emulator.get(
            "v1", "PersistentVolumeClaim", "odoo-filestore", namespace="archive-restore"
        )
        self.assertNotIn("dataSource", volume["spec"])
        self.assertIn("filestore from its archive in the bucket", self._messages(shop))

    def test_restore_needs_a_point_it_can_reach(self):
        shop = self._deployed_odoo("pitr-shop")
        with self.assertRaisesMessage(UserError, "either a backup or a point in time"):
            shop.action_restore()
        with self.assertRaisesMessage(
            UserError, "no backup of this deployment finished"
        ):
            shop.action_restore(target_time="2026-01-01 00:00:00")
        with self.assertRaisesMessage(UserError, "is not a date and time"):
            shop.action_restore(target_time="yesterday")
        with self.assertRaisesMessage(UserError, "is not a finished backup"):
            shop.action_restore(backup_id=999999)
        self.assertFalse(self._job(shop, "restore"))
        self.assertEqual(shop.state, "deploy")

    def test_restore_wizard_asks_for_confirmation(self):
        shop = self._deployed_odoo("wizard-shop")
        self._run(shop, "backup")
        wizard = self.env["eyrie.restore.wizard"].create(
            {"deployment_id": shop.id, "backup_id": shop.backup_ids.id}
        )
        with self.assertRaisesMessage(UserError, "Tick 'I understand"):
            wizard.action_restore()
        self.assertFalse(self._job(shop, "restore"))
        wizard.confirm = True
        wizard.action_restore()
        self.assertEqual(shop.state, "restoring")

    def test_pgo_restore_refused_under_a_running_odoo(self):
        db = self._create("busy-db", "pgo")
        self._run(db, "deploy")
        self._run(db, "backup")
        shared = self._create(
            "on-busy", database_mode="shared", database_deployment_id=db.id
        )
        self._run(shared, "deploy")
        with self.assertRaisesMessage(UserError, "cannot be restored: Odoo deployment"):
            db.action_restore(backup_id=db.backup_ids.id)

    # -- logs ------------------------------------------------------------------

    def test_logs_are_read_from_the_cluster(self):
        shop = self._deployed_odoo("log-shop")
        core = __import__("kubernetes").client.CoreV1Api(self.emulator.api_client())
        core.create_namespaced_pod(
            "log-shop",
            {
                "metadata": {"name": "odoo-abc"},
                "spec": {
                    "initContainers": [{"name": "prepare", "image": "odoo:18.0"}],
                    "containers": [{"name": "odoo", "image": "odoo:18.0"}],
                },
            },
        )
        lines = "\n".join(f"INFO line {n}" for n in range(300))
        self.emulator.set_logs("log-shop", "odoo-abc", "odoo", lines)
        self.emulator.set_logs("log-shop", "odoo-abc", "prepare", "base installed")
        core.create_namespaced_event(
            "log-shop",
            {
                "metadata": {"name": "odoo-abc.1"},
                "involvedObject": {"kind": "Pod", "name": "odoo-abc"},
                "reason": "BackOff",
                "type": "Warning",
                "message": "Back-off restarting failed container",
            },
        )
        found = shop.read_logs(tail_lines=20)
        pod = found["pods"][0]
        self.assertEqual([c["name"] for c in pod["containers"]], ["prepare", "odoo"])
        self.assertEqual(pod["containers"][1]["log"].splitlines()[0], "INFO line 280")
        self.assertEqual(len(pod["containers"][1]["log"].splitlines()), 20)
        self.assertEqual(found["events"][0]["reason"], "BackOff")
        text = shop.with_context(eyrie_read_logs=True).cluster_logs
        self.assertIn("==> pod odoo-abc (Unknown), container odoo <==", text)
        self.assertIn("Back-off restarting failed container", text)
        self.assertIn("Use the Logs button", shop.cluster_logs)


class TestBackupsXmlRpc(TwoUsersRpcCase):
    """Backup, restore and logs as a plain user over XML-RPC; another user
    is refused."""

    LOGIN = "eyrie_backup_user"

    def test_backup_restore_and_logs_over_xmlrpc(self):
        shop = self.rpc(
            "eyrie.deployment",
            "create",
            {"name": "rpc-shop", "deployment_type": "odoo", "scope_id": self.scope.id},
        )
        self.rpc("eyrie.deployment", "action_deploy", [shop])
        self._settle_played()
        self.rpc("eyrie.deployment", "action_backup", [shop])
        self._settle_played()
        backups = self.rpc(
            "eyrie.backup",
            "search_read",
            [("deployment_id", "=", shop)],
            ["state", "kind", "holds", "label"],
        )
        self.assertEqual(
            [(b["state"], b["kind"]) for b in backups], [("done", "manual")]
        )
        self.rpc(
            "eyrie.deployment", "action_restore", [shop], backup_id=backups[0]["id"]
        )
        self._settle_played()
        state = self.rpc("eyrie.deployment", "read", [shop], ["state"])[0]["state"]
        self.assertEqual(state, "deploy")
        logs = self.rpc("eyrie.deployment", "read_logs", [shop])
        # The one pod left in its namespace: PGO's backup Job's.
        self.assertEqual(
            [pod["name"] for pod in logs["pods"]],
            [f"db-backup-{backups[0]['label']}"],
        )
        self.assertEqual(logs["events"], [])
        for method in ("read_logs", "action_backup", "action_restore"):
            with (
                self.subTest(method=method),
                self.assertRaises(xmlrpc.client.Fault) as caught,
            ):
                self._as_other(method, [shop])
            self.assertRegex(
                caught.exception.faultString,
                r"You cannot (see the logs of|back up|restore) deployment \S+: it is",
            )
