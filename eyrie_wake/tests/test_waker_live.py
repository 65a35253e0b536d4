"""The waker's program for real, on loopback, against the Odoo test server
running Eyrie: what a browser, an API client, a bot and a probe get, the
signed calls it makes, and a burst that wakes exactly once."""

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from odoo.tests import tagged

from odoo.addons.eyrie_deployment.tests.kube_common import (
    KubernetesRpcCase,
    OperatorsMixin,
)
from odoo.addons.eyrie_deployment.tests.private_postgres import free_port

from ..tools.signing import sign
from ..tools.waker_objects import SCRIPT_PATH
from .common import WakerMixin

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


def waker_request(port, host, path="/", method="GET", headers=None, data=None):
    """(status, headers, body) of a request to the waker for ``host``."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=data,
        method=method,
        headers={"Host": host, **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


@tagged("post_install", "-at_install")
class TestWakerLive(WakerMixin, OperatorsMixin, KubernetesRpcCase):
    LOGIN = "eyrie_wake_user"

    def setUp(self):
        super().setUp()
        self.port = free_port()
        env = {
            **os.environ,
            "EYRIE_URL": self.base_url(),
            "EYRIE_CLUSTER": str(self.cluster.id),
            "EYRIE_WAKE_KEY": self.cluster.waker_key,
            "WAKER_PORT": str(self.port),
            "WAKER_BIND": "127.0.0.1",
            "WAKER_CACHE_SECONDS": "1",
        }
        self.waker = subprocess.Popen(
            [sys.executable, SCRIPT_PATH],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(self._stop_waker)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if waker_request(self.port, "x", "/.eyrie-waker/healthz")[0] == 200:
                    return
            except OSError:
                time.sleep(0.1)
        self.fail("the waker did not start")

    def _ask(self, host, path="/", **kwargs):
        """A request to the waker for ``host``; the server sees what the
        test wrote, and the test what the server wrote."""
        self.env.flush_all()
        answer = waker_request(self.port, host, path, **kwargs)
        self.env.invalidate_all()
        return answer

    def _stop_waker(self):
        self.waker.terminate()
        _out, err = self.waker.communicate(timeout=10)
        # Its log never holds the key.
        self.assertNotIn(self.cluster.waker_key, err.decode())

    def _run(self, deployment, action):
        getattr(deployment, f"action_{action}")()
        self._settle_played()

    def _sleeping(self, name):
        odoo = self._create(name)
        self._run(odoo, "deploy")
        self._run(odoo, "pause")
        self.assertEqual((odoo.repository_state, odoo.state), ("pause", "pause"))
        return odoo

    def _wakes(self, odoo):
        return odoo.job_ids.filtered(lambda job: job.trigger == "wake")

    def test_a_browser_gets_the_waiting_page_and_the_instance_wakes(self):
        odoo = self._sleeping("browsed")
        status, headers, page = self._ask(odoo.hostname, headers=BROWSER)
        self.assertEqual(status, 200)
        self.assertEqual(headers["X-Eyrie-Waker"], "1")
        self.assertIn(f"Waking up {odoo.hostname}", page)
        self.assertIn("reloads by itself", page)
        self.assertEqual(len(self._wakes(odoo)), 1)
        self.assertEqual(odoo.state, "deploying")

        # An API client meanwhile: 503 and when to come back; no second job.
        status, headers, body = waker_request(
            self.port,
            odoo.hostname,
            "/jsonrpc",
            method="POST",
            headers={"Content-Type": "application/json"},
            data=b"{}",
        )
        self.assertEqual(status, 503)
        self.assertEqual(headers["Retry-After"], "5")
        self.assertEqual(json.loads(body)["state"], "waking")
        time.sleep(1.1)  # past the waker's cache: it asks Eyrie again
        status, _headers, body = self._ask(odoo.hostname, "/.eyrie-waker/status")
        self.assertEqual(json.loads(body)["state"], "waking")
        self.assertEqual(len(self._wakes(odoo)), 1)

        # Once it runs, Eyrie says so, and the page reloads into it.
        self._settle_played()
        self.assertEqual((odoo.repository_state, odoo.state), ("deploy", "deploy"))
        time.sleep(1.1)
        status, _headers, body = self._ask(odoo.hostname, "/.eyrie-waker/status")
        self.assertEqual(json.loads(body)["state"], "serving")
        ingress = self.emulator.get(
            "networking.k8s.io/v1", "Ingress", "odoo", namespace=odoo.namespace
        )
        self.assertEqual(
            ingress["spec"]["rules"][0]["http"]["paths"][-1]["backend"]["service"][
                "name"
            ],
            "odoo",
        )

    def test_bots_probes_and_websockets_wake_nothing(self):
        odoo = self._sleeping("left-alone")
        for path, headers in (
            ("/", {**BROWSER, "User-Agent": "Mozilla/5.0 (compatible; Googlebot/2.1)"}),
            ("/web/health", {"User-Agent": "kube-probe/1.30"}),
            ("/web/login", {"User-Agent": "kube-probe/1.30"}),
            ("/websocket", {"Upgrade": "websocket", "Connection": "Upgrade"}),
        ):
            with self.subTest(path=path, headers=headers):
                status, response_headers, _body = self._ask(
                    odoo.hostname, path, headers=headers
                )
                self.assertEqual(status, 503)
                self.assertTrue(response_headers["Retry-After"])
        status, _headers, _body = self._ask(odoo.hostname, "/", method="HEAD")
        self.assertEqual(status, 503)
        self.assertFalse(self._wakes(odoo))
        self.assertEqual(odoo.state, "pause")

    def test_a_burst_of_requests_wakes_once(self):
        odoo = self._sleeping("crowded")
        host = odoo.hostname
        # The threads only speak HTTP: the test's cursor stays in this one.
        self.env.flush_all()
        with ThreadPoolExecutor(max_workers=24) as pool:
            answers = list(
                pool.map(
                    lambda _i: waker_request(self.port, host, headers=BROWSER),
                    range(48),
                )
            )
        self.env.invalidate_all()
        self.assertEqual({status for status, _h, _b in answers}, {200})
        self.assertEqual(len(self._wakes(odoo)), 1)
        self.assertEqual(len(odoo.job_ids.filtered(lambda j: j.action == "deploy")), 2)

    def test_a_refused_wake_shows_why(self):
        odoo = self._sleeping("kept-asleep")
        self.shipped.wake_on_request = False
        self.addCleanup(setattr, self.shipped, "wake_on_request", True)
        status, _headers, page = self._ask(odoo.hostname, headers=BROWSER)
        self.assertEqual(status, 200)
        self.assertIn("does not wake by itself", page)
        self.assertFalse(self._wakes(odoo))
        status, _headers, page = self._ask("nobody.example.com", headers=BROWSER)
        self.assertIn("No instance is served at nobody.example.com", page)

    def _call(self, body, key=None, timestamp=None, cluster=None):
        timestamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "Content-Type": "application/json",
            "X-Eyrie-Cluster": str(cluster or self.cluster.id),
            "X-Eyrie-Timestamp": str(timestamp),
            "X-Eyrie-Signature": sign(key or self.cluster.waker_key, timestamp, body),
        }
        return self.url_open("/eyrie/wake", data=body, headers=headers)

    def test_unsigned_forged_old_and_replayed_calls_are_refused(self):
        odoo = self._sleeping("guarded")

        def body():
            return json.dumps(
                {
                    "host": odoo.hostname,
                    "kind": "browser",
                    "nonce": secrets.token_hex(16),
                }
            ).encode()

        forged = self._call(body(), key="not-the-cluster-key")
        self.assertEqual(forged.status_code, 401)
        old = self._call(body(), timestamp=int(time.time()) - 3600)
        self.assertEqual(old.status_code, 401)
        self.assertIn("5 minutes", old.json()["reason"])
        unsigned = self.url_open(
            "/eyrie/wake",
            data=body(),
            headers={"X-Eyrie-Cluster": str(self.cluster.id)},
        )
        self.assertEqual(unsigned.status_code, 401)
        other_cluster = self._call(body(), cluster=999999)
        self.assertEqual(other_cluster.status_code, 404)
        self.assertFalse(self._wakes(odoo))

        signed = body()
        timestamp = int(time.time())
        self.assertEqual(
            self._call(signed, timestamp=timestamp).json()["state"], "waking"
        )
        replay = self._call(signed, timestamp=timestamp)
        self.assertEqual(replay.status_code, 409)
        self.assertEqual(len(self._wakes(odoo)), 1)
