from xmlrpc.client import Fault

from odoo.tests import HttpCase, get_db_name, new_test_user, tagged

from .queue_jobs import run_queue_jobs


@tagged("post_install", "-at_install")
class TestXmlRpc(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user = new_test_user(
            cls.env, login="eyrie_rpc", groups="eyrie_deployment.group_eyrie_user"
        )
        cluster = cls.env["eyrie.cluster"].create(
            {"name": "RPC dry run", "dry_run": True}
        )
        steps = (
            "apiVersion: v1\nkind: ConfigMap\n"
            "metadata:\n  name: {{ deployment.name }}\n"
        )
        books = {
            action: cls.env["eyrie.deployment.book"].create(
                {
                    "name": f"RPC {action}",
                    "step_ids": [
                        (0, 0, {"name": action, "kind": "apply", "template": steps})
                    ],
                }
            )
            for action in ("initialize", "deploy", "pause", "drop")
        }
        cls.scope = cls.env["eyrie.scope"].create(
            {
                "name": "RPC scope",
                "domain": "test.example.com",
                "cluster_id": cluster.id,
                "allow_drop": True,
                **{
                    f"deployment_{action}_book_id": book.id
                    for action, book in books.items()
                },
            }
        )

    def rpc(self, model, method, *args, **kwargs):
        return self.xmlrpc_object.execute_kw(
            get_db_name(), self.user.id, "eyrie_rpc", model, method, list(args), kwargs
        )

    def _read(self, deployment_id, fields):
        return self.rpc("eyrie.deployment", "read", [deployment_id], fields)[0]

    def test_lifecycle_over_xmlrpc(self):
        deployment_id = self.rpc(
            "eyrie.deployment",
            "create",
            {"name": "rpc-one", "deployment_type": "odoo", "scope_id": self.scope.id},
        )
        self.assertIs(
            self.rpc("eyrie.deployment", "action_deploy", [deployment_id]), True
        )
        self.assertEqual(
            self._read(deployment_id, ["repository_state", "state"])["state"],
            "initializing",
        )
        run_queue_jobs(self.env)
        self.assertEqual(
            self._read(deployment_id, ["repository_state", "state"]),
            {"id": deployment_id, "repository_state": "deploy", "state": "deploy"},
        )
        job_ids = self._read(deployment_id, ["job_ids"])["job_ids"]
        jobs = self.rpc("eyrie.job", "read", job_ids, ["action", "state", "log"])
        self.assertEqual(sorted(j["action"] for j in jobs), ["deploy", "initialize"])
        self.assertTrue(all("would apply ConfigMap rpc-one" in j["log"] for j in jobs))

        self.assertIs(
            self.rpc("eyrie.deployment", "action_pause", [deployment_id]), True
        )
        run_queue_jobs(self.env)
        self.assertEqual(self._read(deployment_id, ["state"])["state"], "pause")

        self.assertIs(
            self.rpc("eyrie.deployment", "action_drop", [deployment_id]), True
        )
        run_queue_jobs(self.env)
        self.assertFalse(
            self.rpc("eyrie.deployment", "search", [("id", "=", deployment_id)])
        )
        dropped = self.rpc(
            "eyrie.job",
            "search_read",
            [("deployment_name", "=", "rpc-one")],
            ["action"],
        )
        self.assertEqual(len(dropped), 4)

    def test_type_methods_are_not_callable(self):
        deployment_id = self.rpc(
            "eyrie.deployment",
            "create",
            {"name": "rpc-two", "deployment_type": "pgo", "scope_id": self.scope.id},
        )
        for method in (
            "odoo_action_deploy",
            "pgo_action_deploy",
            "pgo_action_pause",
            "pgo_action_drop",
            "_start_deploy",
        ):
            with (
                self.subTest(method=method),
                self.assertRaisesRegex(Fault, "Private methods"),
            ):
                self.rpc("eyrie.deployment", method, [deployment_id])
        self.assertEqual(self._read(deployment_id, ["state"])["state"], "draft")
        self.assertFalse(self._read(deployment_id, ["job_ids"])["job_ids"])

    def test_refusals_carry_the_message(self):
        deployment_id = self.rpc(
            "eyrie.deployment",
            "create",
            {"name": "rpc-three", "deployment_type": "odoo", "scope_id": self.scope.id},
        )
        with self.assertRaisesRegex(Fault, "cannot be paused"):
            self.rpc("eyrie.deployment", "action_pause", [deployment_id])
        with self.assertRaisesRegex(Fault, "set by the deployment lifecycle"):
            self.rpc("eyrie.deployment", "write", [deployment_id], {"state": "deploy"})
        with self.assertRaisesRegex(Fault, "kubeconfig"):
            self.rpc(
                "eyrie.cluster", "read", [self.scope.cluster_id.id], ["kubeconfig"]
            )

    def test_protection_keep_awake_and_cancel_as_a_user(self):
        self.scope.write({"deployment_pause_after_seconds": 3600})
        deployment_id = self.rpc(
            "eyrie.deployment",
            "create",
            {"name": "rpc-four", "deployment_type": "odoo", "scope_id": self.scope.id},
        )
        with self.assertRaisesRegex(Fault, "Only Eyrie managers can change Drop"):
            self.rpc(
                "eyrie.deployment", "write", [deployment_id], {"drop_protected": True}
            )
        self.rpc("eyrie.deployment", "action_deploy", [deployment_id])
        run_queue_jobs(self.env)
        before = self._read(deployment_id, ["next_pause_at"])["next_pause_at"]
        answer = self.rpc("eyrie.deployment", "action_keep_awake", [deployment_id])
        self.assertEqual(answer["tag"], "display_notification")
        self.assertIn("rpc-four kept awake: pauses ", answer["params"]["message"])
        after = self._read(deployment_id, ["next_pause_at", "timer_summary"])
        self.assertGreater(after["next_pause_at"], before)
        self.assertIn("pauses in", after["timer_summary"])

        # A manager protects it; the user can neither drop it nor unprotect it.
        deployment = self.env["eyrie.deployment"].browse(deployment_id)
        deployment.drop_protected = True
        with self.assertRaisesRegex(Fault, "is protected against drop"):
            self.rpc("eyrie.deployment", "action_drop", [deployment_id])
        with self.assertRaisesRegex(Fault, "Only Eyrie managers"):
            self.rpc(
                "eyrie.deployment", "write", [deployment_id], {"drop_protected": False}
            )
        self.assertTrue(self._read(deployment_id, ["drop_protected"])["drop_protected"])
        # Credentials are not readable by a user.
        with self.assertRaisesRegex(Fault, "credentials"):
            self.rpc("eyrie.deployment", "read", [deployment_id], ["credentials"])

        # A pending job can be cancelled over XML-RPC.
        self.rpc("eyrie.deployment", "action_pause", [deployment_id])
        job_id = self._read(deployment_id, ["active_job_id"])["active_job_id"][0]
        self.assertIs(self.rpc("eyrie.job", "action_cancel", [job_id]), True)
        self.assertEqual(
            self.rpc("eyrie.job", "read", [job_id], ["state"])[0]["state"], "cancelled"
        )
        self.assertEqual(self._read(deployment_id, ["state"])["state"], "deploy")

    def test_someone_elses_deployment_refused_in_eyries_words(self):
        other = new_test_user(
            self.env,
            login="eyrie_rpc_other",
            groups="eyrie_deployment.group_eyrie_user",
        )
        theirs = (
            self.env["eyrie.deployment"]
            .with_user(other)
            .create(
                {"name": "theirs", "deployment_type": "odoo", "scope_id": self.scope.id}
            )
        )
        read = self._read(theirs.id, ["name", "can_act"])
        self.assertEqual(read["name"], "theirs")
        self.assertFalse(read["can_act"])
        for method, what in (
            ("action_deploy", "deploy"),
            ("action_open_clone", "duplicate"),
            ("action_view_logs", "see the logs of"),
        ):
            with (
                self.subTest(method),
                self.assertRaisesRegex(
                    Fault, f"You cannot {what} deployment theirs: it is eyrie_rpc_other"
                ),
            ):
                self.rpc("eyrie.deployment", method, [theirs.id])
        self.assertEqual(theirs.state, "draft")
        self.assertFalse(theirs.job_ids)
