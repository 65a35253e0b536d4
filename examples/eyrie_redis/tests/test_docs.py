import re
from pathlib import Path

from odoo.tests import BaseCase, tagged

MODULE = Path(__file__).resolve().parents[1]
DOCS = MODULE.parents[1] / "docs" / "adding-a-type.rst"
BLOCK = re.compile(
    r"^``eyrie_redis/(?P<path>[\w/.]+)``\n\n\.\. code-block:: \w+\n\n"
    r"(?P<body>(?:(?:   .*)?\n)+)",
    re.MULTILINE,
)


@tagged("post_install", "-at_install")
class TestRedisDocs(BaseCase):
    def test_the_docs_show_the_installed_module(self):
        """The example a newcomer copies is the module the tests install."""
        blocks = {m["path"]: m["body"] for m in BLOCK.finditer(DOCS.read_text())}
        self.assertEqual(
            set(blocks),
            {
                "__manifest__.py",
                "models/eyrie_deployment_redis.py",
                "data/eyrie_book_redis_data.xml",
            },
        )
        for path, body in blocks.items():
            shown = "".join(line[3:] + "\n" for line in body.splitlines())
            with self.subTest(path=path):
                self.assertEqual(
                    shown.strip("\n"), (MODULE / path).read_text().strip("\n")
                )
