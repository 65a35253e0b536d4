"""The pgBackRest options Eyrie gives Crunchy PGO, and the backup label a
backup prints.

PGO runs ``pgbackrest restore`` with the options of
``spec.backups.pgbackrest.restore.options`` (an in-place restore) or of
``spec.dataSource.postgresCluster.options`` (a new cluster, a clone), and
``pgbackrest backup`` with those of ``spec.backups.pgbackrest.manual.options``.
What it does with them (PGO's ``reconcileRestoreJob`` and
``generateBackupJobSpecIntent`` in
``internal/controller/postgrescluster/pgbackrest.go``, ``RestoreCommand`` in
``internal/pgbackrest/config.go``, and the manual backup's exec in
``cmd/pgbackrest/main.go``):

- the restore options are joined with spaces and read again by ``bash``
  (``bash -xc "pgbackrest restore ${opts}"``): each option is a shell word,
  so nothing a user typed may reach them. Labels and times are checked here
  and rendered from a fixed alphabet;
- PGO adds ``--stanza``, ``--pg1-path``, ``--repo`` and ``--delta`` itself,
  and refuses ``--target-action`` (the restore is then never run, only a
  warning event says why). It adds ``--target-action=promote`` when a
  ``--target`` is given; without one (``--type=immediate``) PostgreSQL
  pauses at the target and PGO's restore script resumes it, which ends
  recovery and promotes;
- the manual backup's options follow ``--stanza=db --repo=N`` on
  ``pgbackrest backup``'s command line (as words of a ``bash`` script when
  the repository is a volume, as arguments for a bucket), and what it prints
  ends up in the backup Job's log.

Restoring a backup *as that backup* (``--set=<label> --type=immediate``)
stops as soon as the backup is consistent. A point in time
(``--type=time --target=...``) needs a commit after the target in the
archive: on a database idle since, PostgreSQL 13 and later stop with "recovery
ended before configured recovery target was reached".
"""

import datetime
import re

# pgBackRest's backup labels: a full backup's, or a differential (D) or
# incremental (I) one's, which names its full backup first.
_LABEL = r"[0-9]{8}-[0-9]{6}F(?:_[0-9]{8}-[0-9]{6}[DI])?"
LABEL_RE = re.compile(_LABEL)
# What ``pgbackrest backup`` prints at log level info once the backup is done
# ("P00   INFO: new backup label = 20260820-120000F"), in a log line of its
# own or inside the line PGO's backup Job logs the command's output with.
_NEW_LABEL_RE = re.compile(rf"new backup label = ({_LABEL})(?![0-9A-Za-z_])")


def is_backup_label(label):
    """Whether ``label`` is a pgBackRest backup label (and nothing else)."""
    return isinstance(label, str) and LABEL_RE.fullmatch(label) is not None


def restore_options(backup_set=None, target_time=None):
    """The options of ``pgbackrest restore`` for PGO, as a list of strings:
    ``backup_set`` (a backup label) restores exactly that backup and
    promotes as soon as it is consistent; ``target_time`` (a ``datetime``,
    naive in UTC as Odoo's, or aware; seconds kept) restores to that moment.
    Exactly one of the two; anything else is refused (``ValueError``)."""
    if (backup_set is None) == (target_time is None):
        raise ValueError("Give either a backup set or a target time to restore.")
    if backup_set is not None:
        if not is_backup_label(backup_set):
            raise ValueError(f"Not a pgBackRest backup label: {backup_set!r}")
        # No --target-action: PGO refuses it; with no --target, its restore
        # script resumes the paused recovery, which promotes.
        return [f"--set={backup_set}", "--type=immediate"]
    if not isinstance(target_time, datetime.datetime):
        # One exception for every refused value, whatever its type.
        raise ValueError(f"Not a date and time: {target_time!r}")  # noqa: TRY004
    if target_time.tzinfo is not None:
        target_time = target_time.astimezone(datetime.UTC)
    # The quotes are for the shell PGO runs the restore in.
    return ["--type=time", f'--target="{target_time:%Y-%m-%d %H:%M:%S}+00"']


def backup_label_from_log(text):
    """The label of the backup that a ``pgbackrest backup`` run printed
    (``new backup label = ...``, log level info) in ``text``, the last one
    if there are several; None when there is none."""
    if not isinstance(text, str):
        return None
    labels = _NEW_LABEL_RE.findall(text)
    return labels[-1] if labels else None


def backup_options():
    """The options of PGO's manual backup (``manual.options``): a full
    backup, and pgBackRest's console at level info (its default is warn),
    so that the Job's log holds the new backup's label."""
    return ["--type=full", "--log-level-console=info"]
