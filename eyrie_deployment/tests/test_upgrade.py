"""What the upgrade to 18.0.2.0.0 does to a database installed before: the
shipped steps nobody edited get the templates that render values as data;
an edited one keeps its text."""

import importlib.util

from odoo.tests import tagged
from odoo.tools import file_open, mute_logger
from odoo.tools.misc import file_path

from ..tools.shipped_books import (
    SHIPPED_IN_18_0_4,
    SHIPPED_IN_18_0_5,
    SHIPPED_IN_18_0_6,
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

# The restore's database step exactly as 18.0.5.0.0 shipped it.
RESTORE_18_0_5 = "eyrie_deployment/tests/data/odoo_restore_database_18.0.5.0.0.txt"

# The mail catcher's step exactly as 18.0.6.0.0 shipped it.
MAIL_CATCHER_18_0_6 = (
    "eyrie_deployment/tests/data/odoo_deploy_mail_catcher_18.0.6.0.0.txt"
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

    def test_restore_steps_restore_the_backups_set(self):
        """18.0.6.0.0: the restore step as 18.0.5.0.0 shipped it (a point in
        time) gets the template that restores the backup's own set."""
        step = self.env.ref("eyrie_deployment.eyrie_book_odoo_restore_database")
        with file_open(RESTORE_18_0_5) as handle:
            step.template = handle.read()
        with mute_logger("odoo.addons.eyrie_deployment.tools.shipped_books"):
            refreshed, kept = refresh_unmodified_steps(
                self.env, SHIPPED_IN_18_0_5, change="the test's"
            )
        self.assertIn("eyrie_book_odoo_restore_database", refreshed)
        self.assertEqual(kept, [])
        self.assertIn("options: {{ values.restore_options | to_json }}", step.template)

    def test_steps_that_may_skip_get_their_reason(self):
        """18.0.7.0.0: a step as 18.0.6.0.0 shipped it gets the template
        whose comment says why it is skipped; the job log then says it."""
        step = self.env.ref("eyrie_deployment.eyrie_book_odoo_deploy_mail_catcher")
        with file_open(MAIL_CATCHER_18_0_6) as handle:
            step.template = handle.read()
        self.assertNotIn("{# skipped:", step.template)
        with mute_logger("odoo.addons.eyrie_deployment.tools.shipped_books"):
            refreshed, kept = refresh_unmodified_steps(
                self.env, SHIPPED_IN_18_0_6, change="the test's"
            )
        self.assertIn("eyrie_book_odoo_deploy_mail_catcher", refreshed)
        self.assertEqual(kept, [])
        self.assertIn("{# skipped:", step.template)

    def test_odoo_on_a_shared_database_keeps_its_role_and_is_allowed(self):
        """18.0.6.0.0: an Odoo deployed on a shared PostgreSQL deployment
        before roles of their own keeps the role it used, and its database
        allows it; a draft gets a role of its own."""
        db = self._make_deployment("old-db", "pgo")
        live = self._make_deployment("old-live")
        live.write({"database_mode": "shared", "database_deployment_id": db.id})
        draft = self._make_deployment("old-draft")
        draft.write({"database_mode": "shared", "database_deployment_id": db.id})
        db.database_consumer_ids = [(5, 0, 0)]
        live.sudo().write({"repository_state": "deploy", "state": "deploy"})
        spec = importlib.util.spec_from_file_location(
            "eyrie_migration_18_0_6",
            file_path("eyrie_deployment/migrations/18.0.6.0.0/post-migration.py"),
        )
        migration = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(migration)
        with mute_logger("odoo.addons.eyrie_deployment.tools.shipped_books"):
            migration.migrate(self.env.cr, "18.0.5.0.0")
        self.assertEqual(db.database_consumer_ids, live | draft)
        self.assertEqual(live.database_role, "odoo")
        self.assertEqual(draft.database_role, f"eyrie-odoo-{draft.id}")
