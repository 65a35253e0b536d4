"""Webhooks in the shapes GitHub, GitLab, Gitea and Forgejo send, posted
over HTTP to the Odoo test server: signed ones queue their events (the work
is never done in the request); mis-signed, replayed, oversized, malformed
or misdirected ones get a 4xx and a log line, and change nothing."""

import json

from odoo.tests import tagged

from ..tools.webhooks import WebhookRefused, events
from .common import SECRET, ProjectCase, payload

LOGGER = "odoo.addons.eyrie_project.controllers.webhook"


@tagged("post_install", "-at_install")
class TestWebhookPayloads(ProjectCase):
    """The branch events each documented payload tells."""

    def _events(self, provider, event, name, sha="a" * 40):
        return events(provider, event, payload(name, self.url, sha))

    def test_pushes_of_each_host(self):
        for provider, event, name in (
            ("github", "push", "github_push"),
            ("gitlab", "Push Hook", "gitlab_push"),
            ("gitea", "push", "gitea_push"),
            ("forgejo", "push", "gitea_push"),
        ):
            with self.subTest(provider=provider):
                found, _reason = self._events(provider, event, name)
                self.assertEqual(len(found), 1)
                self.assertEqual(found[0]["kind"], "push")
                self.assertEqual(found[0]["branch"], "feature-x")
                self.assertEqual(found[0]["commit"], "a" * 40)
                self.assertEqual(found[0]["message"], "Add the shop module's tests")
                self.assertIn("Alice", found[0]["author"])

    def test_branch_deletes_and_closed_requests_drop(self):
        for provider, event, name, request in (
            ("github", "push", "github_push_delete", 0),
            ("github", "delete", "github_delete", 0),
            ("gitlab", "Push Hook", "gitlab_push_delete", 0),
            ("gitea", "delete", "gitea_delete", 0),
            ("github", "pull_request", "github_pull_request_closed", 7),
            ("gitlab", "Merge Request Hook", "gitlab_merge_request_closed", 7),
            ("gitea", "pull_request", "gitea_pull_request_closed", 7),
        ):
            with self.subTest(name=name):
                found, _reason = self._events(provider, event, name)
                self.assertEqual(
                    [(e["kind"], e["branch"], e["pull_request"]) for e in found],
                    [("delete", "feature-x", request)],
                )

    def test_new_branches_and_opened_requests_build(self):
        for provider, event, name, request in (
            ("github", "create", "github_create", 0),
            ("github", "pull_request", "github_pull_request_opened", 7),
            ("gitlab", "Merge Request Hook", "gitlab_merge_request_opened", 7),
            ("gitea", "pull_request", "gitea_pull_request_opened", 7),
        ):
            with self.subTest(name=name):
                found, _reason = self._events(provider, event, name)
                self.assertEqual(
                    [(e["kind"], e["branch"], e["pull_request"]) for e in found],
                    [("open", "feature-x", request)],
                )

    def test_tags_and_forks_are_ignored(self):
        found, reason = self._events("gitlab", "Tag Push Hook", "gitlab_tag_push")
        self.assertEqual(found, [])
        fork = payload("github_pull_request_opened", self.url, "a" * 40)
        fork["pull_request"]["head"]["repo"]["full_name"] = "mallory/shop"
        found, reason = events("github", "pull_request", fork)
        self.assertEqual(found, [])
        self.assertIn("fork", reason)

    def test_a_branch_name_is_data_never_an_option(self):
        body = payload("github_push", self.url, "a" * 40)
        for ref in ("refs/heads/--upload-pack=touch /tmp/x", "refs/heads/a..b"):
            body["ref"] = ref
            with self.assertRaises(WebhookRefused) as refused:
                events("github", "push", body)
            self.assertEqual(refused.exception.status, 400)


