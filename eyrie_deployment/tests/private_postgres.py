"""A PostgreSQL cluster of a test's own, on loopback, whose roles need their
password (``scram-sha-256``), as PGO's do: the machine's own cluster trusts
every local connection, so it cannot tell a right password from a wrong one.

Built with the PostgreSQL server binaries of this machine (``initdb``,
``pg_ctl``), run as the ``postgres`` system user when the tests run as root
(PostgreSQL refuses to run as root). Missing binaries fail the test: nothing
is skipped.
"""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile

import psycopg2
from psycopg2 import sql


def _server_binary(name):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or [
        shutil.which(name)
    ]
    if not found[-1]:
        raise RuntimeError(
            f"PostgreSQL's {name} is missing: install the PostgreSQL server "
            "(Debian: postgresql) to run the real-peer tests"
        )
    return found[-1]


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """``with PrivatePostgres() as pg: pg.create_role("odoo", "secret")``."""

    SUPERUSER_PASSWORD = "superuser-of-the-test"

    def __init__(self):
        self.port = free_port()
        self.host = "127.0.0.1"
        self.root = tempfile.mkdtemp(prefix="eyrie-pg-")
        self.data = os.path.join(self.root, "data")
        self._owner = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)

    def _run(self, *command):
        if self._owner:
            command = ("runuser", "-u", "postgres", "--", *command)
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def __enter__(self):
        password_file = os.path.join(self.root, "pw")
        with open(password_file, "w") as handle:
            handle.write(self.SUPERUSER_PASSWORD)
        if self._owner:
            os.chown(password_file, self._owner.pw_uid, self._owner.pw_gid)
        self._run(
            _server_binary("initdb"),
            "-D",
            self.data,
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
        )
        os.unlink(password_file)
        self._run(
            _server_binary("pg_ctl"),
            "-D",
            self.data,
            "-w",
            "-l",
            os.path.join(self.root, "log"),
            "-o",
            f"-p {self.port} -k {self.root} -c listen_addresses={self.host}",
            "start",
        )
        return self

    def __exit__(self, *exc_info):
        try:
            self._run(_server_binary("pg_ctl"), "-D", self.data, "-m", "fast", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def connect(self, user="postgres", password=SUPERUSER_PASSWORD, dbname="postgres"):
        connection = psycopg2.connect(
            host=self.host, port=self.port, user=user, password=password, dbname=dbname
        )
        connection.autocommit = True
        return connection

    def execute(self, query, *params, **connect):
        connection = self.connect(**connect)
        try:
            with connection.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall() if cursor.description else None
        finally:
            connection.close()

    def create_role(self, name, password, options="CREATEDB"):
        """A login role, as PGO makes one of ``spec.users`` (options
        ``CREATEDB``), with its password from the pguser Secret."""
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD %s").format(
                sql.Identifier(name), sql.SQL(options)
            ),
            password,
        )

    def databases(self):
        return {row[0] for row in self.execute("SELECT datname FROM pg_database")}
