# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
"""The server-wide module ``eyrie_instance`` in a real Odoo 18.0 server.

Plain unittest, no Odoo test framework: the test creates a database, runs
``python3 -m odoo`` with ``--load=base,web,eyrie_instance`` the way Eyrie runs
its instances, and receives the reports in a stdlib HTTP server that checks
their signature.

    python3 -m unittest /work/main/eyrie_wake/instance/test_instance_module.py -v
"""

import calendar
import contextlib
import hashlib
import hmac
import importlib
import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import unittest.mock
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
KEY = "eyrie-test-key-" + secrets.token_hex(12)
INTERVAL = 1  # EYRIE_REPORT_SECONDS of the servers here
START_TIMEOUT = 90
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
STARTED = "reporting activity of deployment"


def _odoo_addons_paths():
    """Odoo's own addons folders (as eyrie_deployment/tests/odoo_container.py)."""
    import odoo

    package = os.path.dirname(odoo.__file__)
    candidates = [
        os.path.join(package, "addons"),
        os.path.join(package, "..", "addons"),
    ]
    return ",".join(
        os.path.abspath(path)
        for path in candidates
        if os.path.isfile(os.path.join(path, "web", "__manifest__.py"))
        or os.path.isfile(os.path.join(path, "base", "__manifest__.py"))
    )


