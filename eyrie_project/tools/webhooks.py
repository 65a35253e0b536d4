"""Push webhooks of GitHub, GitLab, Gitea and Forgejo: who sent one, whether
its signature holds, and the branch events it tells, as plain data.

Nothing here trusts the body before ``verify`` said it is the project's;
every name read from it is checked as the values of a deployment are.
"""

import hashlib
import hmac
import json
import re
from urllib.parse import urlsplit

from odoo.addons.eyrie_deployment.tools.git_sources import COMMIT_RE, check_ref
from odoo.addons.eyrie_deployment.tools.values import ValuesError

ZERO_COMMIT = "0" * 40
MAX_TEXT = 200
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]+")

# (provider, event header, signature header, delivery header): the first
# whose event header is present. Gitea and Forgejo also send GitHub's
# headers, so they come first.
PROVIDERS = (
    ("forgejo", "X-Forgejo-Event", "X-Forgejo-Signature", "X-Forgejo-Delivery"),
    ("gitea", "X-Gitea-Event", "X-Gitea-Signature", "X-Gitea-Delivery"),
    ("gitlab", "X-Gitlab-Event", "X-Gitlab-Token", "X-Gitlab-Event-UUID"),
    ("github", "X-GitHub-Event", "X-Hub-Signature-256", "X-GitHub-Delivery"),
)


class WebhookRefused(Exception):
    """The request is not one to act on: ``status`` is the HTTP status to
    answer, the message says why (never a secret)."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


class Delivery:
    """One webhook request: its provider, event, delivery id and body."""

    def __init__(self, headers, body):
        self.body = body
        self.digest = hashlib.sha256(body).hexdigest()
        for provider, event, signature, delivery in PROVIDERS:
            if headers.get(event):
                self.provider = provider
                self.event = headers.get(event).strip()
                self.signature = headers.get(signature) or ""
                # Gitea and Forgejo sign as GitHub does too.
                self.hub_signature = headers.get("X-Hub-Signature-256") or ""
                self.delivery = (headers.get(delivery) or "")[:100]
                return
        raise WebhookRefused(
            400,
            "no event header: send X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event "
            "or X-Forgejo-Event",
        )

    def verify(self, secret):
        """Raise ``WebhookRefused`` (401) unless the request is signed with
        ``secret``: GitHub's HMAC-SHA256 of the body (``sha256=<hex>``),
        Gitea's and Forgejo's (hex), or GitLab's token."""
        if not secret:
            raise WebhookRefused(404, "the project takes no webhook")
        if self.provider == "gitlab":
            if not hmac.compare_digest(self.signature.encode(), secret.encode()):
                raise WebhookRefused(401, "X-Gitlab-Token is not the project's secret")
            return
        expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        given = self.signature
        if self.provider == "github" or not given:
            given = self.hub_signature.removeprefix("sha256=")
            if self.provider == "github" and not self.hub_signature.startswith(
                "sha256="
            ):
                given = ""
        if not given or not hmac.compare_digest(
            given.lower().encode(), expected.encode()
        ):
            raise WebhookRefused(
                401, "the signature is not the HMAC-SHA256 of the body with the secret"
            )

    def payload(self):
        try:
            payload = json.loads(self.body)
        except (UnicodeDecodeError, ValueError):
            raise WebhookRefused(
                400, "the body is not JSON: set the webhook's content type to JSON"
            ) from None
        if not isinstance(payload, dict):
            raise WebhookRefused(400, "the body is not a JSON object")
        return payload


def repository_key(url):
    """(host, path) of a git URL, https or scp-like ssh, without ``.git``."""
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    scp = re.match(r"^[\w.-]+@([\w.-]+):(?!//)(.+)$", url)
    if scp:
        host, path = scp.groups()
    else:
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path
    path = path.strip("/").removesuffix(".git").lower()
    return (host.lower(), path) if host and path else None


def payload_repositories(provider, payload):
    """The (host, path) keys of the repository a payload is about."""
    if provider == "gitlab":
        holder = payload.get("project") or payload.get("repository") or {}
        urls = [holder.get(k) for k in ("git_http_url", "git_ssh_url", "web_url")]
    else:
        holder = payload.get("repository") or {}
        urls = [holder.get(k) for k in ("clone_url", "ssh_url", "html_url")]
    return {key for key in map(repository_key, urls) if key}


def _text(value, limit=MAX_TEXT):
    if not isinstance(value, str):
        return ""
    return CONTROL_RE.sub(" ", value.strip().splitlines()[0] if value.strip() else "")[
        :limit
    ]


