"""The pgBackRest options of ``tools/pgbackrest.py``, run for real: this
machine's ``pgbackrest`` backs up and restores a private PostgreSQL cluster
of the test, given exactly the options Eyrie hands PGO, and everything PGO
itself adds to them and does around them (``pgbackrest_peer.py``).

Restoring a backup as a point in time, the moment its job saw it finish
(Eyrie's old way), fails on a database idle since; restoring it by its set
(``--set=<label> --type=immediate``) gives exactly its data.
"""

import datetime
import time

from odoo.tests import BaseCase, tagged

from ..tools import pgbackrest
from .pgbackrest_peer import (
    PgBackRestCluster,
    PgoRefused,
    RecoveryFailed,
    pgo_restore_options,
)

LABEL = "20261206-120000F"


def _utcnow():
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def _next_second():
    """The next whole second (UTC, naive), once 1.1 s past it: a time in
    whole seconds (a recovery target, a backup's stop time) strictly between
    what happened before the call and what happens after it."""
    now = _utcnow()
    second = now.replace(microsecond=0) + datetime.timedelta(seconds=1)
    time.sleep((second - now).total_seconds() + 1.1)
    return second


@tagged("post_install", "-at_install")
class TestRestoreOptions(BaseCase):
    def test_backup_set(self):
        self.assertEqual(
            pgbackrest.restore_options(backup_set=LABEL),
            [f"--set={LABEL}", "--type=immediate"],
        )
        for label in (
            "20261206-120000F_20261206-130000I",
            "20261206-120000F_20261206-130000D",
        ):
            self.assertEqual(
                pgbackrest.restore_options(backup_set=label)[0], f"--set={label}"
            )

    def test_target_time(self):
        self.assertEqual(
            pgbackrest.restore_options(
                target_time=datetime.datetime(2026, 12, 6, 12, 30, 5, 999999)
            ),
            ["--type=time", '--target="2026-12-06 12:30:05+00"'],
        )
        paris = datetime.timezone(datetime.timedelta(hours=1))
        self.assertEqual(
            pgbackrest.restore_options(
                target_time=datetime.datetime(2026, 12, 6, 13, 30, 5, tzinfo=paris)
            ),
            ["--type=time", '--target="2026-12-06 12:30:05+00"'],
        )

    def test_refusals(self):
        bad_labels = (
            "latest",
            "",
            "20261206-120000I",
            "20261206-120000F ",
            "20261206-120000F\n",
            "20261206-120000F --type=default",
            "20261206-120000F;touch /tmp/x",
            "20261206-120000F_20261206-130000F",
            "2026120-120000F",
            "٢٠٢٦١٢٠٦-120000F",  # other digits than 0-9
            b"20261206-120000F",
            20261206,
        )
        for label in bad_labels:
            with self.assertRaises(ValueError, msg=repr(label)):
                pgbackrest.restore_options(backup_set=label)
        bad_times = (
            "2026-12-06 12:00:00",
            '2026-12-06 12:00:00+00" --type=default "',
            datetime.date(2026, 12, 6),
            1765022400,
        )
        for target in bad_times:
            with self.assertRaises(ValueError, msg=repr(target)):
                pgbackrest.restore_options(target_time=target)
        with self.assertRaises(ValueError):
            pgbackrest.restore_options()
        with self.assertRaises(ValueError):
            pgbackrest.restore_options(
                backup_set=LABEL, target_time=datetime.datetime(2026, 12, 6)
            )

    def test_label_from_log(self):
        line = "2026-12-06 12:00:04.123 P00   INFO: new backup label = {}\n"
        self.assertEqual(
            pgbackrest.backup_label_from_log(
                "P00   INFO: backup command begin 2.45: --type=full\n"
                + line.format("20261206-120000F")
                + "P00   INFO: full backup size = 22.2MB, file total = 967\n"
            ),
            "20261206-120000F",
        )
        incremental = "20261206-120000F_20261206-130000I"
        self.assertEqual(
            pgbackrest.backup_label_from_log(line.format(incremental)), incremental
        )
        # PGO's backup Job for a volume repository logs the command's output
        # in one logrus line, its newlines escaped.
        self.assertEqual(
            pgbackrest.backup_label_from_log(
                'time="2026-12-06T12:00:05Z" level=info msg="output=[P00   INFO: '
                "new backup label = 20261206-120000F\\nP00   INFO: full backup "
                'size = 22.2MB\\n]"'
            ),
            "20261206-120000F",
        )
        self.assertEqual(
            pgbackrest.backup_label_from_log(
                line.format("20261206-110000F") + line.format("20261206-120000F")
            ),
            "20261206-120000F",
        )
        for text in (
            "",
            None,
            "P00   INFO: backup command end: completed successfully",
            line.format("20261206-120000X"),
            line.format("20261206-120000Fx"),
        ):
            self.assertIsNone(pgbackrest.backup_label_from_log(text), repr(text))

    def test_pgo_runs_them(self):
        """PGO does not run a restore whose options hold one it sets itself
        (``--target-action`` among them): these hold none. It promotes at a
        ``--target``; at ``--type=immediate`` its restore script resumes the
        paused recovery (``TestPgBackRestReal``)."""
        self.assertEqual(
            pgo_restore_options(pgbackrest.restore_options(backup_set=LABEL), "/d"),
            [
                f"--set={LABEL}",
                "--type=immediate",
                "--stanza=db",
                "--pg1-path=/d",
                "--repo=1",
                "--delta",
            ],
        )
        self.assertEqual(
            pgo_restore_options(
                pgbackrest.restore_options(
                    target_time=datetime.datetime(2026, 12, 6, 12, 30)
                ),
                "/d",
            ),
            [
                "--type=time",
                '--target="2026-12-06 12:30:00+00"',
                "--stanza=db",
                "--pg1-path=/d",
                "--repo=1",
                "--delta",
                "--target-action=promote",
            ],
        )
        with self.assertRaises(PgoRefused):
            pgo_restore_options(["--type=immediate", "--target-action=promote"], "/d")

    def test_backup_options(self):
        self.assertEqual(
            pgbackrest.backup_options(), ["--type=full", "--log-level-console=info"]
        )


