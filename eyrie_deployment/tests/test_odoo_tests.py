"""The tests of an Odoo deployment's modules ('tests'), run by a Job after
a deploy that changes code: for real by Odoo 18.0 on a small addon with one
passing and one failing test, and their outcome on the emulated cluster."""

import json

from odoo.tests import tagged

from .common import EyrieCase, ShippedScopeMixin
from .kube_common import JOB_FAILED, KubernetesCase, OperatorsMixin, job_pod
from .private_postgres import PrivatePostgres, free_port
from .test_code import CodeContainerMixin, CodeScopeMixin
from .tested_addon import create_shop

RESULT = "EYRIE-TESTS-RESULT: 1 failed, 0 error(s) of 2 tests"


def _shop_values(url, tests=True):
    return json.dumps(
        {
            "repositories": [{"url": url, "ref": "main", "credential": "peer"}],
            "modules": ["acme_shop"],
            "demo": True,
            "tests": ["acme_shop"] if tests else [],
        }
    )


@tagged("post_install", "-at_install")
class TestModuleTestsForReal(
    CodeScopeMixin, CodeContainerMixin, ShippedScopeMixin, EyrieCase
):
    """The rendered test Job run by a real Odoo 18.0 on a private
    PostgreSQL: the addon's tests on a throwaway database."""

    def test_one_test_passes_one_fails_and_the_run_says_which(self):
        create_shop(self.git, "shop-real")
        odoo = self._create("shop-dev", values=_shop_values(self.git.url("shop-real")))
        odoo._ensure_credentials(("admin_password", "db_password"))
        password = odoo.sudo().credentials["db_password"]
        values = self._code_values(odoo)
        rendered = self._rendered(odoo, "deploy", values)
        # The upgrade Job of a development build installs with demo data.
        upgrade = rendered["Job", "odoo-upgrade"]["spec"]["template"]["spec"]
        self.assertIn({"name": "DEMO", "value": "1"}, upgrade["containers"][0]["env"])
        pod = rendered["Job", "odoo-tests"]["spec"]["template"]["spec"]
        with PrivatePostgres() as pg:
            pg.create_role("odoo", password)
            mounts = self._mounts("tests")
            self._fetch(rendered, pod["initContainers"][0], mounts)
            container = pod["containers"][0]
            env = self._env_of(container, rendered, pg)
            env["ODOO_RC"] = self._image_config(
                free_port(), mounts["/var/lib/odoo"], "tests.conf"
            )
            result = self._run_container(container, env, mounts)
            databases = {
                row[0]
                for row in pg.execute(
                    "SELECT datname FROM pg_database",
                    user="odoo",
                    password=password,
                    dbname="postgres",
                )
            }
        log = result.stdout
        # Failing tests are the run's result, not the Job's failure.
        self.assertEqual(result.returncode, 0, log[-3000:])
        self.assertIn(RESULT, log)
        self.assertNotIn(f"{values['db_name']}-tests", databases)
        found = self.env["eyrie.test.run"]._fields_from_log(log)
        self.assertEqual(found["state"], "failed")
        self.assertEqual((found["tests_run"], found["tests_failed"]), (2, 1))
        self.assertIn("FAIL: TestShop.test_the_checkout_is_fast", found["failures"])
        self.assertNotIn("test_the_shop_opens", found["failures"])


@tagged("post_install", "-at_install")
class TestModuleTestsOutcome(
    CodeScopeMixin, OperatorsMixin, ShippedScopeMixin, KubernetesCase
):
    """The test run's outcome on the emulated cluster: a failing test marks
    the deployment, which serves; a Job that could not run says so."""

    def _tests_pod(self, odoo, log):
        name = f"odoo-tests-{odoo.id}"
        job_pod(self.emulator, odoo.namespace, "odoo-tests", "tests", log, name)

    def test_a_failing_test_marks_the_deployment_it_does_not_stop_it(self):
        create_shop(self.git, "shop-outcome")
        odoo = self._create(
            "shop-tested", values=_shop_values(self.git.url("shop-outcome"))
        )
        odoo.action_deploy()
        played = []

        def play(_round):
            self.emulator.play_operators()
            job = self.emulator.get("batch/v1", "Job", "odoo-tests", odoo.namespace)
            if job and not played:
                played.append(job)
                self._tests_pod(
                    odoo,
                    "odoo.addons.acme_shop.tests.test_shop: FAIL: "
                    "TestShop.test_the_checkout_is_fast\n"
                    " ERROR x odoo.addons.acme_shop.tests.test_shop: FAIL: "
                    "TestShop.test_the_checkout_is_fast\n" + RESULT + "\n",
                )

        self.assertEqual(odoo.test_state, "running")
        self._settle(between_rounds=play)
        self.assertTrue(played, "no test Job was created")
        self.assertEqual(odoo.state, "deploy")
        self.assertEqual(odoo.test_state, "failed")
        run = odoo.test_run_ids
        self.assertEqual((run.tests_passed, run.tests_failed), (1, 1))
        self.assertEqual(run.failures, "FAIL: TestShop.test_the_checkout_is_fast")
        self.assertIn("Tests of acme_shop: 1 passed, 1 failed", self._messages(odoo))

        # Nothing changed since: a deploy runs no tests again.
        self._run(odoo, "deploy")
        self.assertEqual(len(odoo.test_run_ids), 1)

    def test_a_test_job_that_cannot_run_marks_the_run_not_the_deploy(self):
        create_shop(self.git, "shop-broken")
        odoo = self._create(
            "shop-broken", values=_shop_values(self.git.url("shop-broken"))
        )
        odoo.action_deploy()

        def fail_tests(_round):
            job = self.emulator.get("batch/v1", "Job", "odoo-tests", odoo.namespace)
            if job and not (job.get("status") or {}).get("failed"):
                self.emulator.set_status(
                    "batch/v1", "Job", "odoo-tests", JOB_FAILED, odoo.namespace
                )
            else:
                self.emulator.play_operators()

        self._settle(between_rounds=fail_tests)
        self.assertEqual(odoo.state, "deploy", odoo.error_message)
        self.assertEqual(odoo.test_state, "error")
        self.assertIn("odoo-tests", odoo.test_run_ids.message)

    def test_tests_are_module_names(self):
        odoo = self._create("shop-values")
        with self.assertRaisesMessage(Exception, "'tests' holds '-x'"):
            odoo.values = json.dumps({"tests": ["-x"]})
            odoo.flush_recordset()
