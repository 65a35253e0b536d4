# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
"""Counting requests: each request a person makes touches the activity file.

The file's modification time is the last counted request. It is shared by
all the processes of the pod: in prefork mode the workers serve the requests
and touch it, the master reads it when it reports.
"""

import functools
import logging
import os
import re
import threading
import time

from odoo import http

_logger = logging.getLogger(__name__)

DEFAULT_FILE = "/tmp/eyrie-activity"
# Touch the file at most this often per process.
TOUCH_SECONDS = 10

IGNORED_PATHS = (
    "/web/health",
    "/websocket",
    "/longpolling",
    "/.eyrie-waker",
    "/web/static",
)
IGNORED_AGENT = re.compile(
    r"bot|crawl|spider|slurp|facebookexternalhit|embedly|preview|monitor|uptime"
    r"|pingdom|headless|lighthouse",
    re.IGNORECASE,
)

_lock = threading.Lock()
_last_touch = None  # time.monotonic() of this process's last touch


def activity_file():
    return os.environ.get("EYRIE_ACTIVITY_FILE") or DEFAULT_FILE


def counts(environ):
    """Whether the request of this WSGI ``environ`` is a person's."""
    path = environ.get("PATH_INFO") or ""
    if path.startswith(IGNORED_PATHS):
        return False
    agent = environ.get("HTTP_USER_AGENT") or ""
    return not (agent.startswith("kube-probe/") or IGNORED_AGENT.search(agent))


def touch():
    """Set the activity file's modification time to now, creating the file,
    unless this process did so less than ``TOUCH_SECONDS`` ago."""
    global _last_touch  # pylint: disable=global-statement
    now = time.monotonic()
    with _lock:
        if _last_touch is not None and now - _last_touch < TOUCH_SECONDS:
            return False
        _last_touch = now
    path = activity_file()
    try:
        os.utime(path)
    except FileNotFoundError:
        with open(path, "a", encoding="utf-8"):
            pass
        os.utime(path)
    return True


def note_request(environ):
    if counts(environ):
        touch()


def _wrap(call):
    @functools.wraps(call)
    def __call__(self, environ, start_response):
        try:
            note_request(environ)
        except Exception:  # never fail a request because of the activity file
            _logger.debug("could not record the request's activity", exc_info=True)
        return call(self, environ, start_response)

    __call__._eyrie_activity = True
    return __call__


def install():
    """Wrap Odoo's WSGI entry point (``odoo.http.root``), once."""
    call = http.Application.__call__
    if getattr(call, "_eyrie_activity", False):
        return
    http.Application.__call__ = _wrap(call)
    _logger.debug("counting requests in %s", activity_file())
