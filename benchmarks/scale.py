#!/usr/bin/env python3
"""Eyrie at scale: the timers cron, the job runner and action_deploy over
XML-RPC with many deployments in a real database, and two job runner
processes sharing one queue. Prints one table per measurement, then the
speed targets: each figure against an anchor measured beside it in the same
run (a ratio), and the SQL queries of both. Speed targets only report
"MISSED"; failed correctness checks (each due deployment paused once, each
job run once...) exit with status 1.

    bin/eyrie-bench benchmarks/scale.py [--deployments 100000] [--due 1000]
        [--jobs 1000] [--rpc-calls 200] [--double-jobs 500]

Section 3 (many timers due) runs last: the pause jobs it creates are left
pending, out of the job runner measurements. It commits, as the crons do in
production. Its rows (scopes "Scale benchmark N", deployments scale-NNNNNNN,
their jobs and messages) are deleted before the run and after it (--keep
leaves them for inspection), so it can run again on the same database,
including the test database after bin/eyrie-test.
"""

import argparse
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time
import xmlrpc.client
from datetime import timedelta

import psycopg2
from odoo_server import running_server, stop_process
from queue_runner import due_queue_jobs, run_due_queue_jobs

import odoo
from odoo import SUPERUSER_ID, api, fields, models, sql_db
from odoo.sql_db import connection_info_for
from odoo.tools import SQL, config

SCOPE_PREFIX = "Scale benchmark"
BOOK_NAME = "Scale benchmark: one ConfigMap"
NAME_PREFIX = "scale-"
SCOPE_COUNT = 4
DOMAIN = "scale.example.com"
PAUSE_AFTER = timedelta(days=7)
DROP_AFTER = timedelta(days=30)
# The timers cron's default batch (_cron_apply_timers(batch_size=200)): its
# query asks for one row more to know whether more are due.
TIMER_BATCH = 200
STEP_TEMPLATE = """apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  deployment: "{{ deployment.name }}"
  image: "{{ values.image }}"
  hostname: "{{ values.hostname }}"
"""
# The speed targets. The timers cron with nothing due has a time limit;
# the others are ratios to an anchor measured in the same run (a slower
# machine slows both), and counts of SQL queries.
TARGET_IDLE_MS = 50
# action_deploy over XML-RPC / a read of one field, medians of the round trip.
TARGET_RPC_RATIO = 2
# Job runner overhead per job / a queue job that does nothing, same runner.
TARGET_JOB_RATIO = 1.5
# Eyrie's own queries per job: beyond those of the job that does nothing.
TARGET_JOB_QUERIES = 6
# Timers cron, N due / writing their fields and enqueuing N bare queue jobs.
TARGET_DUE_RATIO = 2
TARGET_DUE_QUERIES = 6
# The job that does nothing: queue_job's own test job (queue.job._test_job,
# with its job function shipped by queue_job), no arguments.
BARE_JOB_MODEL = "queue.job"
BARE_JOB_METHOD = "_test_job"
# Bare jobs run untimed first: queue_job's code paths for that function.
BARE_JOB_WARMUP = 10
# The deployment fields the timers cron writes when it pauses one
# (_fire_timer: _start_pause's state, then timer_blocked_until and
# timer_refusal), for the anchor; timer_blocked_until is set per run.
PAUSE_WRITES = {"state": "pausing", "timer_refusal": False}
TIMER_RETRY_DELAY = timedelta(hours=1)
# XML-RPC calls whose SQL queries are counted in-process (the same call).
RPC_QUERY_SAMPLE = 5
# RSS may grow this much more for 1,000 due than for 200 due and still count
# as flat: allocator noise, not growth with the number of rows.
FLAT_MEMORY_SLACK = 2 << 20
WORKER_DEADLINE_SECONDS = 600


# ----------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------