@tagged("post_install", "-at_install")
class TestPgBackRestReal(BaseCase):
    def setUp(self):
        super().setUp()
        self.pg = self.enterContext(PgBackRestCluster())
        self.pg.execute("CREATE TABLE note (body text)")

    def _write(self, body):
        self.pg.execute("INSERT INTO note VALUES (%s)", body)

    def _notes(self):
        return sorted(row[0] for row in self.pg.execute("SELECT body FROM note"))

    def _timeline(self):
        return self.pg.execute("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]

    def _backup(self):
        log = self.pg.backup(pgbackrest.backup_options())
        label = pgbackrest.backup_label_from_log(log)
        self.assertTrue(label, f"no backup label in the backup's output:\n{log}")
        self.assertRegex(label, r"^[0-9]{8}-[0-9]{6}F$")
        self.assertIn(
            f'"label":"{label}"', self.pg.pgbackrest("info", "--output=json").stdout
        )
        return label

    def test_restore_backup_of_idle_database(self):
        self._write("in the backup")
        label = self._backup()
        # The moment the backup job saw it done; nothing commits from here.
        completed_at = _next_second()

        # Eyrie's old options: a point in time that no commit follows.
        with self.assertRaises(RecoveryFailed) as failure:
            self.pg.restore(pgbackrest.restore_options(target_time=completed_at))
        self.assertIn(
            "FATAL:  recovery ended before configured recovery target was reached",
            str(failure.exception),
        )
        self.assertFalse(self.pg.running())

        # The backup by its set: on the same idle database.
        self.pg.restore(pgbackrest.restore_options(backup_set=label))
        self.assertEqual(self._notes(), ["in the backup"])
        self.assertEqual(self.pg.execute("SELECT pg_is_in_recovery()"), [(False,)])

        # A change after the backup, archived, then idle again: gone.
        self._write("after the backup")
        self.pg.archive_now()
        self.pg.restore(pgbackrest.restore_options(backup_set=label))
        self.assertEqual(self._notes(), ["in the backup"])
        self._write("written after the restore")
        self.assertEqual(self._notes(), ["in the backup", "written after the restore"])

    def test_point_in_time_then_backup_set_across_timelines(self):
        self._write("first")
        # PGO's manual backup as Eyrie asked for it so far: pgBackRest's
        # console stays at level warn, so the log holds no label.
        log = self.pg.backup(["--type=full"])
        self.assertIsNone(pgbackrest.backup_label_from_log(log), log)
        target = _next_second()
        self._write("second")
        later_backup = self._backup()
        self._write("after the later backup")
        self.pg.archive_now()

        self.pg.restore(pgbackrest.restore_options(target_time=target))
        self.assertEqual(self._notes(), ["first"])
        self.assertEqual(self._timeline(), 2)

        # The later backup was taken on timeline 1 after the point where
        # timeline 2 branched off: restoring it gives exactly its data.
        self.pg.restore(pgbackrest.restore_options(backup_set=later_backup))
        self.assertEqual(self._notes(), ["first", "second"])
        self.assertEqual(self._timeline(), 3)
