"""A real Odoo server on the benchmark database, for the benchmarks that
measure over XML-RPC or need Odoo's cron threads."""

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import xmlrpc.client


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(config, database, port, log, cron_threads=0, env=None):
    """``odoo server`` on ``database`` at ``port``, with ``cron_threads``
    cron threads and queue_job loaded (its job runner configured by
    ``env``: ODOO_QUEUE_JOB_*), its output in the file ``log``. Returns the
    process once it answers."""
    command = [
        sys.executable,
        "-m",
        "odoo",
        "server",
        "-c",
        config,
        "-d",
        database,
        f"--http-port={port}",
        "--http-interface=127.0.0.1",
        f"--max-cron-threads={cron_threads}",
        "--workers=0",
        "--load=base,web,queue_job",
        "--log-level=warn",
    ]
    server = subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, **(env or {})),
    )
    return server


@contextlib.contextmanager
def running_server(config, database, cron_threads, timeout=120, queue_capacity=4):
    """Start ``odoo server`` on ``database`` with ``cron_threads`` cron
    threads and queue_job's job runner (``queue_capacity`` jobs at once),
    wait until it answers, yield its URL, always stop it."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {"ODOO_QUEUE_JOB_MAX_CAPACITY": str(queue_capacity)}
    with tempfile.NamedTemporaryFile("w+", prefix="eyrie-bench-server-") as log:
        server = start_server(config, database, port, log, cron_threads, env)
        try:
            wait_until_up(server, url, log.name, timeout)
            yield url
        finally:
            stop_process(server)


def wait_until_up(server, url, log_path, timeout):
    common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            common.version()
            return
        except OSError:
            time.sleep(0.2)
    with open(log_path) as log:
        tail = log.read()[-3000:]
    raise RuntimeError(f"the Odoo server did not answer on {url}:\n{tail}")


def stop_process(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
