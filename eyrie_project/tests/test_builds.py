"""Branches become environments, end to end: pushes to a repository on a
git peer, told by webhooks over HTTP, build production, a neutralized
staging clone and a tested development build on the emulated cluster; each
follows its pushes and goes away with its branch, under its scope's rules."""

import json

from odoo.exceptions import AccessError, UserError
from odoo.tests import tagged

from odoo.addons.eyrie_deployment.tests.kube_common import BUCKET
from odoo.addons.eyrie_deployment.tests.queue_jobs import run_queue_jobs

from .common import ProjectCase, payload


@tagged("post_install", "-at_install")
class TestProjectBuilds(ProjectCase):
    def _push(self, branch, sha, provider="github"):
        """Move ``branch`` on the peer to ``sha``, and tell Eyrie."""
        self._git_push(branch, sha)
        name, event = {
            "github": ("github_push", "push"),
            "gitlab": ("gitlab_push", "Push Hook"),
            "gitea": ("gitea_push", "push"),
        }[provider]
        body = payload(name, self.url, sha, branch=branch)
        body["after"] = sha
        if provider == "gitlab":
            body["checkout_sha"] = sha
        response = self._post(provider, event, body)
        self.assertEqual(response.status_code, 202, response.text)

    def _own_commit(self, deployment):
        values = deployment._effective_values()
        return deployment._odoo_pin(values["repositories"])[0]["commit"]

    def test_a_staging_branch_waits_for_production_then_builds(self):
        _sha1, sha2, _sha3 = self.shas
        # Pushed before production was ever deployed: it waits, and builds
        # once production's first deploy ends.
        self._push("staging-early", self.shas[0])
        self._settle()
        early = self._branch("staging-early")
        self.assertFalse(early.deployment_id)
        self.assertIn("no deployed Production", early.build_message)
        self._deploy_production()
        self.assertEqual(early.deployment_id.cloned_from_id, self.production)
        self.assertEqual(early.deployment_id.state, "deploy")
        # Found together: production updates, and the staging branch, a
        # clone of production, cannot start while production's job runs.
        self._git_push("main", sha2)
        self._git_push("staging-wait", sha2)
        self.assertEqual(self.project.action_check_commits(), 2)
        run_queue_jobs(self.env, also=("_apply_events",), limit=1)
        branch = self._branch("staging-wait")
        self.assertIn("in progress", branch.build_message)
        # Production's deploy ends: the staging build starts by itself.
        self._settle()
        self.assertEqual(self._branch("main").deployed_commit, sha2)
        self.assertEqual(branch.deployment_id.cloned_from_id, self.production)
        self.assertEqual(branch.deployment_id.state, "deploy")
        self.assertIn("production is ready", self._notes())
        self.assertIn("updating Acme production", self._notes())

    def test_three_branches_follow_their_pushes_and_go_with_their_branch(self):
        _sha1, sha2, sha3 = self.shas
        self._deploy_production()

        # Two new branches, told by GitHub and GitLab.
        self._push("feature-x", sha2)
        self._push("staging-1", sha2, provider="gitlab")
        self._settle()

        dev = self._branch("feature-x")
        self.assertEqual(dev.stage, "development")
        build = dev.deployment_id
        self.assertEqual(build.scope_id, self.development_scope)
        self.assertEqual(build.state, "deploy", build.error_message)
        values = json.loads(build.values)
        self.assertEqual(values["modules"], ["acme_shop"])
        self.assertTrue(values["demo"])
        self.assertEqual(values["tests"], ["acme_shop"])
        self.assertEqual(dev.deployed_commit, sha2)
        self.assertEqual(
            (dev.commit, dev.message), (sha2, "Add the shop module's tests")
        )
        self.assertIn("Alice", dev.author)
        # The build says which branch, commit and change it runs.
        self.assertEqual(
            (build.project_id, build.project_branch_id, build.project_commit),
            (self.project, dev, sha2[:12]),
        )
        self.assertEqual(build.project_commit_message, "Add the shop module's tests")
        # The tests ran after the deploy: a failure marks the build.
        self.assertEqual(dev.test_state, "failed")
        self.assertIn("1 passed, 1 failed", dev.test_summary)
        self.assertTrue(dev.url.startswith("http://"))

        staging = self._branch("staging-1")
        self.assertEqual(staging.stage, "staging")
        clone = staging.deployment_id
        self.assertEqual(clone.cloned_from_id, self.production)
        self.assertTrue(clone.clone_neutralize)
        self.assertEqual(clone.scope_id, self.staging_scope)
        self.assertEqual(clone.state, "deploy", clone.error_message)
        self.assertEqual(staging.deployed_commit, sha2)
        # Neutralized before it served: the clone's preparation Job runs
        # 'odoo neutralize' before the workload is applied.
        scripts = self.emulator.get(
            "v1", "ConfigMap", "odoo-clone-scripts", clone.namespace
        )
        self.assertIn("odoo neutralize", scripts["data"]["prepare_clone.sh"])
        self.assertIn("Push of feature-x", self._notes())

        # A push to the production branch updates production.
        self._push("main", sha2)
        self._settle()
        self.assertEqual(self.production.state, "deploy")
        self.assertEqual(self._branch("main").deployed_commit, sha2)

        # A push to the development branch: the build follows, tested again.
        runs = len(build.test_run_ids)
        self._push("feature-x", sha3, provider="gitea")
        self._settle()
        self.assertEqual(dev.deployed_commit, sha3)
        self.assertEqual(len(build.test_run_ids), runs + 1)

        # The branch is deleted: its build is dropped.
        self.git.delete_branch("shop", "feature-x")
        response = self._post(
            "github", "delete", payload("github_delete", self.url, branch="feature-x")
        )
        self.assertEqual(response.status_code, 202)
        self._settle()
        self.assertFalse(build.exists())
        self.assertFalse(dev.active)
        self.assertIn("dropped", self._notes())

        # A protected build stays when its branch goes, and says why.
        clone.with_user(self.env.ref("base.user_admin")).drop_protected = True
        self.git.delete_branch("shop", "staging-1")
        body = payload("gitlab_push_delete", self.url, sha2, branch="staging-1")
        self.assertEqual(self._post("gitlab", "Push Hook", body).status_code, 202)
        self._settle()
        self.assertTrue(clone.exists())
        self.assertIn("protected", staging.build_message)

    def test_a_delete_the_repository_denies_keeps_the_build(self):
        sha1 = self.shas[0]
        self._push("feature-y", sha1)
        self._settle()
        build = self._branch("feature-y").deployment_id
        self.assertTrue(build)
        # Signed, but the branch is still there: git is asked, not believed.
        body = payload("github_delete", self.url, branch="feature-y")
        self.assertEqual(self._post("github", "delete", body).status_code, 202)
        self._settle()
        self.assertTrue(build.exists())
        self.assertIn("still has it", self._notes())
        # Production was never deployed: a push to its branch does not start it.
        self.project.action_check_commits()
        self._settle()
        self.assertEqual(self.production.state, "draft")
        self.assertIn("is not running", self._branch("main").build_message)

    def test_a_deleted_branch_takes_its_final_backup_first(self):
        # The development scope backs up to a bucket: a drop backs up first.
        self.development_scope.write(dict(BUCKET, backup_target="s3"))
        self.assertTrue(self.development_scope.backup_before_drop)
        self._push("feature-b", self.shas[1])
        self._settle()
        build = self._branch("feature-b").deployment_id
        name = build.name
        self.git.delete_branch("shop", "feature-b")
        body = payload("github_push_delete", self.url, self.shas[1], "feature-b")
        self.assertEqual(self._post("github", "push", body).status_code, 202)
        self._settle()
        self.assertFalse(build.exists())
        backup = self.env["eyrie.backup"].search([("deployment_name", "=", name)])
        self.assertEqual(backup.mapped("kind"), ["before_drop"])
        self.assertEqual(backup.state, "done")

    def test_check_for_new_commits_without_webhooks(self):
        _sha1, sha2, _sha3 = self.shas
        self._deploy_production()
        self._git_push("feature-poll", sha2)
        # As a member, over XML-RPC.
        changes = self.rpc("eyrie.project", "action_check_commits", [self.project.id])
        # The new branch, and main (production) which the project had not seen.
        self.assertEqual(changes, 2)
        self._settle()
        branch = self._branch("feature-poll")
        self.assertEqual(branch.deployed_commit, sha2)
        self.assertEqual(branch.deployment_id.state, "deploy")
        # A host no stage's scope allows is never read.
        allowed = self.development_scope.git_hosts
        for scope in (
            self.production_scope | self.staging_scope | self.development_scope
        ):
            scope.git_hosts = "github.com"
        with self.assertRaisesRegex(UserError, "localhost is not one of the Git Hosts"):
            self.project.action_check_commits()
        self.development_scope.git_hosts = allowed
        # Nothing new: nothing queued.
        self.assertEqual(
            self.rpc("eyrie.project", "action_check_commits", [self.project.id]), 0
        )
        # The periodic check finds a deleted branch, and drops its build.
        self.project.poll_commits = True
        self.git.delete_branch("shop", "feature-poll")
        self.env["eyrie.project"]._cron_poll_commits()
        self._settle()
        self.assertFalse(branch.active)
        self.assertFalse(branch.deployment_id)

    def test_drag_a_branch_from_development_to_staging(self):
        _sha1, sha2, _sha3 = self.shas
        self._deploy_production()
        self._push("feature-z", sha2)
        self._settle()
        branch = self._branch("feature-z")
        development = branch.deployment_id
        # A member drags the card (over XML-RPC as the web client writes).
        self.rpc("eyrie.project.branch", "write", [branch.id], {"stage": "staging"})
        self._settle()
        self.assertEqual(branch.stage, "staging")
        self.assertFalse(development.exists())
        self.assertEqual(branch.deployment_id.cloned_from_id, self.production)
        self.assertEqual(branch.deployment_id.state, "deploy")
        # Production is the project's, never dragged.
        with self.assertRaisesRegex(UserError, "production is the project's"):
            branch.with_user(self.user).stage = "production"