def _branch(name):
    try:
        check_ref(name, "branch")
    except ValuesError as error:
        raise WebhookRefused(400, f"malformed branch name: {error}") from None
    if len(name) > MAX_TEXT:
        raise WebhookRefused(400, "malformed branch name: too long")
    return name


def _commit(sha):
    if not isinstance(sha, str) or not COMMIT_RE.match(sha):
        raise WebhookRefused(400, "malformed commit: not a 40-digit hex sha")
    return sha


def _event(kind, branch, commit="", author="", message="", pull_request=0):
    return {
        "kind": kind,
        "branch": _branch(branch),
        "commit": _commit(commit) if commit else "",
        "author": _text(author, 100),
        "message": _text(message),
        "pull_request": pull_request if isinstance(pull_request, int) else 0,
    }


def _author(commit):
    author = (commit or {}).get("author") or {}
    name = author.get("name") or author.get("username") or ""
    email = author.get("email")
    return f"{name} <{email}>" if name and email else name


def events(provider, event, payload):
    """(events, reason): the branch events a delivery tells — dicts with
    ``kind`` (push, open, delete), ``branch``, ``commit``, ``author``,
    ``message`` and ``pull_request`` — or none and why it is ignored."""
    try:
        if provider == "gitlab":
            return _gitlab_events(event, payload)
        return _github_events(event, payload)
    except (AttributeError, TypeError, KeyError):
        raise WebhookRefused(
            400, f"malformed {event} payload: a field is missing or of another type"
        ) from None


def _github_events(event, payload):
    if event == "ping":
        return [], "ping"
    if event == "push":
        ref = payload["ref"]
        if not ref.startswith("refs/heads/"):
            return [], f"{ref} is not a branch"
        branch = ref.removeprefix("refs/heads/")
        after = payload.get("after") or ZERO_COMMIT
        if payload.get("deleted") or after == ZERO_COMMIT:
            return [_event("delete", branch)], ""
        head = payload.get("head_commit") or (payload.get("commits") or [{}])[-1]
        return [
            _event("push", branch, after, _author(head), (head or {}).get("message"))
        ], ""
    if event in ("create", "delete"):
        if payload.get("ref_type") != "branch":
            return [], f"a {payload.get('ref_type')} {event}d"
        kind = "open" if event == "create" else "delete"
        return [_event(kind, payload["ref"], payload.get("sha") or "")], ""
    if event == "pull_request":
        request = payload["pull_request"]
        head = request["head"]
        own = (payload.get("repository") or {}).get("full_name")
        if ((head.get("repo") or {}).get("full_name")) != own:
            return [], "a pull request from a fork: its code is not the project's"
        action = payload.get("action")
        number = payload.get("number") or request.get("number") or 0
        login = (request.get("user") or {}).get("login") or ""
        if action in ("opened", "reopened", "synchronize", "synchronized"):
            return [
                _event(
                    "open",
                    head["ref"],
                    head.get("sha") or "",
                    login,
                    request.get("title"),
                    number,
                )
            ], ""
        if action == "closed":
            return [_event("delete", head["ref"], pull_request=number)], ""
        return [], f"pull request {action}"
    return [], f"event {event}"


def _gitlab_events(event, payload):
    kind = payload.get("object_kind")
    if event == "Push Hook" and kind == "push":
        branch = payload["ref"].removeprefix("refs/heads/")
        after = payload.get("after") or ZERO_COMMIT
        if after == ZERO_COMMIT:
            return [_event("delete", branch)], ""
        commits = payload.get("commits") or []
        head = next((c for c in commits if c.get("id") == after), None) or (
            commits[-1] if commits else {}
        )
        author = _author(head) or payload.get("user_name") or ""
        return [_event("push", branch, after, author, head.get("message"))], ""
    if event == "Merge Request Hook" and kind == "merge_request":
        request = payload["object_attributes"]
        if request.get("source_project_id") != request.get("target_project_id"):
            return [], "a merge request from a fork: its code is not the project's"
        action = request.get("action")
        number = request.get("iid") or 0
        last = request.get("last_commit") or {}
        if action in ("open", "reopen", "update"):
            return [
                _event(
                    "open",
                    request["source_branch"],
                    last.get("id") or "",
                    _author(last),
                    request.get("title"),
                    number,
                )
            ], ""
        if action in ("close", "merge"):
            return [_event("delete", request["source_branch"], pull_request=number)], ""
        return [], f"merge request {action}"
    return [], f"event {event}"
