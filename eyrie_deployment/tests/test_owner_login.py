import json
import logging
from contextlib import contextmanager
from xmlrpc.client import Fault

from lxml import etree

from odoo.exceptions import AccessError, UserError
from odoo.tests import HttpCase, get_db_name, new_test_user, tagged

from .common import EyrieCase

HOST = "http://acme.test.example.com"


class LoginCaseMixin:
    """A deployed Odoo of the plain user ``cls.user`` (its Responsible),
    another plain user ``self.other`` and helpers to read what was
    recorded."""

    def setUp(self):
        super().setUp()
        self.other = new_test_user(
            self.env,
            login="eyrie_login_other",
            name="Bob Other",
            groups="eyrie_deployment.group_eyrie_user",
        )
        self.odoo = self._deployed("acme")
        self.password = self.odoo.sudo().credentials["admin_password"]

    def _viewings(self):
        # Messages an XML-RPC call wrote, through the same test cursor.
        self.env.invalidate_all()
        return self.odoo.message_ids.filtered(
            lambda message: "Login viewed by" in (message.body or "")
        )

    def _assert_password_in_no_message(self):
        self.env.flush_all()
        self.env.cr.precommit.run()
        messages = self.env["mail.message"].sudo().search([])
        self.assertTrue(messages)
        for message in messages:
            self.assertNotIn(self.password, message.body or "")
            self.assertNotIn(self.password, message.subject or "")
        self.assertFalse(
            self.env["mail.tracking.value"]
            .sudo()
            .search(
                [
                    "|",
                    ("old_value_char", "ilike", self.password),
                    ("new_value_char", "ilike", self.password),
                ]
            )
        )