@tagged("post_install", "-at_install")
class TestProjectMembers(ProjectCase):
    """A member acts on the project's builds; a user who is not sees
    nothing of it and acts on nothing; production stays its owner's."""

    def test_members_and_outsiders(self):
        self._deploy_production()
        self._git_push("feature-m", self.shas[1])
        self.project.action_check_commits()
        self._settle()
        branch = self._branch("feature-m")
        build = branch.deployment_id
        self.assertEqual(build.state, "deploy")
        self.assertEqual(build.test_state, "failed", build.test_run_ids.read())

        # The member: sees the project and its branches, acts on the build.
        member = self.project.with_user(self.user)
        self.assertIn("feature-m", member.branch_ids.mapped("name"))
        build.with_user(self.user)._check_can_act("pause")
        self.assertEqual(
            self.rpc(
                "eyrie.project.branch",
                "search_read",
                [("project_id", "=", self.project.id), ("name", "=", "feature-m")],
                fields=["name", "stage", "commit", "deployment_id", "test_state"],
            )[0]["test_state"],
            "failed",
        )
        # ... but not production, nor the webhook's secret, nor a commit.
        with self.assertRaises(AccessError):
            self.production.with_user(self.user).action_pause()
        with self.assertRaises(AccessError):
            member.read(["webhook_secret"])
        with self.assertRaises(AccessError):
            branch.with_user(self.user).write({"commit": "f" * 40})
        with self.assertRaises(AccessError):
            build.with_user(self.user).write({"project_branch_id": False})

        # The outsider: the project is not theirs to see or act on.
        outsider = self.project.with_user(self.outsider)
        self.assertFalse(outsider.search([("id", "=", self.project.id)]))
        with self.assertRaises(AccessError):
            outsider.action_check_commits()
        with self.assertRaises(AccessError):
            branch.with_user(self.outsider).write({"stage": "staging"})
        with self.assertRaisesRegex(AccessError, "You cannot pause deployment"):
            build.with_user(self.outsider).action_pause()
        self.assertEqual(branch.stage, "development")
        self.assertEqual(build.state, "deploy")
