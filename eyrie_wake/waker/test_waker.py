# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
"""Tests of the waker (waker.py), run as a real subprocess; no Odoo needed.

A fake Eyrie (a ThreadingHTTPServer in a thread) checks the signature of each
wake call, records it and answers as the test asked. Each test uses its own
host names, so the waker's per-host cache does not leak from one to another.

    python3 eyrie_wake/waker/test_waker.py -v

(Not "python3 -m unittest eyrie_wake/...": that imports the eyrie_wake Odoo
addon package first. "cd eyrie_wake/waker && python3 -m unittest -v" works.)
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

WAKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "waker.py")
KEY = "s3cret-wake-key-do-not-log"
CLUSTER = "42"
BROWSER = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeEyrie:
    """Eyrie's /eyrie/wake: verifies the signature, records, answers."""

    def __init__(self):
        self.calls = []  # dicts: host, kind, nonce, timestamp, valid, headers
        self.answers = {}  # host -> (status, body bytes, delay seconds)
        self.lock = threading.Lock()
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                fake.record(self.path, self.headers, body)
                data = json.loads(body)
                status, answer, delay = fake.answers.get(
                    data["host"], (200, fake.waking(), 0)
                )
                time.sleep(delay)
                if not fake.calls[-1]["valid"]:
                    status, answer = 401, b"{}"
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def waking(retry_after=7):
        return json.dumps(
            {"state": "waking", "message": "Starting.", "retry_after": retry_after}
        ).encode()

    def record(self, path, headers, body):
        timestamp = headers.get("X-Eyrie-Timestamp", "")
        expected = hmac.new(
            KEY.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        data = json.loads(body)
        call = dict(
            data,
            path=path,
            body=body,
            timestamp=int(timestamp),
            cluster=headers.get("X-Eyrie-Cluster"),
            content_type=headers.get("Content-Type"),
            valid=hmac.compare_digest(
                headers.get("X-Eyrie-Signature", ""), "sha256=" + expected
            ),
        )
        with self.lock:
            self.calls.append(call)

    def calls_for(self, host):
        with self.lock:
            return [call for call in self.calls if call["host"] == host]

    def count(self):
        with self.lock:
            return len(self.calls)


class Waker:
    """waker.py in a subprocess; its stderr goes to a file read at the end."""

    def __init__(self, eyrie_url, **env):
        self.port = free_port()
        # A file, not a pipe: nothing to drain, and each line the waker wrote
        # before answering is there when the answer arrives. Closed by stop().
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115
        environ = {
            "PATH": os.environ.get("PATH", ""),
            "EYRIE_URL": eyrie_url,
            "EYRIE_CLUSTER": CLUSTER,
            "EYRIE_WAKE_KEY": KEY,
            "WAKER_BIND": "127.0.0.1",
            "WAKER_PORT": str(self.port),
            "WAKER_CACHE_SECONDS": "1",
            "WAKER_TIMEOUT": "3",
        }
        environ.update(env)
        self.process = subprocess.Popen(
            [sys.executable, WAKER],
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=self.stderr,
        )
        self.wait_ready()

    def wait_ready(self):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"waker exited: {self.log()}")
            try:
                if self.request("GET", "/.eyrie-waker/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("waker did not start")

    def request(self, method, path, host="app.example.com", headers=None, body=None):
        """(status, headers as a dict with lowercase names, body text)."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, path, body, {"Host": host, **(headers or {})})
            response = connection.getresponse()
            text = response.read().decode()
            answer = {name.lower(): value for name, value in response.getheaders()}
            return response.status, answer, text
        finally:
            connection.close()

    def log(self):
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self):
        self.process.terminate()
        self.process.wait(5)
        self.stderr.close()


class WakerTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.eyrie = FakeEyrie()
        cls.waker = Waker(cls.eyrie.url)

    @classmethod
    def tearDownClass(cls):
        cls.waker.stop()
        cls.eyrie.server.shutdown()
        cls.eyrie.server.server_close()
        super().tearDownClass()

    def answer(self, host, state, message="", retry_after=5, status=200, delay=0):
        payload = {"state": state, "message": message, "retry_after": retry_after}
        self.eyrie.answers[host] = (status, json.dumps(payload).encode(), delay)

    def browse(self, host, path="/odoo"):
        return self.waker.request("GET", path, host, BROWSER)

    def assertNoCall(self, retry_after, *requests):
        """Each request is answered 503 with retry_after and wakes nothing."""
        before = self.eyrie.count()
        for method, path, headers in requests:
            status, answer, _ = self.waker.request(
                method, path, "quiet.example.com", headers
            )
            self.assertEqual(status, 503, (method, path, headers))
            self.assertEqual(answer["x-eyrie-waker"], "1")
            self.assertEqual(answer["retry-after"], str(retry_after))
        self.assertEqual(self.eyrie.count(), before)

    def test_browser_gets_page_and_signed_call(self):
        started = time.time()
        status, headers, page = self.browse("shop.example.com")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "text/html; charset=utf-8")
        self.assertEqual(headers["x-eyrie-waker"], "1")
        self.assertEqual(headers["cache-control"], "no-store")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertEqual(headers["retry-after"], "7")
        self.assertIn("Waking up shop.example.com", page)
        self.assertIn("It is starting", page)
        self.assertIn('<meta name="robots" content="noindex">', page)
        script = re.search(r"<script>(.*)</script>", page, re.DOTALL).group(1)
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        csp = headers["content-security-policy"]
        self.assertIn(f"script-src 'sha256-{digest}'", csp)
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self'", csp)
        (call,) = self.eyrie.calls_for("shop.example.com")
        self.assertTrue(call["valid"])
        self.assertEqual(call["path"], "/eyrie/wake")
        self.assertEqual(call["kind"], "browser")
        self.assertEqual(call["cluster"], CLUSTER)
        self.assertEqual(call["content_type"], "application/json")
        self.assertRegex(call["nonce"], r"^[0-9a-f]{32}$")
        self.assertLessEqual(abs(call["timestamp"] - started), 5)
        self.assertNotIn(b" ", call["body"])  # compact JSON

    def test_host_is_lowercased_and_port_stripped(self):
        status, _, page = self.browse("Ported.Example.COM:8443")
        self.assertEqual(status, 200)
        self.assertIn("Waking up ported.example.com", page)
        self.assertEqual(len(self.eyrie.calls_for("ported.example.com")), 1)

    def test_status_poll(self):
        status, headers, text = self.waker.request(
            "GET", "/.eyrie-waker/status", "poll.example.com"
        )
        self.assertEqual(status, 200)
        self.assertEqual(headers["x-eyrie-waker"], "1")
        self.assertEqual(json.loads(text), {"state": "waking", "message": "Starting."})
        self.assertEqual(self.eyrie.calls_for("poll.example.com")[0]["kind"], "browser")

    def test_healthz_never_wakes(self):
        before = self.eyrie.count()
        status, headers, text = self.waker.request("GET", "/.eyrie-waker/healthz")
        self.assertEqual((status, text), (200, "ok"))
        self.assertEqual(headers["content-type"], "text/plain; charset=utf-8")
        self.assertEqual(self.eyrie.count(), before)

    def test_api_gets_503_json(self):
        self.answer("api.example.com", "waking", "Starting.", retry_after=12)
        body = json.dumps({"jsonrpc": "2.0", "params": {}}).encode()
        status, headers, text = self.waker.request(
            "POST",
            "/jsonrpc",
            "api.example.com",
            {"Content-Type": "application/json"},
            body,
        )
        self.assertEqual(status, 503)
        self.assertEqual(headers["retry-after"], "12")
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(
            json.loads(text),
            {"error": "waking", "state": "waking", "message": "Starting."},
        )
        (call,) = self.eyrie.calls_for("api.example.com")
        self.assertEqual(call["kind"], "api")

    def test_api_without_body_does_not_hang(self):
        status, _, _ = self.waker.request(
            "DELETE", "/json/2/res.partner", "nobody.example.com"
        )
        self.assertEqual(status, 503)

    def test_announced_body_that_never_comes(self):
        started = time.monotonic()
        status, _, _ = self.waker.request(
            "POST", "/jsonrpc", "liar.example.com", {"Content-Length": "100"}
        )
        self.assertEqual(status, 503)
        self.assertLess(time.monotonic() - started, 6)

    def test_probes_do_not_wake(self):
        self.assertNoCall(
            30,
            ("GET", "/", {"User-Agent": "kube-probe/1.31", **BROWSER}),
            ("GET", "/web/health", {}),
            ("GET", "/healthz", {}),
        )

    def test_bots_do_not_wake(self):
        googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1)"
        self.assertNoCall(
            3600,
            ("GET", "/", {"User-Agent": googlebot, **BROWSER}),
            ("GET", "/", {"User-Agent": "Slackbot-LinkExpanding 1.0"}),
            ("HEAD", "/", BROWSER),
            ("OPTIONS", "/jsonrpc", {}),
        )

    def test_websocket_does_not_wake(self):
        upgrade = {"Upgrade": "WebSocket", "Connection": "Upgrade"}
        self.assertNoCall(
            10,
            ("GET", "/", {**upgrade, **BROWSER}),
            ("GET", "/websocket?version=18.0", BROWSER),
        )

    def test_scripts_do_wake(self):
        self.waker.request(
            "POST", "/xmlrpc/2/object", "script.example.com", {"User-Agent": "curl/8"}
        )
        self.assertEqual(len(self.eyrie.calls_for("script.example.com")), 1)

    def test_burst_makes_one_call(self):
        self.answer("burst.example.com", "waking", "Starting.", delay=0.5)
        with ThreadPoolExecutor(40) as pool:
            results = list(pool.map(self.browse, ["burst.example.com"] * 40))
        self.assertEqual([status for status, _, _ in results], [200] * 40)
        self.assertEqual(len(self.eyrie.calls_for("burst.example.com")), 1)

    def test_answer_is_cached_for_a_while(self):
        host = "cache.example.com"
        self.browse(host)
        self.browse(host)
        self.assertEqual(len(self.eyrie.calls_for(host)), 1)
        time.sleep(1.2)
        self.browse(host)
        self.assertEqual(len(self.eyrie.calls_for(host)), 2)

    def test_refused_message_is_escaped(self):
        host = "refused.example.com"
        self.answer(host, "refused", "<b>quota</b>")
        status, headers, page = self.browse(host)
        self.assertEqual(status, 200)
        self.assertIn("&lt;b&gt;quota&lt;/b&gt;", page)
        self.assertNotIn("<b>quota</b>", page)
        self.assertIn("Ask its owner to resume it.", page)
        self.assertEqual(headers["retry-after"], "300")
        status, headers, _ = self.waker.request("POST", "/jsonrpc", host)
        self.assertEqual((status, headers["retry-after"]), (503, "300"))

    def test_serving_and_unknown(self):
        self.answer("ready.example.com", "serving", "Up.")
        status, _, page = self.browse("ready.example.com")
        self.assertEqual(status, 200)
        self.assertIn('data-state="serving"', page)
        self.assertIn("It is ready.", page)
        self.answer("nowhere.example.com", "unknown", "No such instance.")
        status, headers, page = self.browse("nowhere.example.com")
        self.assertIn("No such instance.", page)
        self.assertEqual(headers["retry-after"], "300")

    def test_eyrie_error_is_not_cached(self):
        for host, status, body in (
            ("down.example.com", 500, b"{}"),
            ("garbled.example.com", 200, b"<html>not json"),
            ("weird.example.com", 200, b'{"state": "dancing"}'),
        ):
            self.eyrie.answers[host] = (status, body, 0)
            for calls in (1, 2):
                status, _, page = self.browse(host)
                self.assertEqual(status, 200)
                self.assertIn("The platform cannot be reached; retrying.", page)
                self.assertEqual(len(self.eyrie.calls_for(host)), calls)

    def test_eyrie_unreachable(self):
        waker = Waker(f"http://127.0.0.1:{free_port()}")
        try:
            status, _, page = waker.request("GET", "/", headers=BROWSER)
            self.assertEqual(status, 200)
            self.assertIn("The platform cannot be reached; retrying.", page)
            status, headers, text = waker.request("POST", "/jsonrpc")
            self.assertEqual((status, headers["retry-after"]), (503, "15"))
            self.assertEqual(json.loads(text)["state"], "unreachable")
            log = waker.log()
        finally:
            waker.stop()
        self.assertEqual(log.count("state=unreachable"), 2)  # not cached
        self.assertNotIn(KEY, log)

    def test_eyrie_timeout(self):
        self.answer("slow.example.com", "waking", delay=2)
        waker = Waker(self.eyrie.url, WAKER_TIMEOUT="0.5")
        try:
            started = time.monotonic()
            _, _, page = waker.request("GET", "/", "slow.example.com", BROWSER)
            self.assertLess(time.monotonic() - started, 1.5)
            self.assertIn("The platform cannot be reached; retrying.", page)
        finally:
            waker.stop()

    def test_bad_host_is_refused(self):
        before = self.eyrie.count()
        for host in ("evil host/..", "[::1]:8080", "-a.example.com", "a_b.com"):
            status, headers, _ = self.browse(host)
            self.assertEqual(status, 400, host)
            self.assertEqual(headers["x-eyrie-waker"], "1")
        self.assertEqual(self.eyrie.count(), before)

    def test_missing_variable_exits_2(self):
        environ = {"PATH": os.environ.get("PATH", ""), "EYRIE_URL": self.eyrie.url}
        result = subprocess.run(
            [sys.executable, WAKER],
            env=environ,
            check=False,
            capture_output=True,
            text=True,
            timeout=10,
        )
        self.assertEqual(result.returncode, 2)
        self.assertIn("EYRIE_CLUSTER", result.stderr)
        self.assertIn("EYRIE_WAKE_KEY", result.stderr)

    def test_log_has_calls_but_never_the_key(self):
        self.answer("logged.example.com", "waking", delay=0)
        self.browse("logged.example.com")
        (call,) = self.eyrie.calls_for("logged.example.com")
        log = self.waker.log()
        self.assertRegex(
            log,
            r"host=logged\.example\.com kind=browser state=waking "
            r"duration=\d+\.\d+s",
        )
        self.assertNotIn(KEY, log)
        signature = hmac.new(
            KEY.encode(),
            f"{call['timestamp']}.".encode() + call["body"],
            hashlib.sha256,
        ).hexdigest()
        self.assertNotIn(signature, log)


if __name__ == "__main__":
    unittest.main()