@contextmanager
def captured_logs():
    """Every log record of the block, at any level, as text."""
    lines = []

    class Collect(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Collect(level=logging.DEBUG)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        root.setLevel(level)
        root.removeHandler(handler)


@tagged("post_install", "-at_install")
class TestOwnerLogin(LoginCaseMixin, EyrieCase):
    """Show Login and the links to the instance, through the ORM."""

    def test_owner_sees_the_login_and_the_viewing_is_recorded(self):
        mine = self.odoo.with_user(self.user)
        self.assertTrue(mine.can_act)
        self.assertTrue(mine.has_login)
        with captured_logs() as lines:
            action = mine.action_show_login()
            login = self.env[action["res_model"]].with_user(self.user)
            login = login.browse(action["res_id"])
            self.assertEqual(login.password, self.password)
        self.assertEqual(action["type"], "ir.actions.act_window")
        self.assertEqual(action["target"], "new")
        self.assertEqual(action["res_model"], "eyrie.deployment.login")
        self.assertEqual(login.login, "admin")
        self.assertEqual(login.url, f"{HOST}/")
        self.assertFalse(login.mail_url, "no mail catcher in this scope")
        self.assertFalse(any(self.password in line for line in lines))

        viewings = self._viewings()
        self.assertEqual(len(viewings), 1)
        self.assertIn(f"Login viewed by {self.user.name}", viewings.body)
        self.assertEqual(viewings.author_id, self.user.partner_id)
        # Each opening is recorded.
        mine.action_show_login()
        self.assertEqual(len(self._viewings()), 2)
        self._assert_password_in_no_message()

    def test_password_is_not_stored_in_the_dialog(self):
        action = self.odoo.with_user(self.user).action_show_login()
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT row_to_json(dialog)::text FROM eyrie_deployment_login dialog "
            "WHERE id = %s",
            [action["res_id"]],
        )
        (row,) = self.env.cr.fetchone()
        self.assertIn(str(self.odoo.id), row)
        self.assertNotIn(self.password, row)
        self.assertNotIn("password", json.loads(row))

    def test_another_user_is_refused_with_eyries_message(self):
        theirs = self.odoo.with_user(self.other)
        self.assertFalse(theirs.can_act)
        with self.assertRaisesMessage(
            AccessError,
            "You cannot see the login of deployment acme: it is eyrie_user",
        ):
            theirs.action_show_login()
        for method, what in (
            ("action_open_odoo", "open"),
            ("action_connect_odoo", "connect to"),
            ("action_open_mails", "read the mails of"),
        ):
            with (
                self.subTest(method),
                self.assertRaisesMessage(
                    AccessError, f"You cannot {what} deployment acme"
                ),
            ):
                getattr(theirs, method)()
        self.assertFalse(self._viewings())

    def test_dialogs_are_their_openers_only(self):
        action = self.odoo.with_user(self.user).action_show_login()
        Login = self.env["eyrie.deployment.login"]
        owners = Login.browse(action["res_id"])
        self.assertFalse(Login.with_user(self.other).search([]))
        with self.assertRaises(AccessError):
            owners.with_user(self.other).read(["password"])
        # Nobody makes a dialog but Show Login, which records the viewing:
        # neither the owner (unrecorded) nor another user.
        for user in (self.user, self.other):
            with self.subTest(user.login), self.assertRaises(AccessError):
                Login.with_user(user).create({"deployment_id": self.odoo.id})
        # A dialog on someone else's deployment (made past the access
        # rights) still holds no password for its reader.
        foreign = (
            Login.with_user(self.other).sudo().create({"deployment_id": self.odoo.id})
        )
        self.assertEqual(foreign.create_uid, self.other)
        self.assertFalse(foreign.with_user(self.other).password)
        self.assertEqual(foreign.with_user(self.other).url, f"{HOST}/")

    def test_a_manager_sees_the_login_and_is_recorded(self):
        action = self.odoo.with_user(self.manager).action_show_login()
        login = self.env["eyrie.deployment.login"].with_user(self.manager)
        self.assertEqual(login.browse(action["res_id"]).password, self.password)
        self.assertIn(f"Login viewed by {self.manager.name}", self._viewings().body)

    def test_no_login_before_the_first_deploy(self):
        draft = self._make_deployment("draft-odoo").with_user(self.user)
        self.assertTrue(draft.can_act)
        self.assertFalse(draft.has_login)
        with self.assertRaisesMessage(UserError, "has no login yet"):
            draft.action_show_login()
        database = self._deployed("db", deployment_type="pgo").with_user(self.user)
        self.assertFalse(database.has_login)
        with self.assertRaisesMessage(UserError, "not an Odoo deployment"):
            database.action_show_login()

    def test_links_to_the_instance(self):
        mine = self.odoo.with_user(self.user)
        self.assertTrue(mine.odoo_served)
        for method, url in (
            ("action_open_odoo", f"{HOST}/"),
            (
                "action_connect_odoo",
                f"{HOST}/web/login?login=admin&redirect=%2Fodoo",
            ),
        ):
            with self.subTest(method):
                self.assertEqual(
                    getattr(mine, method)(),
                    {"type": "ir.actions.act_url", "url": url, "target": "new"},
                )
        self.assertFalse(mine.has_mail_catcher)
        with self.assertRaisesMessage(UserError, "has no mail catcher"):
            mine.action_open_mails()

        self.scope.mail_catcher = True
        self.assertTrue(mine.has_mail_catcher)
        self.assertEqual(mine.action_open_mails()["url"], f"{HOST}/mail/")
        # A TLS certificate on the Ingress: https.
        self.odoo.values = json.dumps({"tls_secret": "wildcard-tls"})
        self.assertEqual(
            mine.action_open_odoo()["url"], "https://acme.test.example.com/"
        )
        self.assertEqual(
            self.odoo.with_user(self.manager).action_open_mails()["url"],
            "https://acme.test.example.com/mail/",
        )

    def test_no_links_to_an_instance_not_served(self):
        self.odoo.action_pause()
        mine = self.odoo.with_user(self.user)
        self.assertEqual(mine.state, "pausing")
        self.assertFalse(mine.odoo_served)
        with self.assertRaisesMessage(UserError, "is not served now"):
            mine.action_open_odoo()
        self._run_jobs()
        self.assertEqual(mine.state, "pause")
        self.assertFalse(mine.odoo_served)
        with self.assertRaisesMessage(UserError, "is not served now"):
            mine.action_connect_odoo()
        # The login stays: the password is the same once it is resumed.
        self.assertEqual(
            self.env["eyrie.deployment.login"]
            .with_user(self.user)
            .browse(mine.action_show_login()["res_id"])
            .password,
            self.password,
        )

    def test_form_offers_the_buttons_and_no_password(self):
        for user in (self.user, self.manager):
            arch = etree.fromstring(
                self.env["eyrie.deployment"]
                .with_user(user)
                .get_views([(False, "form")])["views"]["form"]["arch"]
            )
            with self.subTest(user.login):
                self.assertFalse(arch.xpath("//field[@name='admin_password']"))
                buttons = {
                    button.get("name"): button.get("invisible")
                    for button in arch.xpath("//header/button")
                }
                for name in ("action_show_login", "action_open_odoo"):
                    self.assertIn("not can_act", buttons[name])
                self.assertIn("not has_mail_catcher", buttons["action_open_mails"])

    def test_dialog_opens_in_the_web_client(self):
        action = self.odoo.with_user(self.user).action_show_login()
        Login = self.env["eyrie.deployment.login"].with_user(self.user)
        views = Login.get_views(action["views"])
        arch = etree.fromstring(views["views"]["form"]["arch"])
        self.assertEqual(
            arch.xpath("//field[@name='password']")[0].get("widget"),
            "CopyClipboardChar",
        )
        (values,) = Login.browse(action["res_id"]).web_read(
            {"url": {}, "login": {}, "password": {}, "mail_url": {}}
        )
        self.assertEqual(values["password"], self.password)
        self.assertEqual(values["url"], f"{HOST}/")


