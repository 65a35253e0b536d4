"""A project on the emulated cluster, its repository on a git peer on
loopback: production (a deployed Odoo), a staging and a development scope,
a member (``cls.user``) and a user who is not (``cls.outsider``)."""

import contextlib
import hashlib
import hmac
import json
import os

from odoo.tests import new_test_user

from odoo.addons.eyrie_deployment.tests.kube_common import (
    KubernetesRpcCase,
    OperatorsMixin,
    job_pod,
)
from odoo.addons.eyrie_deployment.tests.queue_jobs import (
    resume_waiting_jobs,
    run_queue_jobs,
)
from odoo.addons.eyrie_deployment.tests.test_code import peer_with_credential
from odoo.addons.eyrie_deployment.tests.tested_addon import create_shop

TOKEN = "glpat-eyrie-project-token-5678"
SECRET = "eyrie-webhook-secret-0123456789"
WEBHOOKS = os.path.join(os.path.dirname(__file__), "data", "webhooks")
RESULT = "EYRIE-TESTS-RESULT: 1 failed, 0 error(s) of 2 tests"
FAILING = (
    "2026-12-07 10:00:00,000 1 ERROR x-tests odoo.addons.acme_shop.tests.test_shop: "
    "FAIL: TestShop.test_the_checkout_is_fast\n"
)
# Who sends what: (event header, delivery header), per host.
HEADERS = {
    "github": ("X-GitHub-Event", "X-GitHub-Delivery"),
    "gitlab": ("X-Gitlab-Event", "X-Gitlab-Event-UUID"),
    "gitea": ("X-Gitea-Event", "X-Gitea-Delivery"),
    "forgejo": ("X-Forgejo-Event", "X-Forgejo-Delivery"),
}


def payload(name, url, sha="", branch="feature-x"):
    """The documented payload ``name`` (tests/data/webhooks) about the
    repository ``url``, at commit ``sha``, for ``branch``."""
    with open(os.path.join(WEBHOOKS, f"{name}.json")) as handle:
        text = handle.read()
    text = text.replace("@@REPO_URL@@", url).replace("@@SHA@@", sha or "0" * 40)
    return json.loads(text.replace("feature-x", branch))


def signed(provider, event, body, secret=SECRET, delivery="d-1"):
    """The headers ``provider`` sends with ``body`` (bytes), signed."""
    event_header, delivery_header = HEADERS[provider]
    headers = {
        "Content-Type": "application/json",
        event_header: event,
        delivery_header: delivery,
    }
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if provider == "gitlab":
        headers["X-Gitlab-Token"] = secret
    elif provider == "github":
        headers["X-Hub-Signature-256"] = f"sha256={digest}"
    else:
        headers[f"X-{provider.capitalize()}-Signature"] = digest
    return headers


class ProjectCase(OperatorsMixin, KubernetesRpcCase):
    LOGIN = "eyrie_project_member"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.git, cls.credential = peer_with_credential(cls, TOKEN)
        scopes = cls.env["eyrie.scope"].create(
            [
                {
                    "name": f"{stage} of {cls.__name__}",
                    "cluster_id": cls.cluster.id,
                    "domain": f"{stage.lower()}.example.com",
                    "allow_drop": True,
                    "git_hosts": "localhost",
                    "git_credential_ids": [(6, 0, cls.credential.ids)],
                    "neutralize_clones": stage == "Staging",
                }
                for stage in ("Production", "Staging", "Development")
            ]
        )
        cls.production_scope, cls.staging_scope, cls.development_scope = scopes
        cls.shas = create_shop(cls.git, "shop")
        cls.url = cls.git.url("shop")
        cls.production = cls.env["eyrie.deployment"].create(
            {
                "name": "Acme production",
                "deployment_type": "odoo",
                "scope_id": cls.production_scope.id,
                "values": json.dumps(
                    {
                        "repositories": [
                            {"url": cls.url, "ref": "main", "credential": "peer"}
                        ],
                        "modules": ["acme_shop"],
                    }
                ),
            }
        )
        cls.outsider = new_test_user(
            cls.env,
            login="eyrie_project_outsider",
            groups="eyrie_deployment.group_eyrie_user",
        )
        cls.project = cls.env["eyrie.project"].create(
            {
                "name": f"Acme Shop {cls.__name__}",
                "repository_url": cls.url,
                "git_credential_id": cls.credential.id,
                "modules": "acme_shop",
                "production_branch": "main",
                "production_deployment_id": cls.production.id,
                "staging_pattern": "staging*",
                "staging_scope_id": cls.staging_scope.id,
                "development_pattern": "*",
                "development_scope_id": cls.development_scope.id,
                "member_ids": [(6, 0, cls.user.ids)],
                "webhook_secret": SECRET,
            }
        )
        cls.hook = f"/eyrie/projects/{cls.project.id}/webhook"

    def setUp(self):
        super().setUp()
        self.emulator.reset()
        self.emulator.seed_operator_crds()
        self.tested = set()

    def _post(self, provider, event, body, **kwargs):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        headers = signed(provider, event, body, **kwargs)
        return self.url_open(self.hook, data=body, headers=headers)

    def _play(self, _round=None):
        """The operators, and the pod of each test Job with the log of the
        shop's run: one test passes, one fails."""
        self.emulator.play_operators()
        for job in self.emulator.list("batch/v1", "Job"):
            meta = job["metadata"]
            key = (meta["namespace"], meta.get("uid") or meta.get("resourceVersion"))
            if meta["name"] != "odoo-tests" or key in self.tested:
                continue
            self.tested.add(key)
            job_pod(
                self.emulator,
                meta["namespace"],
                "odoo-tests",
                "tests",
                FAILING + RESULT + "\n",
                f"odoo-tests-{len(self.tested)}",
            )

    def _settle(self):
        """Run the queued work (branch events, then the jobs they start) to
        its end, the operators played."""
        for _round in range(40):
            run_queue_jobs(self.env, also=("_apply_events",))
            self._play()
            pending = self.env["queue.job"].search_count(
                [("state", "=", "pending"), ("method_name", "=", "_apply_events")]
            )
            if not pending and not self.env["eyrie.job"].search_count(
                [("state", "in", ("pending", "running"))]
            ):
                return
            resume_waiting_jobs(self.env)
        raise AssertionError("jobs still pending")

    def _git_push(self, branch, sha):
        """Move (or create) ``branch`` of the project's repository; a new
        one is deleted after the test (the peer is the class's)."""
        if branch != "main":
            self.addCleanup(self._delete_branch, branch)
        self.git.push("shop", sha, branch=branch)

    def _delete_branch(self, branch):
        # Deleted by the test itself, or still there.
        with contextlib.suppress(RuntimeError):
            self.git.delete_branch("shop", branch)

    def _deploy_production(self):
        self.production.action_deploy()
        self._settle()
        self.assertEqual(self.production.state, "deploy")

    def _branch(self, name):
        return (
            self.env["eyrie.project.branch"]
            .with_context(active_test=False)
            .search([("project_id", "=", self.project.id), ("name", "=", name)])
        )

    def _notes(self):
        return "\n".join(self.project.message_ids.mapped("body"))
