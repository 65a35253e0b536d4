"""The branches' kanban in a browser: a member drags a development branch
into Staging (an Odoo tour, run by Chromium)."""

import unittest

from odoo.tests import tagged

from .common import ProjectCase


@tagged("post_install", "-at_install")
class TestBranchesTour(ProjectCase):
    def test_a_member_drags_a_branch_to_staging(self):
        self.project.name = "Tour Shop"
        self._deploy_production()
        self._git_push("feature-tour", self.shas[1])
        self.project.action_check_commits()
        self._settle()
        branch = self._branch("feature-tour")
        development = branch.deployment_id
        self.assertEqual(branch.test_state, "failed")
        try:
            self.start_tour(
                "/odoo/action-eyrie_project.eyrie_project_action",
                "eyrie_project_branches_tour",
                login=self.LOGIN,
                timeout=120,
            )
        except unittest.SkipTest as skip:
            # Skipped by HttpCase without Chrome: this test must run.
            self.fail(f"The browser tour could not run ({skip}); install Chromium.")
        self.env.invalidate_all()
        self.assertEqual(branch.stage, "staging")
        self.assertEqual(branch.deployment_id.cloned_from_id, self.production)
        self.assertNotEqual(branch.deployment_id, development)
        self.assertIn(f"moved to Staging by {self.user.name}", self._notes())
