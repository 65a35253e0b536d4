from psycopg2 import IntegrityError

from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from .common import EyrieCase


@tagged("post_install", "-at_install")
class TestTemplates(EyrieCase):
    def _deploy_with(self, template, kind="apply", values="{}", name="tpl"):
        book = self._make_book("Custom", [("Custom step", kind, template)])
        deployment = self._make_deployment(name, values=values)
        self._set_book(deployment, "initialize", book)
        deployment.action_deploy()
        self._run_jobs()
        return deployment, deployment.job_ids.sorted("id")[:1]

    def test_invalid_jinja_refused_on_save(self):
        with self.assertRaisesMessage(
            ValidationError, r"step 'Bad' is not valid Jinja2 \(line 2: .*\)"
        ):
            self.book_deploy.write(
                {
                    "step_ids": [
                        (
                            0,
                            0,
                            {
                                "name": "Bad",
                                "kind": "apply",
                                "template": "a: 1\nb: {{ x ",
                            },
                        )
                    ]
                }
            )
        self.assertEqual(len(self.book_deploy.step_ids), 1)

    def test_template_sees_plain_data(self):
        _deployment, job = self._deploy_with(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: {{ deployment.type }}-{{ scope.id }}-{{ values.size }}\n"
            "  namespace: {{ namespace }}\n",
            values='{"size": "10Gi"}',
        )
        self.assertEqual(job.state, "done", job.error_message)
        expected = f"ConfigMap odoo-{self.scope.id}-10Gi in namespace tpl"
        self.assertIn(expected, job.log)

    def test_templates_cannot_reach_the_orm(self):
        _deployment, job = self._deploy_with(
            "kind: ConfigMap\napiVersion: v1\nmetadata:\n  name: {{ deployment.env }}\n"
        )
        self.assertEqual(job.state, "failed")
        self.assertIn("has no attribute 'env'", job.error_message)

    def test_rendering_that_breaks_yaml_fails_the_job(self):
        deployment, job = self._deploy_with(
            "kind: ConfigMap\nmetadata:\n  name: {{ values.name }}\n",
            values='{"name": "a: b: c"}',
        )
        self.assertEqual(job.state, "failed")
        self.assertIn("Step 1 'Custom step' (apply) failed", deployment.error_message)
        self.assertIn("not valid YAML", deployment.error_message)

    def test_objects_are_validated_per_kind(self):
        cases = [
            (
                "apply",
                "kind: ConfigMap\nmetadata:\n  name: x\n",
                "'apiVersion' is missing",
            ),
            ("apply", "apiVersion: v1\nmetadata:\n  name: x\n", "'kind' is missing"),
            ("apply", "- 1\n- 2\n", "expected a mapping"),
            (
                "scale",
                "kind: Deployment\nmetadata:\n  name: x\nspec:\n  replicas: -1\n",
                "spec.replicas",
            ),
            (
                "scale",
                "kind: Service\nmetadata:\n  name: x\nspec:\n  replicas: 1\n",
                "not Service",
            ),
            (
                "wait",
                "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n"
                + "wait:\n  for: ready\n",
                "'wait.for' must be one of",
            ),
        ]
        for index, (kind, template, message) in enumerate(cases):
            with self.subTest(kind=kind, message=message):
                deployment, job = self._deploy_with(
                    template, kind=kind, name=f"case-{index}"
                )
                self.assertEqual(job.state, "failed")
                self.assertIn(message, deployment.error_message)

    def test_secret_data_never_reaches_the_log(self):
        _deployment, job = self._deploy_with(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\n"
            "stringData:\n  password: {{ values.password }}\n"
            "data:\n  token: {{ values.password | b64encode }}\n",
            values='{"password": "hunter2-s3cret"}',
        )
        self.assertEqual(job.state, "done")
        self.assertIn("would apply Secret creds in namespace tpl", job.log)
        self.assertNotIn("hunter2", job.log)
        self.assertNotIn("aHVudGVyMi1zM2NyZXQ", job.log)

    def test_values_must_be_a_json_object(self):
        with self.assertRaisesMessage(ValidationError, "not valid JSON"):
            self._make_deployment("v1", values="{replicas: 2}")
        with self.assertRaisesMessage(
            ValidationError, "must be a JSON object.*not a list"
        ):
            self._make_deployment("v2", values="[1, 2]")

    def test_namespace_is_a_dns_label(self):
        deployment = self._make_deployment("Acme Staging_2!")
        self.assertEqual(deployment.namespace, "acme-staging-2")
        with self.assertRaisesMessage(ValidationError, "not a valid DNS-1123 label"):
            self._make_deployment("bad", namespace="Not_Valid")
        with (
            mute_logger("odoo.sql_db"),
            self.assertRaisesMessage(
                IntegrityError, "eyrie_deployment_namespace_cluster_uniq"
            ),
        ):
            self._make_deployment("acme staging 2")
