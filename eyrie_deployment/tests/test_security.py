from lxml import etree

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from .common import EyrieCase


@tagged("post_install", "-at_install")
class TestSecurity(EyrieCase):
    def test_administrator_is_manager(self):
        admin = self.env.ref("base.user_admin")
        self.assertTrue(admin.has_group("eyrie_deployment.group_eyrie_manager"))
        self.assertTrue(self.manager.has_group("eyrie_deployment.group_eyrie_user"))

    def test_kubeconfig_is_manager_only(self):
        self.cluster.kubeconfig = (
            "apiVersion: v1\nusers: [{name: x, user: {token: abc}}]"
        )
        with self.assertRaises(AccessError):
            self.cluster.with_user(self.user).read(["kubeconfig"])
        with self.assertRaises(AccessError):
            self.cluster.with_user(self.user).write({"kubeconfig": "x"})
        self.assertIn("token: abc", self.cluster.with_user(self.manager).kubeconfig)
        self.assertNotIn("kubeconfig", self.cluster.with_user(self.user).fields_get())

    def test_users_cannot_configure(self):
        for model, vals in (
            ("eyrie.cluster", {"name": "c"}),
            ("eyrie.scope", {"name": "s", "cluster_id": self.cluster.id}),
            ("eyrie.deployment.book", {"name": "b"}),
        ):
            with self.subTest(model=model), self.assertRaises(AccessError):
                self.env[model].with_user(self.user).create(vals)
        with self.assertRaises(AccessError):
            self.scope.with_user(self.user).allow_drop = False

    def test_user_operates_deployments(self):
        deployment = (
            self.env["eyrie.deployment"]
            .with_user(self.user)
            .create(
                {"name": "mine", "deployment_type": "pgo", "scope_id": self.scope.id}
            )
        )
        deployment.action_deploy()
        self._run_jobs()
        deployment.action_pause()
        self._run_jobs()
        self.assertEqual(deployment.state, "pause")
        deployment.action_drop()
        self._run_jobs()
        self.assertFalse(deployment.exists())

    def test_lifecycle_fields_cannot_be_written(self):
        deployment = self._make_deployment().with_user(self.user)
        for vals in (
            {"state": "deploy"},
            {"repository_state": "deploy"},
            {"deployed_at": "2020-01-01 00:00:00"},
        ):
            with (
                self.subTest(vals=vals),
                self.assertRaisesMessage(UserError, "set by the deployment lifecycle"),
            ):
                deployment.write(vals)
        self.assertEqual(deployment.state, "draft")
        with self.assertRaisesMessage(UserError, "set by the deployment lifecycle"):
            self.env["eyrie.deployment"].with_user(self.user).create(
                {
                    "name": "x",
                    "deployment_type": "odoo",
                    "scope_id": self.scope.id,
                    "state": "deploy",
                }
            )

    def test_jobs_are_read_only_for_users(self):
        deployment = self._make_deployment()
        deployment.action_deploy()
        self._run_jobs()
        job = deployment.job_ids.sorted("id")[:1].with_user(self.user)
        # The user reads what the job did, but cannot change it.
        self.assertIn("Book Test initialize on cluster Test dry run", job.log)
        with self.assertRaises(AccessError):
            job.write({"state": "done"})
        self.assertEqual(job.state, "done")

    def test_form_shows_drop_protection_editable_to_managers_only(self):
        def protection_field(user):
            arch = (
                self.env["eyrie.deployment"]
                .with_user(user)
                .get_views([(False, "form")])["views"]["form"]["arch"]
            )
            fields = etree.fromstring(arch).xpath("//field[@name='drop_protected']")
            self.assertEqual(len(fields), 1)
            return fields[0]

        self.assertNotIn("readonly", protection_field(self.manager).attrib)
        self.assertEqual(protection_field(self.user).get("readonly"), "1")
        user_arch = (
            self.env["eyrie.deployment"]
            .with_user(self.user)
            .get_views([(False, "form")])["views"]["form"]["arch"]
        )
        self.assertNotIn("admin_password", user_arch)
