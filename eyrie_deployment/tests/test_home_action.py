import json
import re

from odoo.tests import HttpCase, new_test_user, tagged

SESSION_INFO = re.compile(r"odoo\.__session_info__ = (\{.*?\});\n")


@tagged("post_install", "-at_install")
class TestHomeAction(HttpCase):
    """Where a user lands after logging in: the web client opens the home
    action the session gives (``home_action_id``), else the first app."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.deployments = cls.env.ref("eyrie_deployment.eyrie_deployment_action")
        cls.eyrie_user = new_test_user(
            cls.env, login="eyrie_lands", groups="eyrie_deployment.group_eyrie_user"
        )
        cls.eyrie_manager = new_test_user(
            cls.env,
            login="eyrie_manager_lands",
            groups="eyrie_deployment.group_eyrie_manager",
        )
        cls.own_home = new_test_user(
            cls.env,
            login="eyrie_own_home",
            groups="eyrie_deployment.group_eyrie_user",
            action_id=cls.env.ref("eyrie_deployment.eyrie_backup_action").id,
        )
        cls.internal = new_test_user(
            cls.env, login="not_eyrie", groups="base.group_user"
        )

    def _home_action(self, login):
        self.authenticate(login, login)
        return self.make_jsonrpc_request("/web/session/get_session_info")[
            "home_action_id"
        ]

    def test_eyrie_users_land_on_their_deployments(self):
        self.assertEqual(self._home_action("eyrie_lands"), self.deployments.id)
        self.assertEqual(self._home_action("eyrie_manager_lands"), self.deployments.id)

    def test_the_web_client_page_opens_the_deployments(self):
        self.authenticate("eyrie_lands", "eyrie_lands")
        page = self.url_open("/odoo")
        self.assertEqual(page.status_code, 200)
        session_info = json.loads(SESSION_INFO.search(page.text).group(1))
        self.assertEqual(session_info["home_action_id"], self.deployments.id)

    def test_a_home_action_of_their_own_wins(self):
        self.assertEqual(
            self._home_action("eyrie_own_home"),
            self.env.ref("eyrie_deployment.eyrie_backup_action").id,
        )

    def test_other_users_are_unchanged(self):
        self.assertFalse(self._home_action("not_eyrie"))
