import logging
import tempfile
import urllib.parse
import urllib.request
import xmlrpc.client

from lxml import etree

from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, get_db_name, new_test_user, tagged

from .common import EyrieCase
from .kube_common import BUCKET
from .s3_peer import S3Peer

ARCHIVE = b"\x1f\x8b a filestore archive \x00\xff" * 1000


class BucketBackupMixin:
    """An Odoo deployment of ``cls.user`` in a scope backing up to the
    tests' bucket, and ``_backup``: a finished backup of it."""

    @classmethod
    def _bucket_deployment(cls, env, cluster, user):
        scope = env["eyrie.scope"].create(
            {
                "name": "Download bucket",
                "cluster_id": cluster.id,
                "domain": "download.example.com",
            }
            | BUCKET
        )
        return env["eyrie.deployment"].create(
            {
                "name": "dl-shop",
                "deployment_type": "odoo",
                "scope_id": scope.id,
                "user_id": user.id,
            }
        )

    @staticmethod
    def _backup(deployment, label="eyrie-1", archive=True, **values):
        repo = f"s3://{BUCKET['backup_s3_bucket']}/eyrie/dl-shop-{deployment.id}"
        return deployment.env["eyrie.backup"].create(
            {
                "deployment_id": deployment.id,
                "deployment_name": deployment.name,
                "namespace": deployment.namespace,
                "cluster_id": deployment.cluster_id.id,
                "company_id": deployment.company_id.id,
                "kind": "manual",
                "state": "done",
                "label": label,
                "repo": "repo2",
                "location": repo,
                "filestore_archive": archive and f"{repo}/filestore/{label}.tar.gz",
            }
            | values
        )


