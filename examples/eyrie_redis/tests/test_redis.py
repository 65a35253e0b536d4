import base64

from odoo.exceptions import UserError
from odoo.tests import tagged

from odoo.addons.eyrie_deployment.tests.kube_common import BUCKET, KubernetesCase


@tagged("post_install", "-at_install")
class TestRedisType(KubernetesCase):
    """The docs' example type, installed as a module, on the emulated
    cluster with its shipped books (the scope sets none for it)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.allowed_kinds += "\napps/StatefulSet"
        cls.redis_scope = cls.env["eyrie.scope"].create(
            {"name": "Redis", "cluster_id": cls.cluster.id, "allow_drop": True}
        )

    def _play_statefulsets(self, _round=None):
        for workload in self.emulator.list("apps/v1", "StatefulSet"):
            meta = workload["metadata"]
            replicas = workload["spec"].get("replicas", 1)
            self.emulator.set_status(
                "apps/v1",
                "StatefulSet",
                meta["name"],
                {
                    "observedGeneration": meta.get("generation", 1),
                    "replicas": replicas,
                    "readyReplicas": replicas,
                    "updatedReplicas": replicas,
                    "currentRevision": "r1",
                    "updateRevision": "r1",
                },
                namespace=meta["namespace"],
            )

    def _redis(self, name="cache"):
        return (
            self.env["eyrie.deployment"]
            .with_user(self.user)
            .create(
                {
                    "name": name,
                    "deployment_type": "redis",
                    "scope_id": self.redis_scope.id,
                }
            )
        )

    def _run(self, deployment, action):
        getattr(deployment, f"action_{action}")()
        self._settle(between_rounds=self._play_statefulsets)

    def test_lifecycle_on_the_cluster(self):
        cache = self._redis()
        self.assertEqual(
            cache.deployment_deploy_book_id,
            self.env.ref("eyrie_redis.eyrie_book_redis_deploy"),
        )
        self._run(cache, "deploy")
        self.assertEqual((cache.repository_state, cache.state), ("deploy", "deploy"))
        secret = self.emulator.get("v1", "Secret", "redis", namespace="cache")
        password = base64.b64decode(secret["data"]["password"]).decode()
        self.assertEqual(password, cache.sudo().credentials["redis_password"])
        statefulset = self.emulator.get(
            "apps/v1", "StatefulSet", "redis", namespace="cache"
        )
        self.assertEqual(
            statefulset["spec"]["template"]["spec"]["containers"][0]["image"],
            "redis:7.4",
        )
        self.assertEqual(
            statefulset["metadata"]["labels"]["eyrie.io/deployment"], str(cache.id)
        )

        self._run(cache, "pause")
        self.assertEqual(cache.repository_state, "pause")
        statefulset = self.emulator.get(
            "apps/v1", "StatefulSet", "redis", namespace="cache"
        )
        self.assertEqual(statefulset["spec"]["replicas"], 0)

        self._run(cache, "drop")
        self.assertFalse(cache.exists())
        self.assertIsNone(self.emulator.get("v1", "Namespace", "cache"))

    def test_values_are_checked_like_the_shipped_types(self):
        cache = self._redis()
        with self.assertRaisesMessage(Exception, "'storage' is '1 GB'"):
            cache.values = '{"storage": "1 GB"}'
        with self.assertRaisesMessage(Exception, "'workers' is not a value"):
            cache.values = '{"workers": 2}'

    def test_uninstall_refused_while_a_redis_runs(self):
        cache = self._redis()
        draft = self._redis("draft-cache")
        self._run(cache, "deploy")
        ondelete = self.env["eyrie.deployment"]._fields["deployment_type"].ondelete
        with self.assertRaisesMessage(UserError, "cache of type redis still run"):
            ondelete["redis"](cache | draft)
        self.assertTrue(cache.exists() and draft.exists())
        ondelete["redis"](draft)
        self.assertFalse(draft.exists())

    def test_a_type_without_backups_is_never_asked_for_one(self):
        """In a scope that backs up to a bucket before every update and drop,
        a Redis (a type with no backup capability) updates and drops like
        anywhere else: no backup job, no backup book needed, no bucket keys
        in its books' secrets."""
        self.redis_scope.write(BUCKET | {"backup_before_update": True})
        self.assertTrue(self.redis_scope.backup_before_drop)
        cache = self._redis("bucket-cache")
        self._run(cache, "deploy")
        self._run(cache, "deploy")
        self.assertEqual((cache.repository_state, cache.state), ("deploy", "deploy"))
        secret = self.emulator.get("v1", "Secret", "redis", namespace="bucket-cache")
        self.assertEqual(set(secret["data"]), {"password"})
        self._run(cache, "drop")
        self.assertFalse(cache.exists())
        jobs = self.env["eyrie.job"].search([("deployment_name", "=", "bucket-cache")])
        self.assertEqual(
            sorted(jobs.mapped("action")), ["deploy", "deploy", "drop", "initialize"]
        )
        self.assertFalse(
            self.env["eyrie.backup"].search([("deployment_name", "=", "bucket-cache")])
        )
        # Nothing offers it a backup, and its books never get the bucket's keys.
        other = self._redis("other-cache")
        self._run(other, "deploy")
        self.assertFalse(other.backup_supported)
        self.assertNotIn("s3_key_id", other._template_secrets())
        with self.assertRaisesMessage(UserError, "type redis have no backups"):
            other.action_backup()
