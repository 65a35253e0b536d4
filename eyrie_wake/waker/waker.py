# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
"""The waker: the HTTP server that stands in for paused Odoo instances.

Eyrie points a paused instance's route (Ingress or HTTPRoute) at the waker,
which answers every request for any host: it asks Eyrie to resume the instance
of that host (a signed ``POST /eyrie/wake``) and shows a waiting page that
polls until the instance answers; Eyrie then points the route back to it.
Probes, bots and WebSocket reconnections are answered without waking anything:
none of them is a person waiting. Per host, one call to Eyrie is in flight at
a time and its answer is reused for a few seconds.

Standard library only: ``python3 waker.py``. Environment: EYRIE_URL,
EYRIE_CLUSTER, EYRIE_WAKE_KEY (required); WAKER_PORT, WAKER_BIND,
WAKER_CACHE_SECONDS, WAKER_TIMEOUT.
"""

import base64
import dataclasses
import hashlib
import hmac
import html
import http.client
import http.server
import json
import math
import os
import re
import secrets
import signal
import socket
import socketserver
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import NamedTuple
from urllib.parse import urlsplit

HEALTHZ_PATH = "/.eyrie-waker/healthz"
STATUS_PATH = "/.eyrie-waker/status"
PROBE_PATHS = ("/web/health", "/healthz")
HOST_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?")
# Crawlers, link previews and monitors: they would keep an instance awake
# for nobody. Scripts and API clients (curl, wget, python-requests,
# Go-http-client...) are deliberately absent: someone runs them and waits.
BOTS = re.compile(
    r"bot|crawl|spider|slurp|facebookexternalhit|embedly|preview|monitor"
    r"|uptime|pingdom|headless|lighthouse",
    re.IGNORECASE,
)
EYRIE_STATES = ("waking", "serving", "refused", "unknown")
# Eyrie will not wake these hosts soon: clients should come back much later.
STOPPED_STATES = ("refused", "unknown")
STOPPED_RETRY_AFTER = 300
DEFAULT_RETRY_AFTER = 15
MAX_RETRY_AFTER = 3600
UNREACHABLE_MESSAGE = "The platform cannot be reached; retrying."
MAX_BODY_BYTES = 1 << 20  # request bodies read (and dropped) at most
BODY_TIMEOUT_SECONDS = 3  # to wait for each piece of a request body
MAX_ANSWER_BYTES = 64 << 10  # Eyrie's answer is a few dozen bytes
MAX_MESSAGE_CHARS = 1000
MAX_CACHED_HOSTS = 10000
# Followers wait for the leader's call, which may take a bit more than the
# timeout (it applies to each socket operation, not to the whole call).
FOLLOWER_GRACE_SECONDS = 5
COMMON_HEADERS = (
    ("X-Eyrie-Waker", "1"),
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
)


def log(message):
    sys.stderr.write(f"waker: {message}\n")
    sys.stderr.flush()


# Configuration ---------------------------------------------------------------


class ConfigError(Exception):
    pass


@dataclasses.dataclass(frozen=True)
class Config:
    wake_url: str
    cluster: str
    key: bytes = dataclasses.field(repr=False)  # never printed, even by mistake
    bind: str
    port: int
    cache_seconds: float
    timeout: float