def print_table(title, headers, rows, left=(0,)):
    """An aligned text table: numbers right, the ``left`` columns left."""
    table = [headers, *[[str(cell) for cell in row] for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers))]

    def line(row):
        cells = [
            cell.ljust(width) if i in left else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    print(f"\n{title}")
    print(line(headers))
    print("  ".join("-" * width for width in widths))
    for row in table[1:]:
        print(line(row))
    sys.stdout.flush()


def verdict(value, limit):
    return "met" if value <= limit else "MISSED"


def ms(seconds):
    return f"{seconds * 1000:.1f}"


def percentile(values, fraction):
    """Nearest-rank percentile: a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def latency_rows(seconds, limit_ms):
    """median / p95 / max rows of a latency table, the median against target."""
    median = statistics.median(seconds)
    return [
        ["min", ms(min(seconds)), "", ""],
        ["median", ms(median), f"<= {limit_ms}", verdict(median * 1000, limit_ms)],
        ["p95", ms(percentile(seconds, 0.95)), "", ""],
        ["max", ms(max(seconds)), "", ""],
    ]


def load_average():
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def queries_sent():
    """The SQL statements this process sent so far, on every cursor: Odoo
    counts each one (``odoo.sql_db.sql_counter``). A cursor's own count
    (``cr.sql_log_count``) would miss what a job that commits before it
    ends runs on a cursor of its own: every figure and its anchor are
    counted here."""
    return sql_db.sql_counter


class Targets:
    """The speed targets, printed together at the end: never a failure."""

    def __init__(self):
        self.rows = []

    def ratio(self, name, figure, anchor, limit, queries, unit="ms"):
        """``figure`` against ``anchor`` (seconds; ``anchor`` is a pair: what
        it is, its seconds), the ratio within ``limit``."""
        what, seconds = anchor
        ratio = figure / seconds if seconds else math.inf
        self.rows.append(
            [
                name,
                duration(figure, unit),
                f"{duration(seconds, unit)}: {what}",
                f"{ratio:.2f}",
                f"<= {limit:g}",
                verdict(ratio, limit),
                queries,
            ]
        )

    def limit(self, name, figure, limit, result, anchor="", queries=""):
        """A figure with a limit of its own (a time, a count, yes/no)."""
        self.rows.append([name, figure, anchor, "", limit, result, queries])

    def print(self):
        print_table(
            "Speed targets (speed never fails the run; SQL queries: on every "
            "cursor, figure vs anchor)",
            ["target", "figure", "anchor", "ratio", "target", "result", "SQL queries"],
            self.rows,
            left=(0, 2, 6),
        )


def duration(seconds, unit):
    return f"{seconds:.2f} s" if unit == "s" else f"{ms(seconds)} ms"


class Checks:
    """Correctness checks: printed at the end, any failure exits with 1."""

    def __init__(self):
        self.results = []

    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))
        return ok

    @property
    def failed(self):
        return [name for name, ok, _detail in self.results if not ok]

    def print(self):
        rows = [
            [name, "ok" if ok else "FAILED", detail]
            for name, ok, detail in self.results
        ]
        print_table(
            "Correctness checks", ["check", "result", "detail"], rows, left=(0, 2)
        )


# ----------------------------------------------------------------------
# Setup and cleanup
# ----------------------------------------------------------------------


def benchmark_scope_ids(cr):
    cr.execute(
        SQL("SELECT id FROM eyrie_scope WHERE name LIKE %s", f"{SCOPE_PREFIX} %")
    )
    return [row[0] for row in cr.fetchall()]


def cleanup(env):
    """Delete every row a run of this script made (it may have crashed)."""
    cr = env.cr
    scope_ids = benchmark_scope_ids(cr)
    if scope_ids:
        cr.execute(
            SQL(
                "SELECT array_agg(id) FROM eyrie_deployment WHERE scope_id IN %s",
                tuple(scope_ids),
            )
        )
        deployment_ids = cr.fetchone()[0] or []
        # Plain SQL: the ORM refuses to delete deployed deployments and
        # pending jobs, which is right for users and wrong for a benchmark.
        cr.execute(
            SQL(
                "DELETE FROM eyrie_job WHERE deployment_id = ANY(%s) "
                "OR book_id IN (SELECT id FROM eyrie_deployment_book WHERE name = %s)",
                deployment_ids,
                BOOK_NAME,
            )
        )
        for table in ("mail_message", "mail_followers"):
            model_column = "model" if table == "mail_message" else "res_model"
            cr.execute(
                SQL(
                    "DELETE FROM %s WHERE %s = 'eyrie.deployment' AND res_id = ANY(%s)",
                    SQL.identifier(table),
                    SQL.identifier(model_column),
                    deployment_ids,
                )
            )
        cr.execute(
            SQL("DELETE FROM eyrie_deployment WHERE id = ANY(%s)", deployment_ids)
        )
        env.invalidate_all(flush=False)
        env["eyrie.scope"].browse(scope_ids).unlink()
    env["eyrie.deployment.book"].with_context(active_test=False).search(
        [("name", "=", BOOK_NAME)]
    ).unlink()
    cr.commit()


def make_scopes(env):
    """A few scopes on the dry-run cluster whose books are one ConfigMap, so
    that every job is one short step; half of them allow drop."""
    book = env["eyrie.deployment.book"].create(
        {
            "name": BOOK_NAME,
            "step_ids": [
                (0, 0, {"name": "settings", "kind": "apply", "template": STEP_TEMPLATE})
            ],
        }
    )
    cluster = env.ref("eyrie_deployment.eyrie_cluster_dry_run")
    books = {
        f"deployment_{action}_book_id": book.id
        for action in ("initialize", "deploy", "pause", "drop")
    }
    scopes = env["eyrie.scope"].create(
        [
            {
                "name": f"{SCOPE_PREFIX} {number}",
                "cluster_id": cluster.id,
                "domain": DOMAIN,
                "allow_drop": number % 2 == 0,
                "deployment_pause_after_seconds": int(PAUSE_AFTER.total_seconds()),
                "deployment_drop_after_seconds": int(DROP_AFTER.total_seconds()),
                **books,
            }
            for number in range(1, SCOPE_COUNT + 1)
        ]
    )
    return scopes, book


def make_templates(env, scopes):
    """Deployments made the ordinary way, through the ORM and the job runner:
    per scope one deployed and one paused. The others are copies of them."""
    deployments = env["eyrie.deployment"].create(
        [
            {
                "name": f"{NAME_PREFIX}template-{scope.id}-{phase}",
                "deployment_type": "odoo",
                "scope_id": scope.id,
            }
            for scope in scopes
            for phase in ("deploy", "pause")
        ]
    )
    deployments.action_deploy()
    env.cr.commit()
    run_jobs_until_idle(env)
    paused = deployments.filtered(lambda d: d.name.endswith("-pause"))
    paused.action_pause()
    env.cr.commit()
    run_jobs_until_idle(env)
    states = set(deployments.mapped("state"))
    if states != {"deploy", "pause"}:
        raise RuntimeError(f"template deployments ended in states {states}")
    return deployments


def shifted_columns(cr):
    """The columns that move with the deployment's history: every timestamp
    but the record's own create/write dates (deployed_at, paused_at and what
    is computed from them: next_pause_at, next_drop_at, ...)."""
    cr.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'eyrie_deployment' "
        "AND data_type = 'timestamp without time zone' "
        "AND column_name NOT IN ('create_date', 'write_date') ORDER BY column_name"
    )
    return [row[0] for row in cr.fetchall()]


def insert_copies(env, templates, count):
    """Insert ``count`` copies of the templates in one statement.

    Every column is the template's, whatever the model holds today, except
    the name, namespace and hostname, and the history timestamps, all moved back by
    the same 1 minute to 1 day: the stored computes (next_pause_at = deployed_at
    + the scope's timer...) do not change under a shift in time, so the rows
    are what the ORM would have stored, with all timers in the future.

    The ids follow ``i`` (ORDER BY): consecutive copies cycle through the
    templates, hence the scopes, whatever plan the join gets. The sections
    take deployments in id order: each gets the same mix of scopes (half
    allow drop) in every run, so their SQL queries are the same from one
    run to the next."""
    cr = env.cr
    cr.execute(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'eyrie_deployment' AND column_name != 'id' "
        "ORDER BY ordinal_position"
    )
    columns = [row[0] for row in cr.fetchall()]
    shifted = set(shifted_columns(cr))

    def value(column):
        if column in ("name", "namespace"):
            return SQL("g.name")
        if column == "hostname":
            # <namespace>.<domain>: unique per cluster, as the ORM stores it.
            return SQL(
                "CASE WHEN t.hostname IS NULL THEN NULL "
                "ELSE g.name || substr(t.hostname, strpos(t.hostname, '.')) END"
            )
        if column in shifted:
            return SQL("t.%s - g.shift", SQL.identifier(column))
        return SQL("t.%s", SQL.identifier(column))

    cr.execute(
        SQL(
            """
            INSERT INTO eyrie_deployment (%(columns)s)
            SELECT %(values)s
              FROM (
                SELECT i,
                       %(prefix)s || lpad(i::text, 7, '0') AS name,
                       (%(templates)s::int[])[1 + mod(i, %(count_templates)s)]
                           AS template,
                       make_interval(secs => 60 + mod(i, 86400)) AS shift
                  FROM generate_series(1, %(count)s) AS i
              ) AS g
              JOIN eyrie_deployment t ON t.id = g.template
          ORDER BY g.i
            """,
            columns=SQL(", ").join(SQL.identifier(column) for column in columns),
            values=SQL(", ").join(value(column) for column in columns),
            prefix=NAME_PREFIX,
            templates=templates.ids,
            count_templates=len(templates),
            count=count,
        )
    )
    cr.commit()
    vacuum_analyze(cr.dbname)


def vacuum_analyze(dbname):
    """Fresh statistics, and no dead rows of an earlier run in the indexes
    (VACUUM cannot run in the ORM's transaction: a connection of its own)."""
    _db, connection_info = connection_info_for(dbname)
    connection = psycopg2.connect(**connection_info)
    try:
        connection.autocommit = True
        with connection.cursor() as cr:
            for table in ("eyrie_deployment", "eyrie_job", "queue_job"):
                cr.execute(f"VACUUM ANALYZE {table}")
    finally:
        connection.close()


def check_orm_consistency(env, deployments, checks, label):
    """Recompute every stored computed field of ``deployments`` with the ORM
    and run every constraint: the rows written in SQL must be exactly what
    the ORM would have stored. Nothing of it is kept."""
    env.cr.commit()
    computed = [
        name
        for name, field in deployments._fields.items()
        if field.store and field.compute
    ]
    stored = {record.id: record.read(computed)[0] for record in deployments}
    for name in computed:
        env.add_to_compute(deployments._fields[name], deployments)
    recomputed = {record.id: record.read(computed)[0] for record in deployments}
    differing = {
        record_id: sorted(
            name
            for name in computed
            if stored[record_id][name] != recomputed[record_id][name]
        )
        for record_id in stored
        if stored[record_id] != recomputed[record_id]
    }
    deployments._validate_fields(list(deployments._fields))
    env.cr.rollback()
    checks.check(
        f"{label}: rows are what the ORM computes, constraints hold",
        not differing,
        f"{len(deployments)} sampled, {len(computed)} computed fields"
        + (f", differing: {differing}" if differing else ""),
    )


def deploy_phase_ids(env, scopes):
    env.cr.execute(
        SQL(
            "SELECT id FROM eyrie_deployment WHERE scope_id IN %s "
            "AND state = 'deploy' ORDER BY id",
            tuple(scopes.ids),
        )
    )
    return [row[0] for row in env.cr.fetchall()]


class DeploymentPool:
    """Deployed deployments not used by an earlier section yet: each section
    works on its own, so one's jobs never reach another's measurement."""

    def __init__(self, ids):
        self.ids = list(ids)

    def take(self, count):
        taken, self.ids = self.ids[:count], self.ids[count:]
        return taken


def setup(env, args, checks):
    timings = []
    start = time.perf_counter()
    cleanup(env)
    timings.append(["delete rows of an earlier run", time.perf_counter() - start])
    start = time.perf_counter()
    scopes, book = make_scopes(env)
    templates = make_templates(env, scopes)
    timings.append(
        [f"{len(templates)} deployments through the ORM", time.perf_counter() - start]
    )
    start = time.perf_counter()
    copies = args.deployments - len(templates)
    insert_copies(env, templates, copies)
    timings.append(
        [f"{copies} copies in SQL + VACUUM ANALYZE", time.perf_counter() - start]
    )
    start = time.perf_counter()
    sample = env["eyrie.deployment"].search(
        [("scope_id", "in", scopes.ids), ("id", "not in", templates.ids)],
        limit=4 * len(templates),
    )
    check_orm_consistency(env, sample, checks, "setup")
    timings.append(["check a sample with the ORM", time.perf_counter() - start])
    rows = [[what, f"{seconds:.2f}"] for what, seconds in timings]
    rows.append(["total", f"{sum(seconds for _what, seconds in timings):.2f}"])
    env.cr.execute(
        SQL(
            "SELECT repository_state, count(*) FROM eyrie_deployment "
            "WHERE scope_id IN %s GROUP BY 1 ORDER BY 1",
            tuple(scopes.ids),
        )
    )
    phases = ", ".join(f"{count} {phase}" for phase, count in env.cr.fetchall())
    print_table(
        f"1. Setup: {phases} in {len(scopes)} scopes on the dry-run cluster",
        ["step", "s"],
        rows,
    )
    return scopes, book


# ----------------------------------------------------------------------
# 2. Timers cron, nothing due
# ----------------------------------------------------------------------


def last_query(cr):
    """The last statement sent, parameters included (psycopg2 keeps it)."""
    return cr._obj.query.decode()


def explain(cr, query):
    cr.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query}")
    return [row[0] for row in cr.fetchall()]


def index_use(cr, plan, columns):
    """For each column, the indexes on it that the plan scans (maybe none)."""
    scanned = set(
        re.findall(
            r"(?:Bitmap Index Scan|Index Only Scan|Index Scan)(?: Backward)? "
            r"(?:using|on) (\w+)",
            "\n".join(plan),
        )
    )
    cr.execute(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE tablename = 'eyrie_deployment'"
    )
    indexes = cr.fetchall()
    return {
        column: sorted(
            name
            for name, definition in indexes
            if column in definition and name in scanned
        )
        for column in columns
    }


def timer_queries(env):
    """The statements _fetch_due_timers and _count_due_timers send, captured
    as sent, so that the plans follow any change of those methods."""
    deployments = env["eyrie.deployment"]
    now = fields.Datetime.now()
    deployments._fetch_due_timers(now, limit=TIMER_BATCH + 1)
    fetch = last_query(env.cr)
    deployments._count_due_timers(now)
    return fetch, last_query(env.cr)


def bench_timers_idle(env, args, checks, targets):
    deployments = env["eyrie.deployment"]
    times, fired = [], 0
    queries = queries_sent()
    for _ in range(args.timer_runs):
        start = time.perf_counter()
        fired += deployments._cron_apply_timers()
        times.append(time.perf_counter() - start)
    queries = (queries_sent() - queries) / args.timer_runs
    checks.check("timers, nothing due: nothing fired", fired == 0, f"{fired} fired")
    limit = TARGET_IDLE_MS
    median = statistics.median(times)
    print_table(
        f"2. Timers cron, nothing due: _cron_apply_timers(), {args.timer_runs} runs, "
        f"{args.deployments} deployments",
        ["what", "ms", "target ms", "result"],
        [
            *latency_rows(times, limit),
            ["SQL queries per run", f"{queries:.0f}", "", ""],
        ],
    )
    targets.limit(
        "timers cron, nothing due: median",
        f"{ms(median)} ms",
        f"<= {limit} ms",
        verdict(median * 1000, limit),
        queries=f"{queries:.0f} per run",
    )
    fetch, count = timer_queries(env)
    plan = explain(env.cr, fetch)
    print("\nEXPLAIN (ANALYZE, BUFFERS) of the _fetch_due_timers query:")
    print("\n".join(f"  {line}" for line in plan))
    report_index_use(env.cr, "_fetch_due_timers", plan, targets)
    report_index_use(env.cr, "_count_due_timers", explain(env.cr, count), targets)
    env.cr.rollback()


def report_index_use(cr, method, plan, targets):
    use = index_use(cr, plan, ("next_pause_at", "next_drop_at"))
    scans = sorted(set(re.findall(r"((?:Parallel )?Seq Scan on \w+)", "\n".join(plan))))
    rows = [
        [column, ", ".join(names) or "NOT USED", "yes", "met" if names else "MISSED"]
        for column, names in use.items()
    ]
    indexed = [column for column, names in use.items() if names]
    targets.limit(
        f"{method}: timer columns with an index scanned",
        f"{len(indexed)} of {len(use)}",
        "all",
        verdict(len(use) - len(indexed), 0),
    )
    print_table(
        f"{method}: indexes on the timer columns in its plan"
        + (f" (also: {', '.join(scans)})" if scans else ""),
        ["column", "index scanned", "target", "result"],
        rows,
    )


# ----------------------------------------------------------------------
# 3. Timers cron, many due
# ----------------------------------------------------------------------


def make_due(env, ids):
    """Move the history of ``ids`` back in time until their pause timer is an
    hour overdue: the same shift of every history timestamp as in the
    setup, so next_drop_at and the rest stay what the ORM computes."""
    shift = SQL("%s - d.next_pause_at", fields.Datetime.now() - timedelta(hours=1))
    env.cr.execute(
        SQL(
            """
            UPDATE eyrie_deployment AS d SET %(sets)s
              FROM (SELECT id, %(shift)s AS shift FROM eyrie_deployment AS d
                     WHERE id = ANY(%(ids)s)) AS g
             WHERE d.id = g.id
            """,
            sets=SQL(", ").join(
                SQL(
                    "%s = d.%s + g.shift",
                    SQL.identifier(column),
                    SQL.identifier(column),
                )
                for column in shifted_columns(env.cr)
            ),
            shift=shift,
            ids=ids,
        )
    )
    # The rows changed behind the ORM's back; a commit also empties its cache.
    env.cr.commit()


def max_id(cr, table):
    cr.execute(SQL("SELECT coalesce(max(id), 0) FROM %s", SQL.identifier(table)))
    return cr.fetchone()[0]


def current_rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fire_due(env):
    """Call the cron as Odoo would until nothing is due. Returns (seconds,
    deployments fired, RSS growth after each call, SQL queries sent).
    RSS, not tracemalloc: tracemalloc makes this code several times slower."""
    rss_before = current_rss()
    queries = queries_sent()
    growth, fired = [], 0
    start = time.perf_counter()
    while True:
        count = env["eyrie.deployment"]._cron_apply_timers()
        growth.append(current_rss() - rss_before)
        fired += count
        if not count:
            seconds = time.perf_counter() - start
            return seconds, fired, growth, queries_sent() - queries


def write_and_enqueue(env, ids):
    """The anchor of the timers cron: what pausing ``ids`` takes at the
    least, from the ORM in one transaction. Odoo's own write (no override
    of Eyrie's or mail's: no tracking, no timer planning) of the fields the
    cron writes, on all of them at once, and one bare queue job each (the
    job that does nothing), flushed as a commit would, then rolled back.
    Returns (seconds, SQL queries)."""
    deployments = env["eyrie.deployment"].browse(ids)
    bare = env[BARE_JOB_MODEL]
    now = fields.Datetime.now()
    vals = dict(PAUSE_WRITES, timer_blocked_until=now + TIMER_RETRY_DELAY)
    queries = queries_sent()
    start = time.perf_counter()
    models.BaseModel.write(deployments, vals)
    for _deployment_id in ids:
        getattr(bare.with_delay(), BARE_JOB_METHOD)()
    env.cr.flush()
    seconds = time.perf_counter() - start
    queries = queries_sent() - queries
    env.cr.rollback()
    env.invalidate_all(flush=False)
    return seconds, queries


def check_one_pause_job_each(env, ids, first_job_id, checks, label):
    env.cr.execute(
        SQL(
            """
            SELECT count(*) FILTER (WHERE jobs = 1 AND state = 'pausing'),
                   count(*) FILTER (WHERE jobs <> 1 OR state <> 'pausing')
              FROM (SELECT d.id, d.state, count(j.id) AS jobs
                      FROM eyrie_deployment d
                 LEFT JOIN eyrie_job j ON j.deployment_id = d.id AND j.id > %(first)s
                       AND j.action = 'pause' AND j.trigger = 'timer'
                     WHERE d.id = ANY(%(ids)s)
                  GROUP BY d.id, d.state) AS per_deployment
            """,
            first=first_job_id,
            ids=ids,
        )
    )
    once, wrong = env.cr.fetchone()
    env.cr.execute(
        SQL(
            "SELECT count(*) FROM eyrie_job WHERE id > %s AND trigger = 'timer'",
            first_job_id,
        )
    )
    timer_jobs = env.cr.fetchone()[0]
    checks.check(
        f"timers, {label}: each due deployment got exactly one pause job",
        once == len(ids) and not wrong and timer_jobs == len(ids),
        f"{once}/{len(ids)} once, {wrong} wrong, {timer_jobs} timer jobs in all",
    )


def bench_timers_due(env, args, pool, checks, targets):
    runs, anchors = {}, {}
    # A fifth first: it also warms up (code paths, caches); then the timed
    # run. Memory is flat when five times the due rows grow RSS no more.
    # The anchor runs on the same rows just before the cron and again just
    # after it (the same writes, rolled back): their mean, so that a change
    # in the machine's load weighs on both alike.
    for count in dict.fromkeys((max(1, args.due // 5), args.due)):
        ids = pool.take(count)
        first_job_id = max_id(env.cr, "eyrie_job")
        make_due(env, ids)
        if count == args.due:
            sample = env["eyrie.deployment"].browse(ids[:16])
            check_orm_consistency(env, sample, checks, "made due")
        before = write_and_enqueue(env, ids)
        runs[count] = fire_due(env)
        after = write_and_enqueue(env, ids)
        anchors[count] = tuple((b + a) / 2 for b, a in zip(before, after, strict=True))
        check_one_pause_job_each(env, ids, first_job_id, checks, f"{count} due")
    seconds, fired, growth, queries = runs[args.due]
    anchor_seconds, anchor_queries = anchors[args.due]
    fired = max(fired, 1)
    ratio = seconds / anchor_seconds
    per_due = queries / fired
    anchor_per_due = anchor_queries / args.due
    print_table(
        f"3. Timers cron, {args.due} due: _cron_apply_timers() until it returns 0",
        ["what", "measured", "target", "result"],
        [
            ["total s", f"{seconds:.2f}", "", ""],
            [
                f"anchor s: write their fields, enqueue {args.due} bare queue jobs",
                f"{anchor_seconds:.2f}",
                "",
                "",
            ],
            [
                "cron / anchor",
                f"{ratio:.2f}",
                f"<= {TARGET_DUE_RATIO}",
                verdict(ratio, TARGET_DUE_RATIO),
            ],
            ["ms per due deployment", ms(seconds / fired), "", ""],
            [
                "SQL queries per due deployment",
                f"{per_due:.1f}",
                f"<= {TARGET_DUE_QUERIES}",
                verdict(per_due, TARGET_DUE_QUERIES),
            ],
            ["anchor: SQL queries per due deployment", f"{anchor_per_due:.1f}", "", ""],
            [f"cron calls (batches of {TIMER_BATCH}, then 0)", len(growth), "", ""],
        ],
    )
    targets.ratio(
        f"timers cron, {args.due} due",
        seconds,
        (f"write + enqueue {args.due} bare jobs", anchor_seconds),
        TARGET_DUE_RATIO,
        f"{per_due:.1f} vs {anchor_per_due:.1f} per due deployment",
        unit="s",
    )
    targets.limit(
        "timers cron: SQL queries per due deployment",
        f"{per_due:.1f}",
        f"<= {TARGET_DUE_QUERIES}",
        verdict(per_due, TARGET_DUE_QUERIES),
        anchor=f"{anchor_per_due:.1f}: write + enqueue",
    )
    small_growth = runs[min(runs)][2][-1]
    flat = growth[-1] <= small_growth + FLAT_MEMORY_SLACK
    targets.limit(
        f"timers cron: RSS growth, {args.due} due",
        f"{growth[-1] / 2**20:+.1f} MiB",
        f"anchor + {FLAT_MEMORY_SLACK >> 20} MiB",
        "met" if flat else "MISSED",
        anchor=f"{small_growth / 2**20:+.1f} MiB: {min(runs)} due",
    )
    print_table(
        f"   memory: flat = RSS growth of {args.due} due <= that of {min(runs)} "
        f"due + {FLAT_MEMORY_SLACK >> 20} MiB: " + ("met" if flat else "MISSED"),
        ["run", "s", "RSS growth MiB", "RSS growth after each cron call, MiB"],
        [
            [
                f"{count} due",
                f"{run_seconds:.2f}",
                f"{run_growth[-1] / 2**20:+.1f}",
                " ".join(f"{value / 2**20:+.1f}" for value in run_growth),
            ]
            for count, (run_seconds, _fired, run_growth, _queries) in runs.items()
        ],
        left=(0, 3),
    )
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"   process max RSS: {max_rss:.0f} MiB")


# ----------------------------------------------------------------------
# 4. Job runner
# ----------------------------------------------------------------------


def pending_jobs(env):
    env.cr.execute(
        "SELECT count(*) FROM eyrie_job WHERE state IN ('pending', 'running')"
    )
    return env.cr.fetchone()[0]


def run_jobs_until_idle(env):
    """Run the jobs' queue jobs as queue_job would, until none is due."""
    done = run_due_queue_jobs(env)
    env.cr.commit()
    return done


def drain(env, checks, label):
    """Run the jobs an earlier section left pending, untimed."""
    start = time.perf_counter()
    done = run_jobs_until_idle(env)
    left = pending_jobs(env)
    checks.check(
        f"{label}: every pending job ran", not left, f"{done} run, {left} left"
    )
    seconds = time.perf_counter() - start
    print(f"\n   ({label}: ran {done} jobs in {seconds:.1f} s, untimed)")


def create_deploy_jobs(env, ids):
    """action_deploy on ``ids`` (deployed: one update job each), committed.
    Returns the new jobs and the seconds it took."""
    deployments = env["eyrie.deployment"].browse(ids)
    start = time.perf_counter()
    deployments.action_deploy()
    env.cr.commit()
    seconds = time.perf_counter() - start
    jobs = env["eyrie.job"].search(
        [("deployment_id", "in", ids), ("state", "=", "pending")], order="id"
    )
    return jobs, seconds


def time_step_alone(jobs, step):
    """Seconds to render the step and run it on the dry-run executor for
    every job, with the contexts prepared beforehand: what a job would cost
    without the runner's bookkeeping. Best of three passes."""
    from odoo.addons.eyrie_deployment.tools.executor import DryRunExecutor
    from odoo.addons.eyrie_deployment.tools.template import render_documents

    prepared = [
        (
            job.deployment_id._template_context(json.loads(job.values)),
            job.deployment_id.namespace,
            job.deployment_id._cluster_labels(),
        )
        for job in jobs
    ]
    cluster = jobs.cluster_id[:1].name
    passes = []
    for _ in range(3):
        start = time.perf_counter()
        for context, namespace, labels in prepared:
            documents = render_documents(step.template, context)
            DryRunExecutor(cluster, namespace, labels).run_step(step.kind, documents)
        passes.append(time.perf_counter() - start)
    return min(passes)


def enqueue_bare_jobs(env, count):
    """``count`` queue jobs that do nothing (queue_job's own test job),
    committed."""
    bare = env[BARE_JOB_MODEL]
    for _ in range(count):
        # A Delayable makes one job: one each.
        delayable = bare.with_delay(description="Scale benchmark: nothing")
        getattr(delayable, BARE_JOB_METHOD)()
    env.cr.commit()


def run_bare_jobs(env, count):
    """Run ``count`` bare queue jobs through the same runner as Eyrie's.
    Returns (seconds, jobs run, SQL queries)."""
    enqueue_bare_jobs(env, count)
    queries = queries_sent()
    start = time.perf_counter()
    ran = run_due_queue_jobs(env, method_name=BARE_JOB_METHOD)
    env.cr.commit()
    return time.perf_counter() - start, ran, queries_sent() - queries


def run_eyrie_jobs(env, count):
    """Run ``count`` of the pending Eyrie jobs' queue jobs. Returns (seconds,
    jobs run, SQL queries)."""
    queries = queries_sent()
    start = time.perf_counter()
    ran = run_due_queue_jobs(env, limit=count)
    env.cr.commit()
    return time.perf_counter() - start, ran, queries_sent() - queries


def job_rounds(env, count, rounds):
    """Eyrie's ``count`` jobs and as many bare queue jobs, in ``rounds``
    rounds of each kind, in turns (bare first, then Eyrie first, ...):
    the machine's load, which drifts within a run, weighs on both alike and
    each round gives a ratio of its own. Returns the rounds as dicts
    {"eyrie": (s, ran, queries), "bare": (s, ran, queries)}."""
    sizes = [count // rounds + (index < count % rounds) for index in range(rounds)]
    results = []
    for index, size in enumerate(sizes):
        result = {}
        order = ("bare", "eyrie") if index % 2 == 0 else ("eyrie", "bare")
        for kind in order:
            run = run_bare_jobs if kind == "bare" else run_eyrie_jobs
            result[kind] = run(env, size)
        results.append(result)
    return results


def bench_job_runner(env, args, pool, book, checks, targets):
    ids = pool.take(args.jobs)
    jobs, create_seconds = create_deploy_jobs(env, ids)
    job_ids = jobs.ids
    # The anchor: as many jobs that do nothing, through the same runner, in
    # rounds taken in turns with Eyrie's (job_rounds).
    first_bare = max_id(env.cr, "queue_job")
    # Both kinds look up their queue jobs in queue_job's table: not among
    # the dead rows of earlier runs.
    vacuum_analyze(env.cr.dbname)
    run_bare_jobs(env, BARE_JOB_WARMUP)
    rounds = job_rounds(env, args.jobs, args.job_rounds)
    done = sum(result["eyrie"][1] for result in rounds)
    total = sum(result["eyrie"][0] for result in rounds)
    queries = sum(result["eyrie"][2] for result in rounds)
    bare_seconds = sum(result["bare"][0] for result in rounds)
    bare_ran = sum(result["bare"][1] for result in rounds)
    bare_queries = sum(result["bare"][2] for result in rounds)
    env.cr.execute(
        SQL(
            "SELECT count(*) FROM queue_job WHERE id > %s AND method_name = %s "
            "AND state = 'done'",
            first_bare,
            BARE_JOB_METHOD,
        )
    )
    bare_done = env.cr.fetchone()[0]
    checks.check(
        f"job runner anchor: all {args.jobs + BARE_JOB_WARMUP} bare jobs done",
        bare_done == args.jobs + BARE_JOB_WARMUP and bare_ran == args.jobs,
        f"{bare_done} done, {bare_ran} timed",
    )
    env.cr.execute(
        SQL(
            "SELECT count(*) FROM eyrie_job WHERE id = ANY(%s) AND state = 'done'",
            job_ids,
        )
    )
    finished = env.cr.fetchone()[0]
    checks.check(
        f"job runner: all {len(job_ids)} jobs done",
        finished == len(job_ids) == args.jobs and done == len(job_ids),
        f"{finished} done, {done} run",
    )
    step_alone = time_step_alone(env["eyrie.job"].browse(job_ids), book.step_ids)
    env.cr.rollback()
    count = max(len(job_ids), 1)
    step_per_job = step_alone / count
    # Each round's ratio: its Eyrie jobs' overhead per job over its bare
    # jobs' time per job; the target is their median.
    ratios = [
        (result["eyrie"][0] / max(result["eyrie"][1], 1) - step_per_job)
        / (result["bare"][0] / max(result["bare"][1], 1))
        for result in rounds
    ]
    ratio = statistics.median(ratios)
    overhead = (total - step_alone) / count
    bare = bare_seconds / max(bare_ran, 1)
    per_job = queries / count
    bare_per_job = bare_queries / max(bare_ran, 1)
    own = per_job - bare_per_job
    print_table(
        f"4. Job runner: {len(job_ids)} one-step dry-run jobs (a ConfigMap) and "
        f"{bare_ran} bare queue jobs, in {len(rounds)} rounds each, in turns",
        ["what", "measured", "target", "result"],
        [
            ["total s (Eyrie's jobs)", f"{total:.2f}", "", ""],
            ["jobs/s", f"{count / total:.0f}", "", ""],
            ["ms per job", ms(total / count), "", ""],
            ["step alone (render + dry run), ms per job", ms(step_per_job), "", ""],
            ["overhead ms per job", ms(overhead), "", ""],
            [
                f"anchor: ms per bare queue job ({bare_ran}, {BARE_JOB_METHOD})",
                ms(bare),
                "",
                "",
            ],
            ["overhead / anchor, all rounds pooled", f"{overhead / bare:.2f}", "", ""],
            [
                "overhead / anchor, each round in its turn",
                " ".join(f"{value:.2f}" for value in ratios),
                "",
                "",
            ],
            [
                "overhead / anchor, median of the rounds",
                f"{ratio:.2f}",
                f"<= {TARGET_JOB_RATIO}",
                verdict(ratio, TARGET_JOB_RATIO),
            ],
            ["SQL queries per job", f"{per_job:.1f}", "", ""],
            ["anchor: SQL queries per bare queue job", f"{bare_per_job:.1f}", "", ""],
            [
                "Eyrie's SQL queries per job (beyond the anchor's)",
                f"{own:.1f}",
                f"<= {TARGET_JOB_QUERIES}",
                verdict(own, TARGET_JOB_QUERIES),
            ],
            [
                "(creating them: action_deploy in-process, ms each)",
                ms(create_seconds / count),
                "",
                "",
            ],
        ],
    )
    targets.ratio(
        "job runner: overhead per job (median of rounds)",
        ratio * bare,
        ("a bare queue job", bare),
        TARGET_JOB_RATIO,
        f"{per_job:.1f} vs {bare_per_job:.1f} per job",
    )
    targets.limit(
        "job runner: Eyrie's SQL queries per job",
        f"{own:.1f}",
        f"<= {TARGET_JOB_QUERIES}",
        verdict(own, TARGET_JOB_QUERIES),
        anchor=f"{bare_per_job:.1f}: a bare queue job",
        queries=f"{per_job:.1f} - {bare_per_job:.1f} per job",
    )


# ----------------------------------------------------------------------
# 5. action_deploy over XML-RPC
# ----------------------------------------------------------------------


def time_rpc_calls(url, args, ids):
    common = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/common")
    uid = common.authenticate(args.database, "admin", args.admin_password, {})
    if not uid:
        raise RuntimeError(
            "XML-RPC login of admin failed: pass --admin-password (a fresh test "
            "database has admin/admin)"
        )
    models = xmlrpc.client.ServerProxy(f"{url}/xmlrpc/2/object", allow_none=True)

    def call(method, *call_args):
        return models.execute_kw(
            args.database,
            uid,
            args.admin_password,
            "eyrie.deployment",
            method,
            *call_args,
        )

    def timed(method, *call_args):
        start = time.perf_counter()
        result = call(method, *call_args)
        return time.perf_counter() - start, result

    # The anchor, the cost of a call that does next to nothing (what the
    # transport and Odoo's dispatch take): a read of one field before each
    # action_deploy, so that a change in the machine's load weighs on both.
    reads, deploys = [], []
    for deployment_id in ids:
        reads.append(timed("read", [[deployment_id], ["state"]])[0])
        deploys.append(timed("action_deploy", [[deployment_id]]))
    return reads, [seconds for seconds, _ in deploys], [result for _, result in deploys]


def rpc_queries(env, ids):
    """SQL queries of the same two calls in this process, as the server runs
    them (odoo.service.model.execute_cr: the method through call_kw as the
    admin user, then a flush), per call: (read, action_deploy). The server
    adds the same authentication and dispatch to both. Rolled back."""
    admin = api.Environment(env.cr, env.ref("base.user_admin").id, {})
    model = admin["eyrie.deployment"]
    counts = {"read": 0, "action_deploy": 0}
    for deployment_id in ids:
        for method, call_args in (
            ("read", [[deployment_id], ["state"]]),
            ("action_deploy", [[deployment_id]]),
        ):
            queries = queries_sent()
            api.call_kw(model, method, call_args, {})
            env.cr.flush()
            counts[method] += queries_sent() - queries
    env.cr.rollback()
    env.invalidate_all(flush=False)
    return counts["read"] / len(ids), counts["action_deploy"] / len(ids)


def bench_rpc(env, args, pool, checks, targets):
    ids = pool.take(args.rpc_calls)
    read_queries, deploy_queries = rpc_queries(env, ids[:RPC_QUERY_SAMPLE])
    first_job_id = max_id(env.cr, "eyrie_job")
    env.cr.commit()
    # No cron threads; queue_job's runner starts a few seconds after the
    # server and may run some of the jobs on a slow machine: counted in any
    # state.
    with running_server(args.config, args.database, cron_threads=0) as url:
        reads, times, results = time_rpc_calls(url, args, ids)
    env.cr.rollback()  # a new snapshot: see what the server committed
    env.cr.execute(
        SQL(
            "SELECT count(DISTINCT deployment_id), count(*) FROM eyrie_job "
            "WHERE id > %s AND action = 'deploy' AND deployment_id = ANY(%s)",
            first_job_id,
            ids,
        )
    )
    deployments_with_job, new_jobs = env.cr.fetchone()
    checks.check(
        "XML-RPC: each action_deploy returned True and created one job",
        all(result is True for result in results)
        and deployments_with_job == new_jobs == len(ids),
        f"{new_jobs} jobs for {deployments_with_job} deployments",
    )
    median, read_median = statistics.median(times), statistics.median(reads)
    ratio = median / read_median
    print_table(
        f"5. action_deploy over XML-RPC (an update: one job), {len(ids)} calls on "
        f"{len(ids)} deployments, round trip",
        ["what", "measured", "target", "result"],
        [
            ["min ms", ms(min(times)), "", ""],
            ["median ms", ms(median), "", ""],
            ["p95 ms", ms(percentile(times, 0.95)), "", ""],
            ["max ms", ms(max(times)), "", ""],
            ["anchor: read of one field, median ms", ms(read_median), "", ""],
            [
                "median / anchor",
                f"{ratio:.2f}",
                f"<= {TARGET_RPC_RATIO}",
                verdict(ratio, TARGET_RPC_RATIO),
            ],
            [
                f"SQL queries per call (in-process, {RPC_QUERY_SAMPLE} calls)",
                f"{deploy_queries:.1f}",
                "",
                "",
            ],
            ["anchor: SQL queries per read", f"{read_queries:.1f}", "", ""],
        ],
    )
    targets.ratio(
        "action_deploy over XML-RPC: median",
        median,
        ("read of one field", read_median),
        TARGET_RPC_RATIO,
        f"{deploy_queries:.1f} vs {read_queries:.1f} per call",
    )


# ----------------------------------------------------------------------
# 6. Two runner processes, one queue
# ----------------------------------------------------------------------


def start_worker(args):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        "--config",
        args.config,
        "--database",
        args.database,
        "--worker",
    ]
    return subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def run_workers(args):
    """Two runner processes started at the same instant; their reports."""
    workers = [start_worker(args) for _ in range(2)]
    try:
        for worker in workers:
            # Each booted its registry and waits: both start together.
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError("a runner process did not start")
        start = time.perf_counter()
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        outputs = [
            worker.communicate(timeout=WORKER_DEADLINE_SECONDS + 60)[0]
            for worker in workers
        ]
        seconds = time.perf_counter() - start
    finally:
        for worker in workers:
            stop_process(worker)
    if any(worker.returncode for worker in workers):
        raise RuntimeError("a runner process failed")
    return [json.loads(output) for output in outputs], seconds


def worker_main(args):
    """One runner process: loop the job runner until nothing is pending and
    print the ids of the jobs it executed (the database keeps only the last
    runner of a job, so two runs of one job would not show there)."""
    registry = odoo.modules.registry.Registry(args.database)
    executed = []
    print("ready", flush=True)
    sys.stdin.readline()
    deadline = time.monotonic() + WORKER_DEADLINE_SECONDS
    finished = False
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        while time.monotonic() < deadline:
            ran = run_due_queue_jobs(env, on_run=lambda job: executed.append(job.id))
            cr.commit()
            # None left to take, but the other runner may hold the last ones.
            if not ran and not pending_jobs(env) and not due_queue_jobs(cr):
                finished = True
                break
            if not ran:
                time.sleep(0.05)
    # Jobs still pending at the deadline: a failed check, the run goes on.
    report = {"pid": os.getpid(), "executed": executed, "finished": finished}
    print(json.dumps(report), flush=True)


def job_log_step_counts(env, job_ids):
    """Per job: how many step lines ("Step 1 ...") and dry-run lines its log has."""
    env.cr.execute(
        SQL(
            "SELECT id, state, worker, log, deployment_id FROM eyrie_job "
            "WHERE id = ANY(%s)",
            job_ids,
        )
    )
    return {
        job_id: {
            "state": state,
            "worker": worker,
            "steps": len(re.findall(r"^Step \d+ ", log or "", re.MULTILINE)),
            "applies": len(re.findall(r"^\s+would apply ", log or "", re.MULTILINE)),
            "deployment_id": deployment_id,
        }
        for job_id, state, worker, log, deployment_id in env.cr.fetchall()
    }


def check_exactly_once(env, job_ids, reports, checks):
    runs = [job_id for report in reports for job_id in report["executed"]]
    jobs = job_log_step_counts(env, job_ids)
    env.cr.execute(
        SQL(
            "SELECT count(*) FROM eyrie_deployment "
            "WHERE id = ANY(%s) AND state = 'deploy'",
            [job["deployment_id"] for job in jobs.values()],
        )
    )
    deployed = env.cr.fetchone()[0]
    total = len(job_ids)
    checks.check(
        "two runners: each job executed exactly once",
        len(runs) == len(set(runs)) and set(runs) == set(job_ids),
        f"{len(runs)} executions of {len(set(runs))} distinct jobs, {total} created",
    )
    checks.check(
        f"two runners: all {total} jobs done",
        sum(job["state"] == "done" for job in jobs.values()) == total,
    )
    checks.check(
        "two runners: each log has exactly one step line and one apply",
        all(job["steps"] == 1 and job["applies"] == 1 for job in jobs.values()),
    )
    checks.check(
        "two runners: each deployment deployed again", deployed == total, f"{deployed}"
    )
    checks.check(
        "two runners: both took a share", all(report["executed"] for report in reports)
    )
    return jobs


def bench_two_runners(env, args, pool, checks):
    """Two python3 processes, each with its own registry, take and run the
    same queue jobs as queue_job's runner and route do, without HTTP:
    queue_job's locking and Eyrie's must hold when two run at once
    (queue_servers.py runs two real Odoo servers behind a load balancer)."""
    jobs, _seconds = create_deploy_jobs(env, pool.take(args.double_jobs))
    job_ids = jobs.ids
    reports, seconds = run_workers(args)
    env.cr.rollback()  # a new snapshot: see what the runners committed
    checks.check(
        "two runners: nothing left pending at their deadline",
        all(report["finished"] for report in reports),
        f"{WORKER_DEADLINE_SECONDS} s",
    )
    per_job = check_exactly_once(env, job_ids, reports, checks)
    rows = []
    for report in reports:
        pid = f":{report['pid']}:"
        in_db = sum(pid in (job["worker"] or "") for job in per_job.values())
        rows.append([f"process {report['pid']}", len(report["executed"]), in_db])
    rows.append(["total", sum(len(r["executed"]) for r in reports), len(per_job)])
    print_table(
        f"6. Two runner processes, {len(job_ids)} jobs, both taking queue jobs: "
        f"{seconds:.2f} s, {len(job_ids) / seconds:.0f} jobs/s",
        ["runner", "jobs it executed", "jobs with its worker in DB"],
        rows,
    )
    print(
        "   (two python3 processes on queue_job's own code, without HTTP; "
        "queue_servers.py\n   measures two Odoo servers behind a load balancer)"
    )


# ----------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", "--config", required=True, help="Odoo configuration file")
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument(
        "--deployments", type=int, default=100_000, help="half deployed, half paused"
    )
    parser.add_argument("--due", type=int, default=1000, help="timers made due (3.)")
    parser.add_argument("--jobs", type=int, default=1000, help="jobs run (4.)")
    parser.add_argument(
        "--job-rounds", type=int, default=5, help="rounds of jobs, in turns (4.)"
    )
    parser.add_argument("--rpc-calls", type=int, default=200, help="XML-RPC (5.)")
    parser.add_argument(
        "--double-jobs", type=int, default=500, help="jobs for two runners (6.)"
    )
    parser.add_argument(
        "--timer-runs", type=int, default=20, help="cron runs, nothing due (2.)"
    )
    parser.add_argument("--admin-password", default="admin", help="for XML-RPC")
    parser.add_argument("--skip-rpc", action="store_true", help="skip 5.")
    parser.add_argument("--skip-double", action="store_true", help="skip 6.")
    parser.add_argument("--keep", action="store_true", help="keep the rows afterwards")
    # A runner process of section 6 (this script started by itself).
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    needed = (
        args.due
        + max(1, args.due // 5)
        + args.jobs
        + (0 if args.skip_rpc else args.rpc_calls)
        + (0 if args.skip_double else args.double_jobs)
    )
    if not args.worker and needed > args.deployments // 2:
        parser.error(
            f"the sections need {needed} deployed deployments; "
            f"--deployments {args.deployments} makes {args.deployments // 2}"
        )
    return args


def run(env, args, checks, targets):
    scopes, book = setup(env, args, checks)
    pool = DeploymentPool(deploy_phase_ids(env, scopes))
    env.cr.rollback()
    bench_timers_idle(env, args, checks, targets)
    bench_job_runner(env, args, pool, book, checks, targets)
    if not args.skip_rpc:
        bench_rpc(env, args, pool, checks, targets)
        drain(env, checks, "deploy jobs of section 5")
    if not args.skip_double:
        bench_two_runners(env, args, pool, checks)
    # Last: the pause jobs it creates need not run (the cleanup deletes them),
    # and would otherwise reach the job runner measurements.
    bench_timers_due(env, args, pool, checks, targets)


def main():
    args = parse_args()
    # Odoo's own logs at warning level: the tables are the output.
    config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn"])
    if args.worker:
        worker_main(args)
        return
    started = time.perf_counter()
    # Other work on the machine slows every figure: say how busy it was.
    print(
        f"Eyrie scale benchmark on database {args.database}, {os.cpu_count()} CPUs, "
        f"load average at the start: {load_average()}"
    )
    registry = odoo.modules.registry.Registry(args.database)
    checks = Checks()
    targets = Targets()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        first_trigger = max_id(cr, "ir_cron_trigger")
        try:
            first_queue_job = max_id(cr, "queue_job")
            run(env, args, checks, targets)
        finally:
            cr.rollback()
            if not args.keep:
                cleanup(env)
                # The queue jobs the run made (jobs' and timers').
                cr.execute(SQL("DELETE FROM queue_job WHERE id > %s", first_queue_job))
                cr.execute(
                    SQL(
                        "DELETE FROM ir_cron_trigger WHERE id > %s AND cron_id = %s",
                        first_trigger,
                        env.ref("eyrie_deployment.ir_cron_deployment_timers").id,
                    )
                )
                cr.commit()
    targets.print()
    checks.print()
    print(
        f"\nRun time: {time.perf_counter() - started:.1f} s; "
        f"load average at the end: {load_average()}"
    )
    if checks.failed:
        print(f"CORRECTNESS FAILED: {', '.join(checks.failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
