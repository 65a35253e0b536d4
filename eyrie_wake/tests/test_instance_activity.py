"""The activity module loaded by a real Odoo 18.0 server (``--load``), as
the shipped workload starts it, reporting to the Odoo test server running
Eyrie: the deployment's last activity and next scheduled action follow; a
report signed for another deployment, or replayed, changes nothing."""

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import psycopg2

from odoo.tests import tagged

from odoo.addons.eyrie_deployment.tests.kube_common import (
    KubernetesRpcCase,
    OperatorsMixin,
)
from odoo.addons.eyrie_deployment.tests.odoo_container import _odoo_addons_paths
from odoo.addons.eyrie_deployment.tests.private_postgres import free_port

from ..models.eyrie_deployment_wake import INSTANCE_MODULE
from ..tools.signing import sign
from .common import WakerMixin

INSTANCE_ADDONS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "instance")
START_TIMEOUT = 120


@tagged("post_install", "-at_install")
class TestInstanceActivity(WakerMixin, OperatorsMixin, KubernetesRpcCase):
    LOGIN = "eyrie_activity_user"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="eyrie-instance-")
        cls.db = f"eyrie_instance_{os.getpid()}_{secrets.token_hex(3)}"
        cls.addClassCleanup(cls._drop_instance_db)
        subprocess.run(
            [*cls._odoo(), "-i", "base", "--without-demo=all", "--stop-after-init"],
            check=True,
            capture_output=True,
            timeout=300,
        )

    @classmethod
    def _odoo(cls):
        return [
            sys.executable,
            "-m",
            "odoo",
            f"--addons-path={_odoo_addons_paths()},{INSTANCE_ADDONS}",
            f"--load=base,web,{INSTANCE_MODULE}",
            f"--data-dir={cls.root}",
            f"--database={cls.db}",
            f"--db-filter=^{cls.db}$",
            "--no-database-list",
        ]

    @classmethod
    def _drop_instance_db(cls):
        connection = psycopg2.connect(dbname="postgres")
        connection.autocommit = True
        try:
            with connection.cursor() as cr:
                cr.execute(f'DROP DATABASE IF EXISTS "{cls.db}" WITH (FORCE)')
        finally:
            connection.close()

    def _start_instance(self, deployment, key):
        """The instance's server, with the settings the Secret gives it."""
        port = free_port()
        env = {
            key_: value
            for key_, value in os.environ.items()
            if not key_.startswith(("PG", "ODOO", "EYRIE_"))
        }
        env |= {
            "EYRIE_ACTIVITY_URL": f"{self.base_url()}/eyrie/activity",
            "EYRIE_DEPLOYMENT": str(deployment.id),
            "EYRIE_ACTIVITY_KEY": key,
            "EYRIE_REPORT_SECONDS": "1",
            "EYRIE_ACTIVITY_FILE": os.path.join(self.root, f"activity-{port}"),
        }
        log = open(os.path.join(self.root, f"odoo-{port}.log"), "w+")  # noqa: SIM115
        self.addCleanup(log.close)
        process = subprocess.Popen(
            [
                *self._odoo(),
                f"--http-port={port}",
                "--http-interface=127.0.0.1",
                f"--gevent-port={free_port()}",
                "--max-cron-threads=0",
                "--workers=0",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.addCleanup(self._stop, process)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self.assertIsNone(process.poll(), "the instance stopped")
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/web/health", timeout=5
                ),
            ):
                return port, log
            time.sleep(0.3)
        self.fail("the instance did not start")

    @staticmethod
    def _stop(process):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)

    def _next_cron(self):
        connection = psycopg2.connect(dbname=self.db)
        with connection, connection.cursor() as cr:
            cr.execute("SELECT min(nextcall) FROM ir_cron WHERE active")
            nextcall = cr.fetchone()[0]
        connection.close()
        return nextcall.replace(microsecond=0)

    def _wait_for(self, deployment, predicate, timeout=20):
        """Read ``deployment`` (between the server's requests) until
        ``predicate`` holds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.registry.test_lock:
                deployment.invalidate_recordset()
                if predicate(deployment):
                    return
            time.sleep(0.3)
        self.fail(f"deployment {deployment.name} never got the report")

    def _deployed(self, name):
        odoo = self._create(name)
        odoo.action_deploy()
        self._settle_played()
        self.assertEqual(odoo.state, "deploy")
        return odoo

    def test_the_instance_reports_its_activity_and_next_action(self):
        odoo = self._deployed("reporting")
        self.env.flush_all()
        port, log = self._start_instance(odoo, self.cluster._activity_key(odoo))
        self._wait_for(odoo, lambda d: d.activity_reported_at)
        self.assertEqual(odoo.next_scheduled_action_at, self._next_cron())
        self.assertFalse(odoo.last_activity_at)

        # A person opens the login page: a later report carries it.
        before = time.time()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/web/login", timeout=30):
            pass
        self._wait_for(odoo, lambda d: d.last_activity_at)
        self.assertLessEqual(abs(odoo.last_activity_at.timestamp() - before), 5)
        log.seek(0)
        self.assertNotIn(self.cluster._activity_key(odoo), log.read())

    def test_a_report_for_another_deployment_is_refused(self):
        mine = self._deployed("mine")
        theirs = self._deployed("theirs")
        body = json.dumps(
            {
                "last_request_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "next_scheduled_action_at": None,
                "nonce": secrets.token_hex(16),
            }
        ).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Eyrie-Timestamp": str(timestamp),
            # Signed with my instance's key, naming their deployment.
            "X-Eyrie-Deployment": str(theirs.id),
            "X-Eyrie-Signature": sign(
                self.cluster._activity_key(mine), timestamp, body
            ),
        }
        response = self.url_open("/eyrie/activity", data=body, headers=headers)
        self.assertEqual(response.status_code, 401)
        theirs.invalidate_recordset()
        self.assertFalse(theirs.last_activity_at)

        headers["X-Eyrie-Deployment"] = str(mine.id)
        self.assertEqual(
            self.url_open("/eyrie/activity", data=body, headers=headers).status_code,
            200,
        )
        replay = self.url_open("/eyrie/activity", data=body, headers=headers)
        self.assertEqual(replay.status_code, 409)

    def test_users_cannot_keep_awake_or_wake_over_xmlrpc(self):
        odoo = self._deployed("owned")
        odoo.user_id = self.user
        self.env.flush_all()
        for method, args in (
            ("write", [[odoo.id], {"last_activity_at": "2030-01-01 00:00:00"}]),
            ("_wake_on_request", [[odoo.id], odoo.hostname, "browser"]),
            ("_record_activity", [[odoo.id], "2030-01-01 00:00:00", False]),
        ):
            with self.subTest(method=method):
                with self.assertRaises(Exception) as refused:
                    self.rpc("eyrie.deployment", method, *args)
                self.assertRegex(
                    str(refused.exception),
                    "set by the deployment lifecycle only|"
                    "Private methods .* cannot be called remotely",
                )
        odoo.invalidate_recordset()
        self.assertFalse(odoo.last_activity_at)
        # Nor read the cluster's key.
        with self.assertRaisesRegex(Exception, "waker_key"):
            self.rpc("eyrie.cluster", "read", [self.cluster.id], ["waker_key"])