@tagged("post_install", "-at_install")
class TestBackupDownload(BucketBackupMixin, EyrieCase):
    """Download of a backup's filestore archive: a pre-signed link to the
    object in the bucket (moto's S3 server), for the deployment's owner and
    managers only."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.other = new_test_user(
            cls.env, login="eyrie_not_owner", groups="eyrie_deployment.group_eyrie_user"
        )
        cls.shop = cls._bucket_deployment(cls.env, cls.cluster, cls.user)

    def _put_archive(self, s3, backup, body=ARCHIVE):
        key = backup.filestore_archive.removeprefix(f"s3://{s3.bucket}/")
        with tempfile.NamedTemporaryFile() as handle:
            handle.write(body)
            handle.flush()
            put = s3.aws(
                ["s3api", "put-object", "--bucket", s3.bucket, "--key", key,
                 "--body", handle.name],
                self._peer_env(s3),
            )  # fmt: skip
        self.assertEqual(put.returncode, 0, put.stderr)

    @staticmethod
    def _peer_env(s3):
        return s3.client_env(BUCKET["backup_s3_key_id"], BUCKET["backup_s3_secret_key"])

    def _at_peer(self, s3):
        """The scope's clients reach the S3 peer (plain HTTP on loopback)
        instead of https://<endpoint>, as the container tests do."""
        scope_class = type(self.env["eyrie.scope"])
        self.patch(scope_class, "_bucket_endpoint_url", lambda _bucket: s3.endpoint_url)

    def test_owner_downloads_the_archive_from_the_bucket(self):
        backup = self._backup(self.shop)
        with S3Peer(BUCKET["backup_s3_bucket"]) as s3:
            self._at_peer(s3)
            self._put_archive(s3, backup)
            mine = backup.with_user(self.user)
            self.assertTrue(mine.can_download)
            # Level 20: Odoo names its level 25 "INFO" too.
            with self.assertLogs("odoo.addons.eyrie_deployment", logging.INFO) as logs:
                action = mine.action_download()
            self.assertEqual(
                (action["type"], action["target"]), ("ir.actions.act_url", "download")
            )
            url = action["url"]
            self.assertTrue(
                url.startswith(f"{s3.endpoint_url}/eyrie-backups/eyrie/dl-shop-"), url
            )
            with urllib.request.urlopen(url, timeout=30) as answer:
                self.assertEqual(answer.read(), ARCHIVE)
                self.assertEqual(
                    answer.headers["Content-Disposition"],
                    'attachment; filename="dl-shop-filestore-eyrie-1.tar.gz"',
                )
        # Neither the link nor the keys are logged.
        text = "\n".join(logs.output)
        self.assertIn(
            f"download link to the filestore archive of backup {backup.id}", text
        )
        for secret in (url, "X-Amz-Signature", BUCKET["backup_s3_secret_key"]):
            self.assertNotIn(secret, text)

    def test_the_link_is_signed_for_ten_minutes_at_the_buckets_endpoint(self):
        backup = self._backup(self.shop, label="eyrie-2")
        url = backup.with_user(self.user).action_download()["url"]
        parsed = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        self.assertEqual(
            (parsed.scheme, parsed.netloc, parsed.path),
            (
                "https",
                "s3.eu-west-1.amazonaws.com",
                f"/eyrie-backups/eyrie/dl-shop-{self.shop.id}/filestore/eyrie-2.tar.gz",
            ),
        )
        self.assertEqual(query["X-Amz-Expires"], "600")
        self.assertEqual(query["X-Amz-Algorithm"], "AWS4-HMAC-SHA256")
        self.assertRegex(
            query["X-Amz-Credential"],
            r"^AKIAEYRIETEST/\d{8}/eu-west-1/s3/aws4_request$",
        )
        self.assertNotIn(BUCKET["backup_s3_secret_key"], url)

    def test_only_the_owner_and_managers_may_download(self):
        backup = self._backup(self.shop, label="eyrie-3")
        self.assertFalse(backup.with_user(self.other).can_download)
        with self.assertRaisesMessage(
            AccessError, "Only the owner of deployment dl-shop .* or an Eyrie manager"
        ):
            backup.with_user(self.other).action_download()
        self.assertTrue(backup.with_user(self.manager).can_download)
        self.assertIn(
            "X-Amz-Signature=", backup.with_user(self.manager).action_download()["url"]
        )

    def test_a_backup_of_a_dropped_deployment_is_a_managers(self):
        backup = self._backup(self.shop, label="eyrie-4")
        backup.deployment_id = False
        self.assertFalse(backup.with_user(self.user).can_download)
        with self.assertRaisesMessage(
            AccessError, "dl-shop is gone: only an Eyrie manager"
        ):
            backup.with_user(self.user).action_download()
        # Its bucket is found by name among the cluster's scopes.
        url = backup.with_user(self.manager).action_download()["url"]
        self.assertIn("/eyrie-backups/eyrie/", url)

    def test_volume_and_unfinished_backups_offer_no_download(self):
        volume = self._backup(
            self.shop,
            label="eyrie-5",
            archive=False,
            repo="repo1",
            location="volume db-repo1 in namespace dl-shop",
        )
        running = self._backup(self.shop, label="eyrie-6", state="running")
        for backup in (volume, running):
            mine = backup.with_user(self.user)
            self.assertFalse(mine.can_download)
            with self.assertRaisesMessage(
                UserError, "no filestore archive in a bucket"
            ):
                mine.action_download()

    def test_download_buttons_follow_can_download(self):
        """On the backup's form and list, and on the deployment's Backups."""
        for model, view, path in (
            ("eyrie.backup", "form", "//header"),
            ("eyrie.backup", "list", "/list"),
            ("eyrie.deployment", "form", "//field[@name='backup_ids']/list"),
        ):
            arch = self.env[model].get_views([(False, view)])["views"][view]["arch"]
            buttons = etree.fromstring(arch).xpath(
                f"{path}/button[@name='action_download']"
            )
            with self.subTest(model=model, view=view):
                self.assertEqual(len(buttons), 1)
                self.assertEqual(buttons[0].get("invisible"), "not can_download")
                self.assertIn("pgBackRest backup set", buttons[0].get("help"))


@tagged("post_install", "-at_install")
class TestBackupDownloadXmlRpc(BucketBackupMixin, HttpCase):
    """Download over XML-RPC: the owner gets the link, another user the
    refusal."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.owner = new_test_user(
            cls.env, login="eyrie_dl_owner", groups="eyrie_deployment.group_eyrie_user"
        )
        cls.other = new_test_user(
            cls.env, login="eyrie_dl_other", groups="eyrie_deployment.group_eyrie_user"
        )
        cluster = cls.env["eyrie.cluster"].create(
            {"name": "Download dry run", "dry_run": True}
        )
        cls.backup = cls._backup(cls._bucket_deployment(cls.env, cluster, cls.owner))

    def _download_as(self, user):
        return self.xmlrpc_object.execute_kw(
            get_db_name(), user.id, user.login, "eyrie.backup", "action_download",
            [[self.backup.id]], {},
        )  # fmt: skip

    def test_download_over_xmlrpc(self):
        action = self._download_as(self.owner)
        self.assertEqual(action["type"], "ir.actions.act_url")
        self.assertIn("/filestore/eyrie-1.tar.gz?", action["url"])
        with self.assertRaises(xmlrpc.client.Fault) as caught:
            self._download_as(self.other)
        self.assertIn(
            "Only the owner of deployment dl-shop", caught.exception.faultString
        )
        self.assertNotIn(BUCKET["backup_s3_key_id"], caught.exception.faultString)
