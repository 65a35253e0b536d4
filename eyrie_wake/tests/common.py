"""What the sleep and wake tests share: an emulated cluster with Gateway
API's kinds and the waker installed, a scope that wakes on request and
pauses the database later, and an Odoo deployment on the shipped books."""

from odoo.addons.eyrie_deployment.tests.common import ShippedScopeMixin

GATEWAY = "gateway.networking.k8s.io"
SCOPE_VALUES = {
    "wake_on_request": True,
    "database_pause_after_seconds": 600,
}


def add_gateway_api(emulator):
    """Serve HTTPRoute and ReferenceGrant, as if Gateway API's standard
    CRDs were installed."""
    emulator.add_crd(GATEWAY, "v1", "HTTPRoute", "httproutes")
    emulator.add_crd(GATEWAY, "v1beta1", "ReferenceGrant", "referencegrants")


class WakerMixin(ShippedScopeMixin):
    """The class's cluster with its waker installed (on the emulator) and
    ``cls.shipped``, a scope of it that sleeps and wakes."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster.waker_eyrie_url = "https://eyrie.example.com"
        add_gateway_api(cls.emulator)
        cls.cluster.action_install_waker()
        cls.shipped.write(SCOPE_VALUES)

    def setUp(self):
        super().setUp()
        # The emulator starts each test empty: the waker is installed again.
        add_gateway_api(self.emulator)
        self.cluster.action_install_waker()

    def _deployed(self, name):
        odoo = self._create(name)
        self._run(odoo, "deploy")
        self.assertEqual(odoo.state, "deploy")
        return odoo

    def _get(self, api_version, kind, name, namespace):
        return self.emulator.get(api_version, kind, name, namespace=namespace)

    def _ingress_services(self, odoo):
        ingress = self._get("networking.k8s.io/v1", "Ingress", "odoo", odoo.namespace)
        return sorted(
            {
                path["backend"]["service"]["name"]
                for rule in ingress["spec"]["rules"]
                for path in rule["http"]["paths"]
            }
        )

    def _notes(self, odoo):
        """The chatter's text, newest first, in one string."""
        return " | ".join(message.body for message in odoo.message_ids)
