from odoo.exceptions import AccessError
from odoo.tests import Form, new_test_user

from .common import EyrieCase


class TestNewDeployment(EyrieCase):
    """Deployments → New, as the web client does it: the form's defaults
    and onchanges before any scope or type is chosen."""

    def _new_form(self, user):
        return Form(self.env["eyrie.deployment"].with_user(user))

    def test_new_form_opens_for_a_plain_user_with_no_scope_chosen(self):
        # A second scope: no "only scope" to default to.
        self.env["eyrie.scope"].create(
            {"name": "Other scope", "cluster_id": self.cluster.id}
        )
        form = self._new_form(self.user)
        self.assertFalse(form.scope_id)
        self.assertFalse(form.effective_values)
        form.name = "first-odoo"
        form.deployment_type = "odoo"
        self.assertFalse(form.effective_values, "no scope: nothing computed yet")
        form.scope_id = self.scope
        self.assertIn('"image"', form.effective_values)
        deployment = form.save()
        self.assertEqual(deployment.scope_id, self.scope)
        self.assertEqual(deployment.state, "draft")

    def test_new_form_defaults_to_the_only_scope(self):
        only = self.env["eyrie.scope"].search([])
        self.assertEqual(len(only), 1)
        form = self._new_form(self.user)
        self.assertEqual(form.scope_id, only)

    def test_new_form_defaults_to_the_scope_of_the_users_last_deployment(self):
        other = self.env["eyrie.scope"].create(
            {"name": "Other scope", "cluster_id": self.cluster.id}
        )
        self.env["eyrie.deployment"].with_user(self.user).create(
            {"name": "earlier", "deployment_type": "odoo", "scope_id": other.id}
        )
        form = self._new_form(self.user)
        self.assertEqual(form.scope_id, other)
        self.assertEqual(form.deployment_type, "odoo")
        # Another user's last deployment is theirs, not this user's default.
        second = new_test_user(
            self.env, login="eyrie_second", groups="eyrie_deployment.group_eyrie_user"
        )
        self.assertFalse(self._new_form(second).scope_id)


class TestActionsOfOthers(EyrieCase):
    """Someone else's deployment: no action offered, Eyrie's own refusal."""

    def setUp(self):
        super().setUp()
        self.other = new_test_user(
            self.env, login="eyrie_other", groups="eyrie_deployment.group_eyrie_user"
        )
        self.deployment = self._deployed("acme")
        self.deployment.user_id = self.manager

    def test_can_act_only_for_owner_and_managers(self):
        self.assertTrue(self.deployment.with_user(self.manager).can_act)
        self.assertFalse(self.deployment.with_user(self.other).can_act)
        mine = (
            self.env["eyrie.deployment"]
            .with_user(self.other)
            .create(
                {"name": "mine", "deployment_type": "odoo", "scope_id": self.scope.id}
            )
        )
        self.assertTrue(mine.can_act)
        job = self.deployment.job_ids[:1]
        self.assertTrue(job.with_user(self.manager).can_cancel)
        self.assertFalse(job.with_user(self.other).can_cancel)

    def test_each_action_refused_with_eyries_message(self):
        theirs = self.deployment.with_user(self.other)
        calls = {
            "pause": theirs.action_pause,
            "deploy": theirs.action_deploy,
            "keep awake": theirs.action_keep_awake,
            "see the logs of": theirs.action_view_logs,
            "restore": theirs.action_open_restore,
            "duplicate": theirs.action_open_clone,
        }
        for what, call in calls.items():
            with (
                self.subTest(what),
                self.assertRaisesMessage(
                    AccessError, f"You cannot {what} deployment acme: it is "
                ),
            ):
                call()
        self.assertEqual(self.deployment.state, "deploy")
