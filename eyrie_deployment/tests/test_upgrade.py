"""What the upgrade to 18.0.2.0.0 does to a database installed before: the
shipped steps nobody edited get the templates that render values as data;
an edited one keeps its text."""

from odoo.tests import tagged
from odoo.tools import file_open, mute_logger

from ..tools.shipped_books import (
    SHIPPED_IN_18_0_4,
    refresh_unmodified_steps,
    shipped_templates,
)
from .common import EyrieCase

# The DNS step exactly as 18.0.1.0.0 shipped it: its values rendered bare.
DNS_STEP_18_0_1 = (
    "apiVersion: externaldns.k8s.io/v1alpha1\nkind: DNSEndpoint\nmetadata:\n"
    "  name: odoo\nspec:\n  endpoints:\n    - dnsName: {{ values.hostname }}\n"
    "      recordType: {{ values.dns_record_type }}\n"
    "      recordTTL: {{ values.dns_ttl }}\n      targets: [{{ values.dns_target }}]\n"
)

# The clone's preparation step exactly as 18.0.4.0.0 shipped it.
CLONE_JOB_18_0_4 = (
    "eyrie_deployment/tests/data/odoo_initialize_clone_job_18.0.4.0.0.txt"
)


@tagged("post_install", "-at_install")
class TestUpgrade(EyrieCase):
    def test_unedited_shipped_steps_get_the_new_templates(self):
        dns = self.env.ref("eyrie_deployment.eyrie_book_odoo_deploy_dns")
        network = self.env.ref("eyrie_deployment.eyrie_book_odoo_deploy_network")
        dns.template = DNS_STEP_18_0_1
        network.template = "# edited by a manager\n" + network.template
        edited = network.template
        with mute_logger("odoo.addons.eyrie_deployment.tools.shipped_books"):
            refreshed, kept = refresh_unmodified_steps(self.env)
        self.assertEqual(refreshed, ["eyrie_book_odoo_deploy_dns"])
        self.assertEqual(kept, ["eyrie_book_odoo_deploy_network"])
        self.assertEqual(
            dns.template, shipped_templates()["eyrie_book_odoo_deploy_dns"]
        )
        self.assertIn("recordTTL: {{ values.dns_ttl | to_json }}", dns.template)
        self.assertEqual(network.template, edited)
        # Once done, nothing more to do.
        with mute_logger("odoo.addons.eyrie_deployment.tools.shipped_books"):
            self.assertEqual(refresh_unmodified_steps(self.env)[0], [])

    def test_clone_preparation_steps_get_the_filestore_archive(self):
        """18.0.5.0.0: the clone's preparation steps as 18.0.4.0.0 shipped
        them get the new templates; one a manager edited keeps its text."""
        job = self.env.ref("eyrie_deployment.eyrie_book_odoo_initialize_clone_job")
        done = self.env.ref(
            "eyrie_deployment.eyrie_book_odoo_initialize_clone_job_done"
        )
        with file_open(CLONE_JOB_18_0_4) as handle:
            job.template = handle.read()
        done.template = "# edited by a manager\n" + done.template
        edited = done.template
        with mute_logger("odoo.addons.eyrie_deployment.tools.shipped_books"):
            refreshed, kept = refresh_unmodified_steps(
                self.env, SHIPPED_IN_18_0_4, change="the test's"
            )
        self.assertEqual(refreshed, ["eyrie_book_odoo_initialize_clone_job"])
        self.assertEqual(kept, ["eyrie_book_odoo_initialize_clone_job_done"])
        self.assertIn("tar -xzf /archive/filestore.tar.gz", job.template)
        self.assertEqual(done.template, edited)
