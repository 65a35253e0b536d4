"""What sleep and wake sends, validated against the real peers' schemas:
Kubernetes' OpenAPI (strict) for the Ingress, Services, the activity
module's ConfigMap and Secret, the workload and the waker's objects; the
Gateway API's CRDs (v1.6.1, standard channel) for the HTTPRoutes and the
ReferenceGrant."""

import kubernetes_validate

from odoo.tests import tagged

from odoo.addons.eyrie_deployment.tests.common import EyrieCase, ShippedScopeMixin
from odoo.addons.eyrie_deployment.tests.test_openapi_schemas import (
    KUBERNETES_VERSION,
)

from ..tools.waker_objects import waker_objects
from . import gateway_schemas

ACTIONS = ("deploy", "pause", "drop")
# Checked by the emulator's tests only (no schema here).
CUSTOM_KINDS = ("PostgresCluster", "DNSEndpoint")
ROUTE_TO_ODOO = "Route to Odoo (Ingress or HTTPRoute)"
MODULE_STEP = "Activity module: files and settings"


@tagged("post_install", "-at_install")
class TestRouteSchemas(ShippedScopeMixin, EyrieCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A dry run: installing renders and checks the waker's objects.
        cls.cluster.waker_eyrie_url = "https://eyrie.example.com"
        cls.cluster.action_install_waker()
        cls.shipped.write({"wake_on_request": True, "database_pause_after_seconds": 60})

    def _objects(self, deployment):
        deployment._ensure_credentials(("admin_password", "db_password"))
        values = deployment._odoo_code_values(deployment._odoo_values())
        context = deployment._template_context(values)
        for action in ACTIONS:
            book = deployment[f"deployment_{action}_book_id"]
            for step in book.step_ids.filtered(lambda s: s.kind in ("apply", "delete")):
                for obj in deployment._render_step(step, context):
                    obj.setdefault("metadata", {}).setdefault(
                        "namespace", deployment.namespace
                    )
                    yield step, obj

    def _validate(self, obj):
        if obj["apiVersion"].startswith("gateway.networking.k8s.io/"):
            gateway_schemas.validate(obj)
        else:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)

    def _check(self, deployment):
        seen = []
        for step, obj in self._objects(deployment):
            if step.kind != "apply" or obj["kind"] in CUSTOM_KINDS:
                continue
            with self.subTest(step=step.name, kind=obj["kind"]):
                try:
                    self._validate(obj)
                except (ValueError, kubernetes_validate.ValidationError) as error:
                    self.fail(f"{step.name}: {obj['kind']}: {error}")
            seen.append((step.name, obj["kind"], obj["metadata"]["name"]))
        return seen

    def test_ingress_routes_and_the_activity_module(self):
        odoo = self._create("schema-wake")
        seen = self._check(odoo)
        self.assertIn((ROUTE_TO_ODOO, "Ingress", "odoo"), seen)
        self.assertIn(("Route to the waker", "Ingress", "odoo"), seen)
        self.assertIn(("Route to the waker", "Service", "eyrie-waker"), seen)
        self.assertIn(
            (
                MODULE_STEP,
                "ConfigMap",
                "odoo-instance-module",
            ),
            seen,
        )
        self.assertIn(
            (MODULE_STEP, "Secret", "odoo-instance-module"),
            seen,
        )
        workload = next(
            obj
            for step, obj in self._objects(odoo)
            if obj["kind"] == "Deployment" and step.name == "Odoo workload"
        )
        container = workload["spec"]["template"]["spec"]["containers"][0]
        self.assertIn("--load=base,web,eyrie_instance", container["args"])
        self.assertIn(
            "/mnt/eyrie-instance/eyrie_instance",
            [mount["mountPath"] for mount in container["volumeMounts"]],
        )

    def test_httproutes_and_the_reference_grant(self):
        self.shipped.write(
            {
                "route_kind": "httproute",
                "gateway_name": "public",
                "gateway_namespace": "gateway-system",
                "gateway_listener": "https",
                "mail_catcher": True,
            }
        )
        odoo = self._create("schema-gated")
        seen = self._check(odoo)
        self.assertIn((ROUTE_TO_ODOO, "HTTPRoute", "odoo"), seen)
        self.assertIn(("Route to the waker", "HTTPRoute", "odoo"), seen)
        self.assertIn(
            ("Route to the waker", "ReferenceGrant", f"from-{odoo.namespace}"), seen
        )

    def test_a_typo_is_caught(self):
        route = {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "odoo", "namespace": "acme"},
            "spec": {"rules": [{"backendRef": [{"name": "odoo", "port": 8069}]}]},
        }
        with self.assertRaisesRegex(ValueError, "backendRef: unknown field"):
            gateway_schemas.validate(route)

    def test_the_waker_objects(self):
        objects = waker_objects(
            7, "eyrie-waker", "python:3.13-alpine", 2, "https://e.example.com", "k" * 64
        )
        for obj in objects:
            if obj["kind"] != "Namespace":
                obj["metadata"]["namespace"] = "eyrie-waker"
            with self.subTest(kind=obj["kind"]):
                kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        self.assertEqual(
            [obj["kind"] for obj in objects],
            [
                "Namespace",
                "Secret",
                "ConfigMap",
                "Deployment",
                "Service",
                "PodDisruptionBudget",
            ],
        )
