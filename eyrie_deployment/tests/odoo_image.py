"""What the official Odoo image does with the environment a Pod gives it,
for the tests that run the shipped books' Odoo container for real.

Eyrie's books run the official ``odoo:18.0`` image (odoo/docker, branch 18.0).
Its ``/entrypoint.sh`` turns the HOST, PORT, USER and PASSWORD variables into
``--db_host``, ``--db_port``, ``--db_user`` and ``--db_password`` options
(each unless ``$ODOO_RC`` sets it), waits for PostgreSQL with
``wait-for-psql.py`` (argparse, the options word-split as bash does with an
unquoted ``${DB_ARGS[@]}``), then runs ``odoo`` with the container's
arguments followed by those options; arguments that are neither ``odoo`` nor
options are run as a command. This module does the same, on this machine's
Odoo 18.0, so that a test can run the init script and the command of the
rendered Deployment as the image would.

Run as ``python3 odoo_image.py ARGS...`` in place of ``/entrypoint.sh ARGS...``.
"""

import argparse
import configparser
import os
import re
import shutil
import sys
import time

DB_OPTIONS = (
    ("db_host", "HOST", "db"),
    ("db_port", "PORT", "5432"),
    ("db_user", "USER", "odoo"),
    ("db_password", "PASSWORD", "odoo"),
)


def db_args(environ):
    """The entrypoint's DB_ARGS: an option and its value for each database
    parameter that the configuration file ($ODOO_RC) does not set."""
    configured = ""
    if environ.get("ODOO_RC") and os.path.exists(environ["ODOO_RC"]):
        with open(environ["ODOO_RC"]) as handle:
            configured = handle.read()
    args = []
    for option, variable, default in DB_OPTIONS:
        if not re.search(rf"^\s*\b{option}\b\s*=", configured, re.MULTILINE):
            args += [f"--{option}", environ.get(variable, default)]
    return args


def wait_for_psql(argv, environ):
    """wait-for-psql.py: argparse over the options, then connect to the
    ``postgres`` database until it answers or the timeout passes."""
    import psycopg2  # the image's own dependency

    parser = argparse.ArgumentParser(prog="wait-for-psql.py")
    for option, _variable, _default in DB_OPTIONS:
        parser.add_argument(f"--{option}")
    parser.add_argument("--timeout", type=int, default=5)
    args = parser.parse_args(argv)
    config = {}
    if environ.get("ODOO_RC"):
        parsed = configparser.RawConfigParser()
        parsed.read(environ["ODOO_RC"])
        if parsed.has_section("options"):
            config = dict(parsed.items("options"))
    params = {
        option: config.get(option) or getattr(args, option)
        for option, _variable, _default in DB_OPTIONS
    }
    deadline = time.time() + args.timeout
    error = None
    while time.time() < deadline:
        try:
            psycopg2.connect(
                user=params["db_user"],
                host=params["db_host"],
                port=params["db_port"],
                password=params["db_password"],
                dbname="postgres",
            ).close()
            return
        except psycopg2.OperationalError as exc:
            error = exc
        time.sleep(1)
    sys.exit(f"Database connection failure: {error}")


def odoo_program():
    """The ``odoo`` script of the Python running this one: in a virtualenv
    that is not activated, it is not on PATH."""
    here = os.path.dirname(sys.executable)
    found = shutil.which(
        "odoo", path=os.pathsep.join([here, os.environ.get("PATH", "")])
    )
    if not found:
        sys.exit(f"no 'odoo' program beside {sys.executable} nor on PATH")
    return found


def main(argv, environ=None):
    environ = os.environ if environ is None else environ
    options = db_args(environ)
    first = argv[0] if argv else ""
    if first in ("--", "odoo") or first.startswith("-"):
        rest = argv[1:] if first in ("--", "odoo") else argv
        odoo = odoo_program()
        if rest[:1] == ["scaffold"]:
            os.execv(odoo, [odoo, *rest])
        # Unquoted ${DB_ARGS[@]} in the entrypoint: bash splits on whitespace.
        wait_for_psql([*" ".join(options).split(), "--timeout=30"], environ)
        os.execv(odoo, [odoo, *rest, *options])
    os.execvp(argv[0], argv)


if __name__ == "__main__":
    main(sys.argv[1:])
