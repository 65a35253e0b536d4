"""A small addon with one passing and one failing test, for the test runs
of development builds: ``acme_shop`` in a repository of a git peer."""

MANIFEST = """{
    "name": "Acme Shop",
    "version": "18.0.1.0.0",
    "depends": ["base"],
    "license": "LGPL-3",
    "installable": True,
}
"""
TESTS = """from odoo.tests import TransactionCase, tagged


@tagged("post_install", "-at_install")
class TestShop(TransactionCase):
    def test_the_shop_opens(self):
        self.assertTrue(self.env.ref("base.main_company"))

    def test_the_checkout_is_fast(self):
        self.assertEqual(1 + 1, 3, "the checkout is not fast yet")
"""
FILES = {
    "acme_shop/__manifest__.py": MANIFEST,
    "acme_shop/__init__.py": "",
    "acme_shop/tests/__init__.py": "from . import test_shop\n",
    "acme_shop/tests/test_shop.py": TESTS,
}


def create_shop(git, name="shop", branch="main"):
    """Repository ``name`` on ``git`` (a GitPeer): the addon, then two more
    commits. Returns the three shas; ``branch`` is at the first."""
    return git.create_repository(
        name,
        [
            ("Add the shop module's tests", FILES),
            ("Describe the shop", {"acme_shop/README.rst": "Acme Shop\n"}),
            ("Say who runs it", {"acme_shop/README.rst": "Acme Shop, by Acme\n"}),
        ],
        branch=branch,
        at=0,
    )
