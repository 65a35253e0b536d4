"""``odoo-bin`` for the benchmarks' prefork servers, without their gevent
process.

A prefork Odoo server (``--workers`` above 0) starts a gevent process for
the websockets and starts it again whenever it stops. No browser connects to
a benchmark's servers, and where gevent cannot start (a missing dependency:
``zope.interface``), the server would start it again and again, a Python
start each time, and that CPU would count as the jobs'. Everything else is
``odoo-bin``'s: the arguments are Odoo's.

    python3 benchmarks/odoo_without_gevent.py -c odoo.conf --workers=4 ...
"""

import os

# As odoo-bin: the server's time zone, before the time module is imported.
os.environ["TZ"] = "UTC"

import odoo
from odoo.service import server


def _no_gevent_process(prefork_server):
    """The gevent process is not started."""


server.PreforkServer.long_polling_spawn = _no_gevent_process

if __name__ == "__main__":
    odoo.cli.main()
