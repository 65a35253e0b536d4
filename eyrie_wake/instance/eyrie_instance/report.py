# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
"""Reporting: one thread per serving process posts the instance's activity
to Eyrie every ``EYRIE_REPORT_SECONDS``.

The thread starts when Odoo's server runs to serve: ``run`` of the threaded
server (``--workers=0``) or of the prefork master (``--workers=N``) called
without ``stop``. So ``--stop-after-init``, ``odoo shell`` (which runs the
server with ``stop=True``), the prefork workers (forked, they never call
``run``) and the gevent process of prefork mode (a ``GeventServer``) do not
report.
"""

import datetime
import functools
import hashlib
import hmac
import http.client
import json
import logging
import os
import secrets
import threading
import time
import urllib.parse
import urllib.request

import psycopg2

from odoo import sql_db
from odoo.service import server as odoo_server
from odoo.tools import config

from . import activity

_logger = logging.getLogger(__name__)

DEFAULT_SECONDS = 60.0
TIMEOUT = 10
NEXT_ACTION_QUERY = "SELECT min(nextcall) FROM ir_cron WHERE active"

_lock = threading.Lock()
_thread = None
_db_failing = False


def _iso(moment):
    """``YYYY-MM-DDTHH:MM:SSZ`` of a naive UTC datetime."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _interval():
    value = os.environ.get("EYRIE_REPORT_SECONDS")
    if value:
        try:
            seconds = float(value)
        except ValueError:
            seconds = 0
        if seconds > 0:
            return seconds
        _logger.warning(
            "EYRIE_REPORT_SECONDS=%r is not a positive number, using %s",
            value,
            DEFAULT_SECONDS,
        )
    return DEFAULT_SECONDS


def _dbname():
    names = config.get("db_name")
    if isinstance(names, str):
        names = names.split(",")
    for name in names or ():
        if name and name.strip():
            return name.strip()
    return None


def last_request_at():
    try:
        mtime = os.stat(activity.activity_file()).st_mtime
    except FileNotFoundError:
        return None
    return _iso(datetime.datetime.fromtimestamp(mtime, datetime.UTC))


def next_scheduled_action_at():
    """``min(nextcall)`` of the active crons of the instance's database.

    A connection of its own, closed at once, rather than one of Odoo's pool:
    in prefork mode a pooled connection of the master would be inherited by
    the workers it forks later (Odoo empties the pool before it forks them).
    """
    global _db_failing  # pylint: disable=global-statement
    dbname = _dbname()
    if not dbname:
        return None
    try:
        _name, info = sql_db.connection_info_for(dbname)
        connection = psycopg2.connect(connect_timeout=TIMEOUT, **info)
        try:
            connection.autocommit = True
            with connection.cursor() as cr:
                cr.execute(NEXT_ACTION_QUERY)
                nextcall = cr.fetchone()[0]
        finally:
            connection.close()
    except psycopg2.Error as error:
        # A database being created has no ir_cron yet: say so once.
        log = _logger.debug if _db_failing else _logger.warning
        log("no next scheduled action from database %s: %s", dbname, error)
        _db_failing = True
        return None
    _db_failing = False
    return _iso(nextcall) if nextcall else None


def signed_request(url, deployment, key, body, timestamp):
    """The POST of ``body`` (bytes) to Eyrie, signed with ``key`` (bytes)."""
    signature = hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256)
    return urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Eyrie-Deployment": deployment,
            "X-Eyrie-Timestamp": str(timestamp),
            "X-Eyrie-Signature": f"sha256={signature.hexdigest()}",
        },
    )


def send_report(url, deployment, key):
    payload = {
        "last_request_at": last_request_at(),
        "next_scheduled_action_at": next_scheduled_action_at(),
        "nonce": secrets.token_hex(16),
    }
    body = json.dumps(payload, separators=(",", ":")).encode()
    request = signed_request(url, deployment, key, body, int(time.time()))
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        response.read()


def _host(url):
    parts = urllib.parse.urlsplit(url)
    # No path, query or credentials in the logs: the host is enough.
    return parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"


def _loop(url, deployment, key, seconds):
    host = _host(url)
    while True:
        started = time.monotonic()
        try:
            send_report(url, deployment, key)
        except (OSError, http.client.HTTPException) as error:
            # URLError, HTTPError and timeouts are OSErrors.
            _logger.warning(
                "could not report activity to %s: %s: %s",
                host,
                type(error).__name__,
                error,
            )
        except Exception:  # keep reporting whatever happens
            _logger.warning("could not report activity to %s", host, exc_info=True)
        time.sleep(max(0.0, seconds - (time.monotonic() - started)))


def start():
    """Start this process's reporting thread, once."""
    global _thread  # pylint: disable=global-statement
    url = os.environ.get("EYRIE_ACTIVITY_URL")
    if not url or config["stop_after_init"]:
        return None
    with _lock:
        if _thread is not None and _thread.is_alive():
            return _thread
        deployment = os.environ.get("EYRIE_DEPLOYMENT", "")
        key = os.environ.get("EYRIE_ACTIVITY_KEY", "").encode()
        seconds = _interval()
        _logger.info(
            "reporting activity of deployment %s to %s every %s s",
            deployment,
            _host(url),
            int(seconds) if seconds.is_integer() else seconds,
        )
        if not deployment or not key:
            _logger.warning(
                "EYRIE_DEPLOYMENT or EYRIE_ACTIVITY_KEY is not set: "
                "Eyrie will refuse the reports"
            )
        _thread = threading.Thread(
            target=_loop,
            args=(url, deployment, key, seconds),
            name="eyrie-activity",
            daemon=True,
        )
        _thread.start()
        return _thread


def _wrap_run(run):
    @functools.wraps(run)
    def wrapped(self, preload=None, stop=False):
        if not stop:
            try:
                start()
            except Exception:  # the server must start anyway
                _logger.warning("could not start reporting activity", exc_info=True)
        return run(self, preload, stop)

    wrapped._eyrie_activity = True
    return wrapped


def install():
    """Start reporting when the server runs to serve (see the module's doc)."""
    for server_class in (odoo_server.ThreadedServer, odoo_server.PreforkServer):
        if not getattr(server_class.run, "_eyrie_activity", False):
            server_class.run = _wrap_run(server_class.run)