@tagged("post_install", "-at_install")
class TestWebhooksOverHttp(ProjectCase):
    def _queued(self):
        return self.env["queue.job"].search(
            [("method_name", "=", "_apply_events"), ("state", "=", "pending")]
        )

    def _deliveries(self):
        return self.env["eyrie.project.delivery"].search(
            [("project_id", "=", self.project.id)]
        )

    def test_a_signed_push_of_each_host_is_queued_not_applied(self):
        for provider, event, name in (
            ("github", "push", "github_push"),
            ("gitlab", "Push Hook", "gitlab_push"),
            ("gitea", "push", "gitea_push"),
            ("forgejo", "push", "gitea_push"),
        ):
            with self.subTest(provider=provider):
                before = len(self._queued())
                body = payload(name, self.url, self.shas[1], branch=f"f-{provider}")
                response = self._post(provider, event, body)
                self.assertEqual(response.status_code, 202, response.text)
                self.assertEqual(response.json()["status"], "queued")
                self.assertEqual(len(self._queued()), before + 1)
        # Pull requests opened and closed, branches created and deleted.
        for provider, event, name in (
            ("github", "create", "github_create"),
            ("github", "delete", "github_delete"),
            ("github", "pull_request", "github_pull_request_opened"),
            ("github", "pull_request", "github_pull_request_closed"),
            ("gitlab", "Merge Request Hook", "gitlab_merge_request_opened"),
            ("gitlab", "Merge Request Hook", "gitlab_merge_request_closed"),
            ("gitea", "pull_request", "gitea_pull_request_opened"),
            ("gitea", "pull_request", "gitea_pull_request_closed"),
            ("gitea", "delete", "gitea_delete"),
        ):
            with self.subTest(name=name):
                body = payload(name, self.url, self.shas[1])
                response = self._post(provider, event, body)
                self.assertEqual(response.status_code, 202, response.text)
        # Queued: nothing was built in the requests.
        self.assertFalse(self.project.branch_ids)
        self.assertEqual(len(self._deliveries()), 13)
        self.assertEqual(len(self._queued()), 13)

    def test_refused_requests_change_nothing_and_are_logged(self):
        good = json.dumps(payload("github_push", self.url, self.shas[1])).encode()
        cases = [
            ("mis-signed", "github", "push", good, {"secret": "not-the-secret"}, 401),
            ("gitlab token", "gitlab", "Push Hook", good, {"secret": "nope"}, 401),
            ("gitea mis-signed", "gitea", "push", good, {"secret": "nope"}, 401),
            ("not json", "github", "push", b"ref=main", {}, 400),
            ("not an object", "github", "push", b"[1, 2]", {}, 400),
            ("oversized", "github", "push", b" " * (1024 * 1024 + 1), {}, 413),
        ]
        other = payload("github_push", "https://localhost/mallory/other.git", "a" * 40)
        cases.append(
            (
                "another repository",
                "github",
                "push",
                json.dumps(other).encode(),
                {},
                422,
            )
        )
        for label, provider, event, body, kwargs, status in cases:
            with self.subTest(label), self.assertLogs(LOGGER, "WARNING") as logs:
                response = self._post(provider, event, body, **kwargs)
                self.assertEqual(response.status_code, status, response.text)
            self.assertIn("refused", logs.output[0])
            self.assertNotIn(SECRET, "\n".join(logs.output) + response.text)
        self.assertFalse(self._queued())
        self.assertFalse(self._deliveries())

    def test_a_request_without_signature_is_refused(self):
        body = json.dumps(payload("github_push", self.url, self.shas[1])).encode()
        response = self.url_open(
            self.hook,
            data=body,
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push"},
        )
        self.assertEqual(response.status_code, 401)
        self.assertFalse(self._queued())

    def test_a_replayed_delivery_is_refused(self):
        body = json.dumps(payload("github_push", self.url, self.shas[1])).encode()
        self.assertEqual(self._post("github", "push", body).status_code, 202)
        # The same body again, under another delivery id: a replay.
        again = self._post("github", "push", body, delivery="d-2")
        self.assertEqual(again.status_code, 409)
        self.assertEqual(len(self._queued()), 1)

    def test_an_unknown_project_or_one_without_secret_is_not_found(self):
        body = json.dumps(payload("github_push", self.url, self.shas[1])).encode()
        response = self.url_open(
            "/eyrie/projects/999999/webhook",
            data=body,
            headers={"Content-Type": "application/json", "X-GitHub-Event": "push"},
        )
        self.assertEqual(response.status_code, 404)
        self.project.webhook_secret = False
        self.assertEqual(self._post("github", "push", body).status_code, 404)
        self.assertFalse(self._queued())

    def test_a_tag_or_a_ping_is_ignored(self):
        tag = payload("gitlab_tag_push", self.url, self.shas[1])
        response = self._post("gitlab", "Tag Push Hook", tag)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.json()["status"], "ignored")
        ping = self._post("github", "ping", {"zen": "Keep it logically awesome."})
        self.assertEqual(ping.status_code, 200)
        self.assertFalse(self._queued())
