from unittest.mock import patch

from odoo.exceptions import UserError
from odoo.tests import tagged

from .common import EyrieCase


@tagged("post_install", "-at_install")
class TestDispatch(EyrieCase):
    def test_both_builtin_types_run_their_lifecycle(self):
        for deployment_type in ("odoo", "pgo"):
            deployment = self._deployed(
                f"type-{deployment_type}", deployment_type=deployment_type
            )
            deployment.action_pause()
            self._run_jobs()
            self.assertEqual(deployment.state, "pause")
            deployment.action_drop()
            self._run_jobs()
            self.assertFalse(deployment.exists())

    def test_type_methods_exist_for_every_verb(self):
        deployment = self._make_deployment()
        for deployment_type in ("odoo", "pgo"):
            for verb in ("deploy", "pause", "drop"):
                method = getattr(deployment, f"{deployment_type}_action_{verb}")
                self.assertTrue(getattr(method, "_api_private", False), method)

    def test_missing_implementation_names_the_method(self):
        deployment = self._make_deployment()
        # A type whose module is gone, as a deployment keeps its stored value.
        self.env.cr.execute(
            "UPDATE eyrie_deployment SET deployment_type = 'ghost' WHERE id = %s",
            [deployment.id],
        )
        deployment.invalidate_recordset()
        with self.assertRaisesMessage(UserError, "ghost_action_deploy"):
            deployment.action_deploy()
        self.assertEqual(deployment.repository_state, "draft")
        self.assertFalse(deployment.job_ids)

    def test_book_of_another_type_is_refused(self):
        pgo_book = self._make_book(
            "PGO only", [("ns", "apply", "{}")], deployment_type="pgo"
        )
        deployment = self._make_deployment()
        with self.assertRaisesMessage(
            Exception, "serves deployments of type pgo, not odoo"
        ):
            deployment.deployment_deploy_book_id = pgo_book
        # A scope default of another type is not picked for this deployment:
        # it gets its type's shipped book.
        self.scope.deployment_pause_book_id = pgo_book
        other = self._make_deployment("other")
        self.assertEqual(
            other.deployment_pause_book_id,
            self.env.ref("eyrie_deployment.eyrie_book_odoo_pause"),
        )
        self.assertEqual(other.deployment_deploy_book_id, self.book_deploy)

    def test_public_type_method_is_refused(self):
        deployment = self._make_deployment()
        self.env.cr.execute(
            "UPDATE eyrie_deployment SET deployment_type = 'ghost' WHERE id = %s",
            [deployment.id],
        )
        deployment.invalidate_recordset()
        called = []

        def ghost_action_deploy(record):
            called.append(record)
            return record._start_deploy()

        # A type method without @api.private: anyone could call it over
        # XML-RPC and skip the checks.
        with (
            patch.object(
                type(deployment),
                "ghost_action_deploy",
                ghost_action_deploy,
                create=True,
            ),
            self.assertRaisesMessage(UserError, "decorate it with @api.private"),
        ):
            deployment.action_deploy()
        self.assertFalse(called)
        self.assertEqual(deployment.repository_state, "draft")
        self.assertFalse(deployment.job_ids)

    def test_removing_a_type_refuses_live_deployments(self):
        live = self._deployed("live")
        draft = self._make_deployment("still-draft")
        ondelete = self.env["eyrie.deployment"]._fields["deployment_type"].ondelete
        with self.assertRaisesMessage(UserError, "live of type odoo still run"):
            ondelete["odoo"](live | draft)
        self.assertTrue(live.exists())
        self.assertTrue(draft.exists())
        ondelete["odoo"](draft)
        self.assertFalse(draft.exists())
        live.action_drop()
        self._run_jobs()
        self.assertFalse(live.exists())