def _env_number(environ, name, default, convert, minimum, maximum=math.inf):
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = convert(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not minimum <= value <= maximum or not math.isfinite(value):
        raise ConfigError(f"{name} is out of range: {raw!r}")
    return value


def load_config(environ):
    required = ("EYRIE_URL", "EYRIE_CLUSTER", "EYRIE_WAKE_KEY")
    missing = [name for name in required if not environ.get(name, "").strip()]
    if missing:
        raise ConfigError("missing environment variable(s): " + ", ".join(missing))
    url = environ["EYRIE_URL"].strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("EYRIE_URL must be an http:// or https:// URL")
    cluster = environ["EYRIE_CLUSTER"].strip()
    if not (cluster.isascii() and cluster.isdigit()):
        raise ConfigError("EYRIE_CLUSTER must be the cluster's id (digits)")
    return Config(
        wake_url=url + "/eyrie/wake",
        cluster=cluster,
        key=environ["EYRIE_WAKE_KEY"].encode(),
        bind=environ.get("WAKER_BIND", "").strip() or "0.0.0.0",
        port=_env_number(environ, "WAKER_PORT", 8080, int, 0, 65535),
        cache_seconds=_env_number(environ, "WAKER_CACHE_SECONDS", 5.0, float, 0),
        timeout=_env_number(environ, "WAKER_TIMEOUT", 10.0, float, 0.1),
    )


# Requests --------------------------------------------------------------------


def parse_host(value):
    """The instance's host name from a Host header, or None if unusable."""
    value = (value or "").strip().lower()
    if value.startswith("["):  # IPv6 literal, "[::1]:8080"
        name, _, rest = value[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        name, _, port = value.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    # "example.com." is the same name; browsers send it if a person types it.
    name = name.removesuffix(".")
    return name if HOST_RE.fullmatch(name) else None


def request_path(target):
    """The path of a request target, without query; absolute-form included."""
    if not target.startswith("/"):
        return urlsplit(target).path or "/"
    return target.split("?", 1)[0].split("#", 1)[0]


def is_probe(user_agent, path):
    return user_agent.startswith("kube-probe/") or path in PROBE_PATHS


def is_bot(method, user_agent):
    return method in ("HEAD", "OPTIONS") or bool(BOTS.search(user_agent))


def is_websocket(upgrade, path):
    # A tab left open on a sleeping instance reconnects forever: not a person.
    return "websocket" in upgrade.lower() or path.startswith("/websocket")


# The wake call ---------------------------------------------------------------


class Answer(NamedTuple):
    state: str
    message: str
    retry_after: int = DEFAULT_RETRY_AFTER


UNREACHABLE = Answer("unreachable", UNREACHABLE_MESSAGE)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib would turn a redirected POST into a GET (to a login page, say):
    # a redirect is a misconfigured EYRIE_URL, so it fails like any bad status.
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def sign(key, timestamp, body):
    digest = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def parse_answer(payload):
    """Eyrie's JSON answer as an Answer; ValueError if it is not one."""
    data = json.loads(payload.decode("utf-8"))
    if not isinstance(data, dict) or data.get("state") not in EYRIE_STATES:
        raise ValueError("answer without a known state")
    message = data.get("message")
    message = message[:MAX_MESSAGE_CHARS] if isinstance(message, str) else ""
    retry_after = data.get("retry_after")
    if isinstance(retry_after, bool) or not isinstance(retry_after, int):
        retry_after = DEFAULT_RETRY_AFTER
    retry_after = min(max(retry_after, 1), MAX_RETRY_AFTER)
    return Answer(data["state"], message, retry_after)


def call_eyrie(config, host, kind):
    """Ask Eyrie to wake the instance of host; raises on any failure."""
    body = json.dumps(
        {"host": host, "kind": kind, "nonce": secrets.token_hex(16)},
        separators=(",", ":"),
    ).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(
        config.wake_url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Eyrie-Cluster": config.cluster,
            "X-Eyrie-Timestamp": timestamp,
            "X-Eyrie-Signature": sign(config.key, timestamp, body),
        },
    )
    with OPENER.open(request, timeout=config.timeout) as response:
        if response.status != 200:
            raise ValueError(f"HTTP {response.status}")
        payload = response.read(MAX_ANSWER_BYTES + 1)
    if len(payload) > MAX_ANSWER_BYTES:
        raise ValueError("answer too large")
    return parse_answer(payload)


class _Flight:
    """One call to Eyrie in progress; the other requests of its host wait."""

    def __init__(self):
        self.done = threading.Event()
        self.answer = UNREACHABLE


class Waker:
    """Wakes hosts through Eyrie: one call in flight per host, answers reused."""

    def __init__(self, config, call=call_eyrie):
        self.config = config
        self._call = call
        self._lock = threading.Lock()
        self._answers = {}  # host -> (monotonic expiry, Answer)
        self._flights = {}  # host -> _Flight

    def wake(self, host, kind):
        with self._lock:
            expiry, answer = self._answers.get(host, (0, None))
            if answer is not None and expiry > time.monotonic():
                return answer
            flight = self._flights.get(host)
            leading = flight is None
            if leading:
                flight = self._flights[host] = _Flight()
        if not leading:
            if flight.done.wait(self.config.timeout + FOLLOWER_GRACE_SECONDS):
                return flight.answer
            return UNREACHABLE
        answer = UNREACHABLE
        try:
            answer = self._timed_call(host, kind)
        finally:
            # Even if the call blew up (a bug), the followers are released.
            self._land(host, flight, answer)
        return answer

    def _timed_call(self, host, kind):
        started = time.monotonic()
        reason = ""
        try:
            answer = self._call(self.config, host, kind)
        except urllib.error.HTTPError as error:
            error.close()
            answer, reason = UNREACHABLE, f"HTTP {error.code}"
        except (OSError, http.client.HTTPException, ValueError) as error:
            answer, reason = UNREACHABLE, f"{type(error).__name__}: {error}"
        duration = time.monotonic() - started
        line = f"wake host={host} kind={kind} state={answer.state}"
        line += f" duration={duration:.3f}s"
        log(f"{line} ({reason})" if reason else line)
        return answer

    def _land(self, host, flight, answer):
        with self._lock:
            flight.answer = answer
            del self._flights[host]
            # An unreachable Eyrie is retried by the next request, not cached.
            if answer.state != "unreachable":
                self._prune()
                expiry = time.monotonic() + self.config.cache_seconds
                self._answers[host] = (expiry, answer)
        flight.done.set()

    def _prune(self):
        # Any Host header makes an entry: keep the table bounded.
        if len(self._answers) < MAX_CACHED_HOSTS:
            return
        now = time.monotonic()
        self._answers = {h: e for h, e in self._answers.items() if e[0] > now}
        if len(self._answers) >= MAX_CACHED_HOSTS:
            self._answers.clear()


def retry_after(answer):
    if answer.state in STOPPED_STATES:
        return STOPPED_RETRY_AFTER
    return answer.retry_after


# The waiting page ------------------------------------------------------------

STATE_HINTS = {
    "waking": "This instance was asleep. It is starting; "
    "this page reloads by itself when it is ready.",
    "serving": "It is ready.",
    "refused": "Ask its owner to resume it.",
    "unknown": "",
    "unreachable": "",
}

# Any change to this text changes its hash in the CSP, computed below.
SCRIPT = """
(function () {
  "use strict";
  var HINTS = __HINTS__;
  var hint = document.getElementById("hint");
  var message = document.getElementById("message");
  function later(state) {
    var stopped = state === "refused" || state === "unknown";
    setTimeout(poll, stopped ? 30000 : 3000);
  }
  function poll() {
    fetch("/.eyrie-waker/status", {cache: "no-store"}).then(function (r) {
      if (!r.headers.get("X-Eyrie-Waker")) {
        location.reload();
        return;
      }
      return r.json().then(function (data) {
        if (data.state === "serving") {
          location.reload();
          return;
        }
        document.body.setAttribute("data-state", data.state);
        hint.textContent = HINTS[data.state] || "";
        message.textContent = data.message || "";
        later(data.state);
      });
    }).catch(function () { later(""); });
  }
  later(document.body.getAttribute("data-state"));
})();
""".replace("__HINTS__", json.dumps(STATE_HINTS))
SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; "
    f"script-src 'sha256-{SCRIPT_HASH}'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

STYLE = """
body{margin:0;min-height:100vh;display:flex;align-items:center;
justify-content:center;font-family:system-ui,sans-serif;background:#f3f4f6}
main{background:#fff;border-radius:12px;box-shadow:0 1px 4px #0002;
padding:2rem;margin:1rem;max-width:32rem;text-align:center;line-height:1.5}
h1{font-size:1.4rem;overflow-wrap:anywhere}p:empty{display:none}
#message{color:#6b7280}@keyframes spin{to{transform:rotate(360deg)}}
.spinner{width:2rem;height:2rem;margin:auto;border:3px solid #e5e7eb;
border-top-color:#4f46e5;border-radius:50%;animation:spin 1s linear infinite}
[data-state=refused] .spinner,[data-state=unknown] .spinner{display:none}
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<noscript><meta http-equiv="refresh" content="{refresh}"></noscript>
<title>Waking up {host}</title>
<style>{style}</style>
</head>
<body data-state="{state}">
<main>
<div class="spinner"></div>
<h1>Waking up {host}</h1>
<p id="hint">{hint}</p>
<p id="message">{message}</p>
</main>
<script>{script}</script>
</body>
</html>
"""


def render_page(host, answer):
    return PAGE.format(
        host=html.escape(host),
        state=html.escape(answer.state),
        hint=html.escape(STATE_HINTS.get(answer.state, "")),
        message=html.escape(answer.message),
        refresh=retry_after(answer),
        style=STYLE,
        script=SCRIPT,
    ).encode()


# The server ------------------------------------------------------------------


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "eyrie-waker"
    sys_version = ""
    timeout = 20  # a slow or silent client must not hold a thread forever

    def _answer(self):
        """Answer any request; the order of the checks matters."""
        user_agent = self.headers.get("User-Agent", "")
        path = request_path(self.path)
        self._discard_body()
        if self.command == "GET" and path == HEALTHZ_PATH:
            return self._send(200, b"ok", "text/plain; charset=utf-8")
        if is_probe(user_agent, path):
            return self._send_asleep(30)
        if is_bot(self.command, user_agent):
            return self._send_asleep(3600)
        if is_websocket(self.headers.get("Upgrade", ""), path):
            return self._send_asleep(10)
        host = self._host()
        if host is None:
            return self._send(400, b"Bad Host header.\n", "text/plain; charset=utf-8")
        if self.command == "GET" and path == STATUS_PATH:
            answer = self.server.waker.wake(host, "browser")
            body = {"state": answer.state, "message": answer.message}
            return self._send_json(200, body)
        if self.command == "GET" and "text/html" in self.headers.get("Accept", ""):
            answer = self.server.waker.wake(host, "browser")
            return self._send(
                200,
                render_page(host, answer),
                "text/html; charset=utf-8",
                [
                    ("Retry-After", retry_after(answer)),
                    ("Content-Security-Policy", CSP),
                ],
            )
        answer = self.server.waker.wake(host, "api")
        body = {"error": "waking", "state": answer.state, "message": answer.message}
        return self._send_json(503, body, [("Retry-After", retry_after(answer))])

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _answer
    do_OPTIONS = _answer

    def _host(self):
        hosts = self.headers.get_all("Host") or []
        return parse_host(hosts[0]) if len(hosts) == 1 else None

    def _discard_body(self):
        # Closing the socket on unread data makes the kernel reset the
        # connection, and the client may then never see the answer.
        length = self.headers.get("Content-Length", "").strip()
        if not (length.isascii() and length.isdigit()):
            return  # no body announced: do not wait for one
        remaining = int(length) if len(length) <= 12 else MAX_BODY_BYTES + 1
        remaining = min(remaining, MAX_BODY_BYTES)
        # A body announced but never sent costs a few seconds, not a thread.
        self.connection.settimeout(BODY_TIMEOUT_SECONDS)
        try:
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            # A body that does not come is no reason not to answer; the
            # connection is in an unknown state, though.
            self.close_connection = True

    def _send_asleep(self, seconds):
        self._send_json(503, {"state": "asleep"}, [("Retry-After", seconds)])

    def _send_json(self, status, data, headers=()):
        body = json.dumps(data).encode()
        self._send(status, body, "application/json", headers)

    def _send(self, status, body, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, str(value))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def end_headers(self):
        # Also reached by send_error (malformed requests, unknown methods).
        for name, value in COMMON_HEADERS:
            self.send_header(name, value)
        return super().end_headers()

    def log_request(self, code="-", size="-"):
        pass  # one line per call to Eyrie is logged instead; polls are noise

    def log_message(self, fmt, *args):
        # Request lines are hostile: keep control characters out of the log.
        log(f"{self.address_string()}: {fmt % args!r}"[:1000])


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    # The default backlog of 5 drops connections of a burst of requests.
    request_queue_size = 128

    def __init__(self, config):
        if ":" in config.bind:
            self.address_family = socket.AF_INET6
        self.waker = Waker(config)
        super().__init__((config.bind, config.port), Handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the bound address's name (getfqdn),
        # which can hang on a cluster's DNS; the name is never used here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], OSError):
            return  # the client went away or was too slow; nothing to fix
        super().handle_error(request, client_address)


def _stop(signum, frame):
    # As PID 1 in a container, SIGTERM's default action is ignored; stopping
    # here also spares a traceback on Ctrl-C.
    raise SystemExit(0)


def main():
    try:
        config = load_config(os.environ)
    except ConfigError as error:
        log(f"configuration error: {error}")
        return 2
    try:
        server = Server(config)
    except OSError as error:
        log(f"cannot listen on {config.bind}:{config.port}: {error}")
        return 1
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    host, port = server.server_address[:2]
    host = f"[{host}]" if ":" in host else host
    eyrie = urlsplit(config.wake_url).hostname
    log(f"listening on {host}:{port}; waking through {eyrie}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
