"""A private PostgreSQL cluster backed up by the real pgBackRest, and what
Crunchy PGO does with the pgBackRest options it is given.

The cluster (``private_postgres.PrivatePostgres``) archives its WAL with
``pgbackrest archive-push`` to a repository in its own temporary folder
(stanza ``db``, repository 1, as PGO's), with this machine's ``pgbackrest``
(Debian's package). Everything pgBackRest writes (repository, locks) stays
in that folder; its file log is off. Without ``pgbackrest`` the test fails:
nothing is skipped.

PGO's side, from its sources (``internal/controller/postgrescluster/
pgbackrest.go``, ``internal/pgbackrest/config.go``, ``cmd/pgbackrest/
main.go``):

- ``backup()`` runs what the manual backup Job runs in the repository host
  for a volume repository: one ``bash`` line, ``pgbackrest backup
  --stanza=db --repo=1`` and the ``manual.options`` joined with spaces; the
  Job logs what it prints;
- ``restore()`` does what ``reconcileRestoreJob`` and ``RestoreCommand``
  do: refuse the options PGO refuses, add ``--stanza``, ``--pg1-path``,
  ``--repo``, ``--delta`` (unless given) and ``--target-action=promote``
  (when a ``--target`` is given), run ``pgbackrest restore`` with them
  through ``bash``, then start PostgreSQL with ``hot_standby`` on and
  without archiving, resume replay whenever it pauses, and wait until it
  has left recovery. PGO then stops it and Patroni starts the instance
  normally: so does ``restore()``.
"""

import re
import shutil
import time

import psycopg2

from .private_postgres import PrivatePostgres

STANZA = "db"
REPO = "1"
# PGO refuses these in restore options (reconcileRestoreJob): it sets them.
PGO_REFUSED_RESTORE_FLAGS = (
    "--repo",
    "--stanza",
    "--pg1-path",
    "--target-action",
    "--link-map",
)
_FLAG_RE = re.compile(r"--[^ =]+")
RECOVERY_TIMEOUT = 60


def pgbackrest_binary():
    found = shutil.which("pgbackrest")
    if not found:
        raise RuntimeError(
            "pgBackRest is missing: install it (Debian: apt-get install "
            "pgbackrest) to run the pgBackRest tests; bin/eyrie-test does so "
            "when it runs as root"
        )
    return found


class PgoRefused(Exception):
    """Options PGO would not run (it records a warning event instead)."""


def pgo_restore_options(options, pg1_path):
    """The options PGO's restore Job gives ``pgbackrest restore`` for the
    restore ``options`` of a PostgresCluster (``reconcileRestoreJob``), or
    PgoRefused."""
    flags = {flag for option in options for flag in _FLAG_RE.findall(option)}
    refused = flags.intersection(PGO_REFUSED_RESTORE_FLAGS)
    if refused:
        raise PgoRefused(f"PGO refuses {sorted(refused)} in restore options")
    options = [
        *options,
        f"--stanza={STANZA}",
        f"--pg1-path={pg1_path}",
        f"--repo={REPO}",
    ]
    if "--delta" not in flags:
        options.append("--delta")
    if "--target" in flags:
        options.append("--target-action=promote")
    return options


class RecoveryFailed(Exception):
    """PostgreSQL stopped during the recovery of a restore; the message holds
    the server's log of that start."""


class PgBackRestCluster(PrivatePostgres):
    """``with PgBackRestCluster() as pg: pg.backup(["--type=full"])``: a
    private cluster whose WAL is archived to its pgBackRest repository, with
    the stanza created. Autovacuum is off, so that nothing commits while a
    test keeps the database idle."""

    def __init__(self):
        binary = pgbackrest_binary()
        super().__init__(settings={"archive_mode": "on", "autovacuum": "off"})
        self.binary = binary
        self.config = f"{self.root}/pgbackrest.conf"
        self.settings["archive_command"] = (
            f"{binary} --config={self.config} --stanza={STANZA} archive-push %p"
        )
        with open(self.config, "w") as conf:
            conf.write(
                "[global]\n"
                f"repo1-path={self.root}/repo\n"
                "repo1-retention-full=99\n"
                f"lock-path={self.root}/lock\n"
                "log-level-file=off\n"
                # A checkpoint at once, not at the next scheduled one.
                "start-fast=y\n"
                f"\n[{STANZA}]\n"
                f"pg1-path={self.data}\n"
                f"pg1-port={self.port}\n"
                f"pg1-socket-path={self.root}\n"
                "pg1-user=postgres\n"
            )
        self.chown(self.config)

    def __enter__(self):
        entered = super().__enter__()
        try:
            self.pgbackrest("stanza-create")
        except BaseException:
            self.__exit__()
            raise
        return entered

    def _shell(self, line, check=True):
        """``bash -c line`` as the cluster's owner, with the superuser's
        password for pgBackRest's connections."""
        result = self._run(
            "bash",
            "-c",
            line,
            check=False,
            env={"PGPASSWORD": self.SUPERUSER_PASSWORD},
        )
        if check and result.returncode:
            raise RuntimeError(
                f"{line!r} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def pgbackrest(self, command, *options, check=True):
        """``pgbackrest <command>`` on the stanza with ``options`` (each
        passed as one word); its CompletedProcess."""
        words = [self.binary, f"--config={self.config}", f"--stanza={STANZA}"]
        words += [command, *options]
        result = self._run(
            *words, check=False, env={"PGPASSWORD": self.SUPERUSER_PASSWORD}
        )
        if check and result.returncode:
            raise RuntimeError(
                f"pgbackrest {command} failed ({result.returncode}):\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def backup(self, options):
        """PGO's manual backup of a volume repository with ``options``
        (``manual.options``); what it printed (the Job's log)."""
        line = " ".join(
            [
                self.binary,
                f"--config={self.config}",
                "backup",
                f"--stanza={STANZA}",
                f"--repo={REPO}",
                *options,
            ]
        )
        result = self._shell(line)
        return result.stdout + result.stderr

    def archive_now(self):
        """Switches to a new WAL segment and waits until the last one is in
        the repository (``pgbackrest check``)."""
        self.pgbackrest("check")

    def restore(self, options):
        """PGO's restore with ``options`` (``restore.options`` or a data
        source's), in place: the server is stopped, restored, recovered,
        promoted and started again. Raises PgoRefused, or RecoveryFailed
        when PostgreSQL gives up recovering."""
        options = pgo_restore_options(options, self.data)
        self.stop()
        self._shell(f"{self.binary} --config={self.config} restore {' '.join(options)}")
        self._recover()
        self.stop()
        self.start()

    def _recover(self):
        """Starts the restored cluster as PGO's restore script does and
        waits until it has left recovery, resuming a paused replay."""
        logged = len(self.log())
        self.start(
            check=False, archive_command="false", archive_mode="on", hot_standby="on"
        )
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running():
                raise RecoveryFailed(self.log()[logged:])
            try:
                (state,) = self.execute(
                    "SELECT CASE"
                    " WHEN NOT pg_catalog.pg_is_in_recovery() THEN 'done'"
                    " WHEN NOT pg_catalog.pg_is_wal_replay_paused() THEN 'replaying'"
                    " ELSE pg_catalog.pg_wal_replay_resume()::text || 'resumed'"
                    " END"
                )[0]
            except psycopg2.OperationalError:
                state = "starting"
            if state == "done":
                return
            time.sleep(0.2)
        raise RecoveryFailed(
            f"still recovering after {RECOVERY_TIMEOUT} s:\n{self.log()[logged:]}"
        )
