from lxml import etree

from odoo.tests import tagged

from .common import EyrieCase


@tagged("post_install", "-at_install")
class TestDeploymentKanban(EyrieCase):
    """The deployment cards: their state colour, address, timers and
    Responsible, as the web client loads them."""

    def _card(self):
        arch = (
            self.env["eyrie.deployment"]
            .with_user(self.user)
            .get_views([(False, "kanban")])["views"]["kanban"]["arch"]
        )
        kanban = etree.fromstring(arch)
        return kanban, kanban.xpath("//templates/t[@t-name='card']")[0]

    def test_card_shows_state_colour_address_timers_and_responsible(self):
        kanban, card = self._card()
        self.assertEqual(kanban.get("highlight_color"), "state_color")
        widgets = {
            field.get("name"): field.get("widget") for field in card.iter("field")
        }
        self.assertEqual(widgets["hostname"], "url")
        self.assertEqual(widgets["user_id"], "many2one_avatar_user")
        self.assertIn("timer_summary", widgets)

    def test_state_colours(self):
        Deployment = self.env["eyrie.deployment"]
        colours = {
            state: Deployment.new({"state": state}).state_color
            for state in ("draft", "deploying", "deploy", "pause", "error")
        }
        # No colour, cyan, green, yellow, red (the web client's colour list).
        self.assertEqual(
            colours,
            {"draft": 0, "deploying": 4, "deploy": 10, "pause": 3, "error": 1},
        )

    def test_cards_load_what_they_show(self):
        self.scope.deployment_pause_after_seconds = 3600
        deployment = self._deployed("carded")
        (record,) = (
            self.env["eyrie.deployment"]
            .with_user(self.user)
            .web_search_read(
                [("id", "=", deployment.id)],
                {
                    "state_color": {},
                    "hostname": {},
                    "timer_summary": {},
                    "user_id": {"fields": {"display_name": {}}},
                },
            )["records"]
        )
        self.assertEqual(record["state_color"], 10)
        self.assertEqual(record["hostname"], "carded.test.example.com")
        self.assertRegex(record["timer_summary"], r"^pauses ")
        self.assertEqual(record["user_id"]["id"], self.user.id)