def _odoo_script():
    """How to run Odoo: ``python3 -m odoo``, but where a prefork master must
    spawn its gevent process (``sys.argv[0] gevent``), a script: odoo-bin of a
    source checkout, else the ``odoo`` console script."""
    import odoo

    script = os.path.join(os.path.dirname(odoo.__file__), "..", "odoo-bin")
    if os.path.isfile(script):
        return [sys.executable, os.path.abspath(script)]
    return [shutil.which("odoo") or "odoo"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


class Receiver(ThreadingHTTPServer):
    """Eyrie's side: records every report with its signature's verdict."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.reports = []
        self.changed = threading.Condition()
        # deployment: how many of its first reports to answer with a 503
        self.failing = {}

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/eyrie/activity"

    def record(self, report):
        with self.changed:
            self.reports.append(report)
            self.changed.notify_all()

    def of(self, deployment):
        with self.changed:
            return [r for r in self.reports if r["deployment"] == deployment]

    def wait_for(self, deployment, predicate, timeout=15):
        """The first report of ``deployment`` that satisfies ``predicate``."""
        deadline = time.time() + timeout
        with self.changed:
            while True:
                for report in self.reports:
                    if report["deployment"] == deployment and predicate(report):
                        return report
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(
                        f"no such report of deployment {deployment} in {timeout} s"
                    )
                self.changed.wait(left)


class ReceiverHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        received = time.time()
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        timestamp = self.headers.get("X-Eyrie-Timestamp", "")
        signature = self.headers.get("X-Eyrie-Signature", "")
        expected = hmac.new(
            KEY.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        valid = hmac.compare_digest(signature, f"sha256={expected}")
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        self.server.record(
            {
                "received": received,
                "path": self.path,
                "deployment": self.headers.get("X-Eyrie-Deployment"),
                "content_type": self.headers.get("Content-Type"),
                "timestamp": timestamp,
                "signature": signature,
                "valid": valid,
                "body": body,
                "payload": payload,
            }
        )
        deployment = self.headers.get("X-Eyrie-Deployment")
        with self.server.changed:
            failing = self.server.failing.get(deployment, 0)
            self.server.failing[deployment] = failing - 1
        self.send_response(503 if failing > 0 else 200 if valid else 401)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        pass


def get(port, path, agent=BROWSER):
    """GET ``path`` of the instance; the status (4xx and 5xx included)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"User-Agent": agent}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class OdooInstanceTest(unittest.TestCase):
    """One database and one threaded server (deployment 7) for the class; the
    other tests run servers of their own on the same database."""

    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="eyrie-instance-")
        cls.addClassCleanup(shutil.rmtree, cls.root, True)
        cls.receiver = Receiver()
        threading.Thread(target=cls.receiver.serve_forever, daemon=True).start()
        cls.addClassCleanup(cls.receiver.server_close)
        cls.addClassCleanup(cls.receiver.shutdown)
        cls.db = f"eyrie_instance_h_{os.getpid()}_{secrets.token_hex(3)}"
        cls.addClassCleanup(cls._drop_db)
        cls.config = os.path.join(cls.root, "odoo.conf")
        with open(cls.config, "w", encoding="utf-8") as file:
            file.write("[options]\n")
        # The database's creation, with reporting configured: Eyrie's init jobs
        # run with --stop-after-init and must not report.
        cls.init = cls.run_odoo(
            "init", "100", ["-i", "base", "--without-demo=all", "--stop-after-init"]
        )
        # The servers run no cron (--max-cron-threads=0): min(nextcall) stays.
        cls.port = free_port()
        cls.activity = os.path.join(cls.root, "activity-7")
        cls.server = cls.start_odoo("server", "7", cls.port, cls.activity)

    @classmethod
    def _drop_db(cls):
        connection = psycopg2.connect(dbname="postgres")
        connection.autocommit = True
        try:
            with connection.cursor() as cr:
                cr.execute(f'DROP DATABASE IF EXISTS "{cls.db}" WITH (FORCE)')
        finally:
            connection.close()

    @classmethod
    def odoo_env(cls, deployment, activity, url=True):
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PG", "ODOO", "OPENERP", "EYRIE_"))
        }
        env.update(
            EYRIE_DEPLOYMENT=deployment,
            EYRIE_ACTIVITY_KEY=KEY,
            EYRIE_REPORT_SECONDS=str(INTERVAL),
            EYRIE_ACTIVITY_FILE=activity,
        )
        if url:
            env["EYRIE_ACTIVITY_URL"] = cls.receiver.url
        return env

    @classmethod
    def odoo_command(cls, args, command=(), script=False):
        return [
            *(_odoo_script() if script else [sys.executable, "-m", "odoo"]),
            *command,
            f"--config={cls.config}",
            f"--addons-path={_odoo_addons_paths()},{HERE}",
            "--load=base,web,eyrie_instance",
            f"--data-dir={os.path.join(cls.root, 'data')}",
            f"--database={cls.db}",
            f"--db-filter=^{cls.db}$",
            "--log-handler=odoo.addons.eyrie_instance:DEBUG",
            *args,
        ]

    @classmethod
    def run_odoo(cls, name, deployment, args, command=(), stdin=None, url=True):
        """Run Odoo to its end; its output."""
        activity = os.path.join(cls.root, f"activity-{deployment}")
        result = subprocess.run(
            cls.odoo_command(args, command),
            env=cls.odoo_env(deployment, activity, url),
            input=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=180,
            check=False,
        )
        with open(os.path.join(cls.root, f"{name}.log"), "w", encoding="utf-8") as file:
            file.write(result.stdout)
        if result.returncode:
            raise AssertionError(f"odoo {name} failed:\n{result.stdout[-3000:]}")
        return result.stdout

    @classmethod
    def start_odoo(
        cls, name, deployment, port, activity, args=(), url=True, script=False
    ):
        """Start a server on ``port``; wait until it answers /web/health."""
        log = os.path.join(cls.root, f"{name}.log")
        with open(log, "w", encoding="utf-8") as output:
            process = subprocess.Popen(
                cls.odoo_command(
                    [
                        f"--http-port={port}",
                        "--http-interface=127.0.0.1",
                        f"--gevent-port={free_port()}",
                        "--max-cron-threads=0",
                        "--workers=0",
                        *args,
                    ],
                    script=script,
                ),
                env=cls.odoo_env(deployment, activity, url),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process.log = log
        cls.addClassCleanup(cls.stop_odoo, process)
        deadline = time.time() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"odoo {name} exited:\n{cls.read(process)}")
            with contextlib.suppress(OSError):
                if get(port, "/web/health", "curl/8") == 200:
                    return process
            if time.time() > deadline:
                raise AssertionError(f"odoo {name} did not start:\n{cls.read(process)}")
            time.sleep(0.2)

    @staticmethod
    def stop_odoo(process):
        if process.poll() is None:
            # The session: a prefork master and its workers and gevent process.
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    @staticmethod
    def read(process):
        with open(process.log, encoding="utf-8") as file:
            return file.read()

    def next_action(self):
        connection = psycopg2.connect(dbname=self.db)
        try:
            with connection.cursor() as cr:
                cr.execute("SELECT min(nextcall) FROM ir_cron WHERE active")
                nextcall = cr.fetchone()[0]
        finally:
            connection.close()
        return iso(nextcall) if nextcall else None

    # (a)
    def test_first_report_at_start(self):
        first = self.receiver.wait_for("7", lambda r: True)
        self.assertEqual(first, self.receiver.of("7")[0])
        self.assertIsNone(first["payload"]["last_request_at"])
        next_action = self.next_action()
        self.assertIsNotNone(next_action)
        self.assertEqual(first["payload"]["next_scheduled_action_at"], next_action)
        # ...and it is reported again at each interval.
        now = time.time()
        later = self.receiver.wait_for("7", lambda r: r["received"] > now)
        self.assertEqual(later["payload"]["next_scheduled_action_at"], next_action)

    # (b) and (c): the only test sending the server requests that count.
    def test_requests(self):
        self.receiver.wait_for("7", lambda r: True)
        for path, agent in [
            ("/web/health", BROWSER),
            ("/web/login", "kube-probe/1.30"),
            ("/web/login", "Mozilla/5.0 (compatible; Googlebot/2.1)"),
            ("/web/login", "Mozilla/5.0 HeadlessChrome/120.0"),
            ("/web/static/src/img/favicon.ico", BROWSER),
            ("/websocket", BROWSER),
            ("/longpolling/poll", BROWSER),
            ("/.eyrie-waker/status", BROWSER),
        ]:
            self.assertLess(get(self.port, path, agent), 500, (path, agent))
        done = time.time()
        # Two full reports after them: no request counted.
        self.receiver.wait_for("7", lambda r: r["received"] > done + INTERVAL)
        for report in self.receiver.of("7"):
            self.assertIsNone(report["payload"]["last_request_at"])
        self.assertFalse(os.path.exists(self.activity))

        before = time.time()
        self.assertEqual(get(self.port, "/web/login"), 200)
        after = time.time()
        report = self.receiver.wait_for(
            "7", lambda r: r["payload"]["last_request_at"] is not None
        )
        self.assertGreaterEqual(report["received"], before)
        last = epoch(report["payload"]["last_request_at"])
        self.assertLessEqual(int(before), last)
        self.assertLessEqual(last, after + 1)
        self.assertEqual(int(os.path.getmtime(self.activity)), last)

        # A request less than 10 s after it does not touch the file again,
        # nor do probes.
        time.sleep(1.1)
        get(self.port, "/web/login")
        get(self.port, "/web/health", "kube-probe/1.30")
        now = time.time()
        report = self.receiver.wait_for("7", lambda r: r["received"] > now)
        self.assertEqual(epoch(report["payload"]["last_request_at"]), last)

    # (d)
    def test_signature_and_key(self):
        self.receiver.wait_for("7", lambda r: True)
        now = time.time()
        self.receiver.wait_for("7", lambda r: r["received"] > now)
        reports = self.receiver.of("7")
        self.assertGreaterEqual(len(reports), 2)
        for report in reports:
            self.assertTrue(report["valid"], report)
            self.assertEqual(report["path"], "/eyrie/activity")
            self.assertEqual(report["content_type"], "application/json")
            self.assertLessEqual(abs(int(report["timestamp"]) - report["received"]), 5)
            payload = report["payload"]
            self.assertEqual(
                list(payload),
                ["last_request_at", "next_scheduled_action_at", "nonce"],
            )
            # Compact JSON, signed as sent.
            self.assertEqual(
                report["body"], json.dumps(payload, separators=(",", ":")).encode()
            )
            self.assertRegex(payload["nonce"], r"^[0-9a-f]{32}$")
        nonces = [report["payload"]["nonce"] for report in reports]
        self.assertEqual(len(set(nonces)), len(nonces))

        log = self.read(self.server)
        self.assertEqual(log.count(STARTED), 1, log)
        self.assertIn(f"{STARTED} 7 to 127.0.0.1:{self.receiver.server_port}", log)
        for text in [log, self.init]:
            self.assertNotIn(KEY, text)
            for report in reports:
                self.assertNotIn(report["signature"].split("=")[1], text)
        self.assertNotIn("Traceback", log)

    # (e)
    def test_without_url(self):
        port = free_port()
        activity = os.path.join(self.root, "activity-8")
        process = self.start_odoo("without-url", "8", port, activity, url=False)
        self.assertEqual(get(port, "/web/login"), 200)
        time.sleep(1.5 * INTERVAL)
        self.stop_odoo(process)
        log = self.read(process)
        self.assertIn("EYRIE_ACTIVITY_URL is not set", log)
        self.assertNotIn(STARTED, log)
        self.assertNotIn("Traceback", log)
        self.assertEqual(self.receiver.of("8"), [])
        self.assertFalse(os.path.exists(activity))
        self.assertNotIn(KEY, log)

    # (f)
    def test_stop_after_init_and_shell(self):
        # The database's creation (setUpClass) ran with reporting configured.
        self.assertIn("Modules loaded.", self.init)
        self.assertNotIn(STARTED, self.init)
        self.assertEqual(self.receiver.of("100"), [])

        stopped = self.run_odoo("stop-after-init", "9", ["--stop-after-init"])
        self.assertIn("counting requests in", stopped)  # the module was loaded
        self.assertNotIn(STARTED, stopped)

        shell = self.run_odoo(
            "shell",
            "10",
            ["--no-http"],
            command=["shell"],
            stdin="print('eyrie shell', env['ir.cron'].search_count([]) > 0)\n",
        )
        self.assertIn("eyrie shell True", shell)
        self.assertIn("counting requests in", shell)
        self.assertNotIn(STARTED, shell)

        self.assertEqual(self.receiver.of("9"), [])
        self.assertEqual(self.receiver.of("10"), [])
        for text in [self.init, stopped, shell]:
            self.assertNotIn(KEY, text)

    # Prefork mode: the workers count the requests, the master reports.
    def test_prefork(self):
        port = free_port()
        activity = os.path.join(self.root, "activity-11")
        # Eyrie answers its first two reports with a 503: it goes on.
        self.receiver.failing["11"] = 2
        process = self.start_odoo(
            "prefork", "11", port, activity, args=["--workers=2"], script=True
        )
        first = self.receiver.wait_for("11", lambda r: True)
        self.assertIsNone(first["payload"]["last_request_at"])
        self.assertEqual(
            first["payload"]["next_scheduled_action_at"], self.next_action()
        )
        before = time.time()
        self.assertEqual(get(port, "/web/login"), 200)
        report = self.receiver.wait_for(
            "11", lambda r: r["payload"]["last_request_at"] is not None
        )
        self.assertLessEqual(int(before), epoch(report["payload"]["last_request_at"]))
        # One reporter: about one report per interval.
        time.sleep(2 * INTERVAL)
        now = time.time()
        recent = [r for r in self.receiver.of("11") if r["received"] > now - 2]
        self.assertLessEqual(len(recent), 3, recent)
        self.assertTrue(all(r["valid"] for r in self.receiver.of("11")))
        self.stop_odoo(process)
        log = self.read(process)
        self.assertEqual(log.count(STARTED), 1, log)
        self.assertNotIn(KEY, log)
        warnings = re.findall(
            r" WARNING \S+ odoo\.addons\.eyrie_instance\S*: (.*)", log
        )
        failed = (
            f"could not report activity to 127.0.0.1:{self.receiver.server_port}"
            ": HTTPError: HTTP Error 503: Service Unavailable"
        )
        self.assertEqual([text.strip() for text in warnings], [failed] * 2, log)
        # No error of the module's. (Where gevent cannot start, the gevent
        # process that the master spawns fails, which is not the module's.)
        self.assertNotIn(os.path.join(HERE, "eyrie_instance") + os.sep, log)
        self.assertIsNone(
            re.search(r" (ERROR|CRITICAL) \S+ odoo\.addons\.eyrie_instance", log)
        )


