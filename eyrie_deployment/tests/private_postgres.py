"""A PostgreSQL cluster of a test's own, on loopback, whose roles need their
password (``scram-sha-256``), as PGO's do: the machine's own cluster trusts
every local connection, so it cannot tell a right password from a wrong one.

Built with the PostgreSQL server binaries of this machine (``initdb``,
``pg_ctl``), run as the ``postgres`` system user when the tests run as root
(PostgreSQL refuses to run as root). Missing binaries fail the test: nothing
is skipped.

``settings`` are written into the cluster's ``postgresql.conf`` (a backup
carries them, a restore brings them back); ``start()`` and ``stop()`` let a
test stop the server, work on its data directory and start it again, with
settings for that one start, as an operator's restore Job does.
"""

import glob
import os
import pwd
import shlex
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

    def __init__(self, settings=None):
        self.port = free_port()
        self.host = "127.0.0.1"
        self.root = tempfile.mkdtemp(prefix="eyrie-pg-")
        self.data = os.path.join(self.root, "data")
        self.log_file = os.path.join(self.root, "log")
        self.settings = dict(settings or {})
        self._owner = None
        if os.geteuid() == 0:
            self._owner = pwd.getpwnam("postgres")
            os.chown(self.root, self._owner.pw_uid, self._owner.pw_gid)

    def _run(self, *command, check=True, env=None, timeout=120):
        """Runs ``command`` as the cluster's owner; its CompletedProcess
        (text). ``env``: variables added to this process's environment."""
        if self._owner:
            command = ("runuser", "-u", "postgres", "--", *command)
        return subprocess.run(
            command,
            check=check,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **env} if env else None,
        )

    def chown(self, path):
        """Gives ``path`` to the cluster's owner (the ``postgres`` user when
        the tests run as root)."""
        if self._owner:
            os.chown(path, self._owner.pw_uid, self._owner.pw_gid)

    def __enter__(self):
        try:
            self._create()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _create(self):
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
        if self.settings:
            with open(os.path.join(self.data, "postgresql.conf"), "a") as conf:
                for name, value in self.settings.items():
                    quoted = str(value).replace("'", "''")
                    conf.write(f"{name} = '{quoted}'\n")
        self.start()

    def __exit__(self, *exc_info):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def start(self, check=True, **settings):
        """Starts the server (``pg_ctl start --wait``); ``settings`` apply
        to this start only. ``check=False``: returns the CompletedProcess of
        a failed start instead of raising."""
        options = [f"-p {self.port} -k {self.root} -c listen_addresses={self.host}"]
        options += [
            shlex.quote(f"-c{name}={value}") for name, value in settings.items()
        ]
        return self._run(
            _server_binary("pg_ctl"),
            "-D",
            self.data,
            "-w",
            "-l",
            self.log_file,
            "-o",
            " ".join(options),
            "start",
            check=check,
        )

    def running(self):
        status = self._run(
            _server_binary("pg_ctl"), "-D", self.data, "status", check=False
        )
        return status.returncode == 0

    def stop(self):
        """Stops the server if it runs (fast shutdown)."""
        if self.running():
            self._run(
                _server_binary("pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"
            )

    def log(self):
        """The server's log so far (every start appends to it)."""
        with open(self.log_file, errors="replace") as handle:
            return handle.read()

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
