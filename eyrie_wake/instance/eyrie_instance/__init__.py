# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
import logging
import os

from . import activity
from . import report

_logger = logging.getLogger(__name__)


def post_load():
    """Server-wide hook (``--load=base,web,eyrie_instance``): count requests
    and, in a serving process, report activity. Off without
    ``EYRIE_ACTIVITY_URL``."""
    if not os.environ.get("EYRIE_ACTIVITY_URL"):
        _logger.debug("EYRIE_ACTIVITY_URL is not set: activity reporting is off")
        return
    activity.install()
    report.install()