class ActivityTest(unittest.TestCase):
    """The request counting of ``activity.py``, in this process."""

    @classmethod
    def setUpClass(cls):
        path = os.path.join(HERE, "eyrie_instance", "activity.py")
        spec = importlib.util.spec_from_file_location("eyrie_activity_test", path)
        cls.activity = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(cls.activity)

    def setUp(self):
        root = tempfile.mkdtemp(prefix="eyrie-activity-")
        self.addCleanup(shutil.rmtree, root, True)
        self.file = os.path.join(root, "activity")
        patcher = unittest.mock.patch.dict(os.environ, EYRIE_ACTIVITY_FILE=self.file)
        patcher.start()
        self.addCleanup(patcher.stop)
        self.activity._last_touch = None

    def test_counts(self):
        counts = self.activity.counts
        self.assertTrue(
            counts({"PATH_INFO": "/odoo/action-1", "HTTP_USER_AGENT": BROWSER})
        )
        self.assertTrue(counts({"PATH_INFO": "/web/login"}))
        for path in [
            "/web/health",
            "/websocket",
            "/websocket/peek_notifications",
            "/longpolling/poll",
            "/.eyrie-waker/wake",
            "/web/static/img/logo.png",
        ]:
            self.assertFalse(counts({"PATH_INFO": path}), path)
        for agent in [
            "kube-probe/1.30",
            "Googlebot/2.1",
            "Mozilla/5.0 (compatible; bingbot/2.0)",
            "Slackbot-LinkExpanding 1.0",
            "facebookexternalhit/1.1",
            "UptimeRobot/2.0",
            "Pingdom.com_bot_version_1.4",
            "Mozilla/5.0 HeadlessChrome/120.0",
            "Chrome-Lighthouse",
            "Site24x7 MONITOR",
        ]:
            self.assertFalse(counts({"PATH_INFO": "/web", "HTTP_USER_AGENT": agent}))

    def test_touch_at_most_every_10_s(self):
        self.assertTrue(self.activity.touch())
        self.assertTrue(os.path.exists(self.file))
        os.utime(self.file, (1, 1))
        self.assertFalse(self.activity.touch())
        self.assertEqual(os.path.getmtime(self.file), 1)
        self.activity._last_touch -= self.activity.TOUCH_SECONDS
        self.assertTrue(self.activity.touch())
        self.assertAlmostEqual(os.path.getmtime(self.file), time.time(), delta=5)

    def test_wrapper_never_raises(self):
        calls = []

        def app(_self, environ, start_response):
            calls.append(environ)
            return [b"ok"]

        wrapped = self.activity._wrap(app)
        os.environ["EYRIE_ACTIVITY_FILE"] = os.path.join(self.file, "no", "such")
        with self.assertLogs(self.activity._logger, "DEBUG") as logs:
            self.assertEqual(wrapped(None, {"PATH_INFO": "/odoo"}, None), [b"ok"])
        self.assertEqual(len(calls), 1)
        self.assertIn("could not record", logs.output[0])
        self.assertTrue(wrapped._eyrie_activity)


