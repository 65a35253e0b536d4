from contextlib import contextmanager

from odoo.tests import TransactionCase, new_test_user

from .queue_jobs import run_queue_jobs

NAMESPACE_STEP = """apiVersion: v1
kind: Namespace
metadata:
  name: {{ namespace }}
"""
DEPLOYMENT_STEP = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ deployment.name }}
  labels:
    eyrie.io/deployment: "{{ deployment.id }}"
spec:
  replicas: {{ values.get('replicas', 1) }}
"""
SCALE_DOWN_STEP = """kind: Deployment
metadata:
  name: {{ deployment.name }}
spec:
  replicas: 0
"""
DELETE_NAMESPACE_STEP = """apiVersion: v1
kind: Namespace
metadata:
  name: {{ namespace }}
"""
UNDEFINED_VARIABLE_STEP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ no_such_variable }}
"""


class EyrieCase(TransactionCase):
    """A dry-run cluster, one book per action and a scope using them."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        if cls.registry.test_cr is None:
            # Jobs run on a cursor of their own (queue_job's Allow Commit):
            # in tests, a test cursor on this test's transaction.
            cls.registry.enter_test_mode(cls.cr)
            cls.addClassCleanup(cls.registry.leave_test_mode)
        cls.env = cls.env(context=dict(cls.env.context, tracking_disable=False))
        cls.manager = new_test_user(
            cls.env,
            login="eyrie_manager",
            groups="eyrie_deployment.group_eyrie_manager",
        )
        cls.user = new_test_user(
            cls.env,
            login="eyrie_user",
            groups="eyrie_deployment.group_eyrie_user",
        )
        cls.cluster = cls.env["eyrie.cluster"].create(
            {"name": "Test dry run", "dry_run": True}
        )
        cls.book_initialize = cls._make_book(
            "Test initialize", [("Namespace", "apply", NAMESPACE_STEP)]
        )
        cls.book_deploy = cls._make_book(
            "Test deploy", [("Workload", "apply", DEPLOYMENT_STEP)]
        )
        cls.book_pause = cls._make_book(
            "Test pause", [("Scale down", "scale", SCALE_DOWN_STEP)]
        )
        cls.book_drop = cls._make_book(
            "Test drop", [("Delete namespace", "delete", DELETE_NAMESPACE_STEP)]
        )
        cls.book_broken = cls._make_book(
            "Test broken", [("Broken config", "apply", UNDEFINED_VARIABLE_STEP)]
        )
        cls.scope = cls.env["eyrie.scope"].create(
            {
                "name": "Test scope",
                "domain": "test.example.com",
                "cluster_id": cls.cluster.id,
                "allow_drop": True,
                # Keys the tests' custom books read.
                "extra_value_keys": "size, password, web_replicas, name",
                "deployment_initialize_book_id": cls.book_initialize.id,
                "deployment_deploy_book_id": cls.book_deploy.id,
                "deployment_pause_book_id": cls.book_pause.id,
                "deployment_drop_book_id": cls.book_drop.id,
            }
        )

    @classmethod
    def _make_book(cls, name, steps, deployment_type=False):
        return cls.env["eyrie.deployment.book"].create(
            {
                "name": name,
                "deployment_type": deployment_type,
                "step_ids": [
                    (
                        0,
                        0,
                        {
                            "sequence": index,
                            "name": step,
                            "kind": kind,
                            "template": tpl,
                        },
                    )
                    for index, (step, kind, tpl) in enumerate(steps)
                ],
            }
        )

    def _make_deployment(self, name="acme", deployment_type="odoo", **values):
        return self.env["eyrie.deployment"].create(
            {
                "name": name,
                "deployment_type": deployment_type,
                "scope_id": self.scope.id,
                # The plain user's own: users run only their own deployments.
                "user_id": self.user.id,
            }
            | values
        )

    def _run_jobs(self):
        return run_queue_jobs(self.env)

    def _deployed(self, name="acme", **values):
        deployment = self._make_deployment(name, **values)
        deployment.action_deploy()
        self._run_jobs()
        self.assertEqual(deployment.state, "deploy")
        return deployment

    def _set_book(self, deployment, action, book):
        # Books may change at any phase; only type, scope and namespace are locked.
        deployment.write({f"deployment_{action}_book_id": book.id})

    def _flush_tracking(self):
        # Tracking messages are written when the transaction commits.
        self.env.flush_all()
        self.env.cr.precommit.run()

    @contextmanager
    def assertRaisesMessage(self, exception, pattern):
        """assertRaises (which rolls back to a savepoint) plus a message check."""
        with self.assertRaises(exception) as caught:
            yield caught
        self.assertRegex(str(caught.exception), pattern)

    def _messages(self, record):
        return " | ".join(record.message_ids.mapped("body"))


class ShippedScopeMixin:
    """``cls.shipped``: a scope of the test cluster without books, whose
    deployments run their type's shipped books; ``_create`` makes one."""

    SHIPPED_SCOPE_VALUES = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.shipped = cls.env["eyrie.scope"].create(
            {
                "name": f"Shipped books of {cls.__name__}",
                "cluster_id": cls.cluster.id,
                "domain": "preview.example.com",
                "allow_drop": True,
            }
            | cls.SHIPPED_SCOPE_VALUES
        )

    def _create(self, name, deployment_type="odoo", **vals):
        return self.env["eyrie.deployment"].create(
            {
                "name": name,
                "deployment_type": deployment_type,
                "scope_id": self.shipped.id,
            }
            | vals
        )