@tagged("post_install", "-at_install")
class TestOwnerLoginXmlRpc(LoginCaseMixin, EyrieCase, HttpCase):
    """The same over XML-RPC, as the owner, another user and a manager
    (test users' passwords are their logins)."""

    def rpc(self, user, model, method, *args, **kwargs):
        return self.xmlrpc_object.execute_kw(
            get_db_name(), user.id, user.login, model, method, list(args), kwargs
        )

    def _show_login(self, user):
        action = self.rpc(user, "eyrie.deployment", "action_show_login", [self.odoo.id])
        self.assertEqual(action["res_model"], "eyrie.deployment.login")
        return action["res_id"]

    def _read_login(self, user, login_id):
        return self.rpc(
            user,
            "eyrie.deployment.login",
            "read",
            [login_id],
            ["url", "login", "password", "mail_url"],
        )[0]

    def test_owner_over_xmlrpc(self):
        (deployment,) = self.rpc(
            self.user,
            "eyrie.deployment",
            "read",
            [self.odoo.id],
            ["can_act", "has_login", "odoo_served"],
        )
        self.assertTrue(deployment["can_act"])
        self.assertTrue(deployment["has_login"])
        self.assertTrue(deployment["odoo_served"])
        login = self._read_login(self.user, self._show_login(self.user))
        self.assertEqual(login["password"], self.password)
        self.assertEqual(login["login"], "admin")
        self.assertEqual(login["url"], f"{HOST}/")
        self.assertIn(f"Login viewed by {self.user.name}", self._viewings().body)
        connect = self.rpc(
            self.user, "eyrie.deployment", "action_connect_odoo", [self.odoo.id]
        )
        self.assertEqual(
            connect["url"], f"{HOST}/web/login?login=admin&redirect=%2Fodoo"
        )
        self._assert_password_in_no_message()

    def test_another_user_over_xmlrpc(self):
        owners_login = self._show_login(self.user)
        (deployment,) = self.rpc(
            self.other, "eyrie.deployment", "read", [self.odoo.id], ["can_act"]
        )
        self.assertFalse(deployment["can_act"])
        with self.assertRaisesRegex(
            Fault, "You cannot see the login of deployment acme: it is eyrie_user"
        ):
            self._show_login(self.other)
        with self.assertRaisesRegex(Fault, "You cannot open deployment acme"):
            self.rpc(self.other, "eyrie.deployment", "action_open_odoo", [self.odoo.id])
        # The owner's dialog: not found, not readable.
        self.assertFalse(
            self.rpc(self.other, "eyrie.deployment.login", "search_read", [], ["id"])
        )
        with self.assertRaisesRegex(Fault, "doesn't have 'read' access"):
            self._read_login(self.other, owners_login)
        with self.assertRaisesRegex(Fault, "not allowed to create"):
            self.rpc(
                self.other,
                "eyrie.deployment.login",
                "create",
                {"deployment_id": self.odoo.id},
            )
        self.assertEqual(len(self._viewings()), 1, "the owner's viewing only")

    def test_manager_over_xmlrpc(self):
        login = self._read_login(self.manager, self._show_login(self.manager))
        self.assertEqual(login["password"], self.password)
        self.assertIn(f"Login viewed by {self.manager.name}", self._viewings().body)