class ReportTest(unittest.TestCase):
    """The helpers of ``report.py``, in this process."""

    @classmethod
    def setUpClass(cls):
        from odoo.tools import config

        import odoo.addons

        if HERE not in odoo.addons.__path__:
            odoo.addons.__path__.append(HERE)
        cls.report = importlib.import_module("odoo.addons.eyrie_instance.report")
        cls.config = config

    def db_name(self, value):
        patcher = unittest.mock.patch.dict(self.config.options, db_name=value)
        patcher.start()
        self.addCleanup(patcher.stop)

    def test_dbname(self):
        for value, expected in [
            ("prod", "prod"),
            ("prod,other", "prod"),
            (["prod", "other"], "prod"),
            (False, None),
            ("", None),
        ]:
            self.db_name(value)
            self.assertEqual(self.report._dbname(), expected, value)

    def test_no_cron_table(self):
        self.db_name("postgres")  # a database without ir_cron
        self.report._db_failing = False
        with self.assertLogs(self.report._logger, "DEBUG") as logs:
            self.assertIsNone(self.report.next_scheduled_action_at())
            self.assertIsNone(self.report.next_scheduled_action_at())
        self.assertEqual(
            [log.split(":")[0] for log in logs.output], ["WARNING", "DEBUG"]
        )
        self.assertIn('relation "ir_cron" does not exist', logs.output[0])
        self.db_name(False)
        self.assertIsNone(self.report.next_scheduled_action_at())

    def test_signed_request(self):
        body = b'{"last_request_at":null}'
        request = self.report.signed_request(
            "https://eyrie.example.com/eyrie/activity", "42", b"k", body, 1700000000
        )
        self.assertEqual(request.get_method(), "POST")
        self.assertEqual(request.data, body)
        headers = {key.lower(): value for key, value in request.header_items()}
        self.assertEqual(headers["x-eyrie-deployment"], "42")
        self.assertEqual(headers["x-eyrie-timestamp"], "1700000000")
        expected = hmac.new(b"k", b"1700000000." + body, hashlib.sha256).hexdigest()
        self.assertEqual(headers["x-eyrie-signature"], f"sha256={expected}")
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(
            self.report._host("https://user:pw@eyrie.example.com:8443/x?y"),
            "eyrie.example.com:8443",
        )


if __name__ == "__main__":
    unittest.main()
