#!/usr/bin/env python3
"""Deploy jobs on OCA queue_job, two real Odoo servers behind a load balancer.

Sets up ``--jobs`` Odoo deployments (own database, the shipped books) on the
tests' Kubernetes API, deployed once, untimed. Then starts two Odoo servers
on the database as in production (``--workers`` HTTP workers each, 6 by
default; 0 runs them threaded), each with queue_job's job runner (one is
elected and dispatches), behind a round-robin TCP load balancer that the
runner sends every job to; the API answers each request after
``--latency-ms`` (a managed API server's round trip). For each cluster
capacity (Parallel Jobs, the cluster channel's capacity) it updates every
deployment at once (``action_deploy``: one deploy job each) and measures the
wall time from the jobs' commit until all are done, against the ideal: the
larger of the request time divided by the capacity and the servers' CPU
time divided by the cores.

The API (the tests' emulator, which validates what the books send as in the
tests) and the load balancer run in processes of their own
(``kube_standin.py``, ``tcp_balancer.py``), the latency as a sleep that
costs no CPU. The stand-in reports its own time per request beyond the
latency and its CPU: Eyrie's ideal counts them (the requests as answered,
the stand-in's CPU beside the servers'), so that the share of the ideal is
Eyrie's; its target is 70 % at capacity 4 and 60 % at 8. The run also
prints the dispatch latency (from the job runner's log and queue_job's
dates), as many queue jobs that do nothing run in the same channel (what
queue_job and Odoo cost per job without Eyrie), where each slot's time went,
and the CPU of every process, the other processes of the machine included.

Before each capacity the database is vacuumed and analyzed, as autovacuum
would have done by then (the tests' PostgreSQL runs without it), and each
server's workers have loaded the registry (a few requests first).

It fails (exit 1) on a correctness check: every job done, each run exactly
once (one queue job each, no restart, each step once in its log), and both
servers took a share.

    bin/eyrie-bench benchmarks/queue_servers.py [--jobs 200] [--capacities 1,4,8]
        [--latency-ms 10] [--workers 6] [--profile-standin DIR]
"""

import argparse
import concurrent.futures
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import psycopg2
from kube_standin import StandIn
from odoo_server import free_port, stop_process, wait_until_up
from queue_runner import run_due_queue_jobs
from tcp_balancer import Balancer
from test_modules import load_test_module

import odoo
from odoo import SUPERUSER_ID, api
from odoo.sql_db import connection_info_for
from odoo.tools import SQL, config

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "queue-bench"
# The anchor: queue_job's own job that does nothing (its test job, whose job
# function queue_job ships), run in the same channel.
BARE_METHOD = "_test_job"
BARE_NAME = "queue_servers.py: nothing"
# Of Eyrie's ideal, by capacity (the targets); 70 % elsewhere.
TARGETS = {4: 0.70, 8: 0.60}
DEFAULT_TARGET = 0.70
QUEUE = None


def parse_args():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-c", "--config", required=True, help="Odoo configuration file")
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--capacities", default="1,4,8")
    parser.add_argument("--latency-ms", type=float, default=10)
    parser.add_argument("--servers", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=600)
    parser.add_argument(
        "--workers",
        type=int,
        default=6,
        help="HTTP workers of each Odoo server (0: threaded, no workers)",
    )
    parser.add_argument(
        "--profile-standin",
        metavar="DIR",
        help="write a cProfile of the stand-in per capacity in DIR",
    )
    return parser.parse_args()


def cleanup(env):
    cr = env.cr
    # An interrupted run leaves queue jobs of the jobs deleted below.
    cr.execute(
        "DELETE FROM queue_job WHERE model_name = 'eyrie.job' AND state != 'done'"
    )
    cr.execute(SQL("SELECT id FROM eyrie_deployment WHERE name LIKE %s", f"{PREFIX}-%"))
    ids = [row[0] for row in cr.fetchall()]
    # The queue jobs this benchmark ran: its jobs' and the bare ones.
    cr.execute(
        SQL(
            "DELETE FROM queue_job WHERE identity_key IN (SELECT 'eyrie.job:' || id "
            "FROM eyrie_job WHERE deployment_id = ANY(%s)) "
            "OR (method_name = %s AND name = %s)",
            ids,
            BARE_METHOD,
            BARE_NAME,
        )
    )
    if ids:
        cr.execute(SQL("DELETE FROM eyrie_job WHERE deployment_id = ANY(%s)", ids))
        cr.execute(
            SQL(
                "DELETE FROM mail_message WHERE model = 'eyrie.deployment' "
                "AND res_id = ANY(%s)",
                ids,
            )
        )
        cr.execute(SQL("DELETE FROM eyrie_deployment WHERE id = ANY(%s)", ids))
    cr.execute(
        SQL(
            "DELETE FROM eyrie_job WHERE cluster_id IN "
            "(SELECT id FROM eyrie_cluster WHERE name = %s)",
            PREFIX,
        )
    )
    cr.execute(SQL("DELETE FROM eyrie_scope WHERE name = %s", PREFIX))
    cr.execute(SQL("SELECT job_channel_id FROM eyrie_cluster WHERE name = %s", PREFIX))
    channels = [row[0] for row in cr.fetchall() if row[0]]
    cr.execute(SQL("DELETE FROM eyrie_cluster WHERE name = %s", PREFIX))
    if channels:
        cr.execute(SQL("DELETE FROM queue_job_channel WHERE id = ANY(%s)", channels))
    cr.commit()


def setup(env, standin, count):
    """``count`` Odoo deployments deployed once (untimed, no latency)."""
    cluster = env["eyrie.cluster"].create(
        {"name": PREFIX, "kubeconfig": standin.kubeconfig, "job_capacity": 8}
    )
    scope = env["eyrie.scope"].create(
        {"name": PREFIX, "cluster_id": cluster.id, "domain": "bench.example.com"}
    )
    deployments = env["eyrie.deployment"].create(
        [
            {"name": f"{PREFIX}-{i}", "deployment_type": "odoo", "scope_id": scope.id}
            for i in range(count)
        ]
    )
    deployments.action_deploy()
    env.cr.commit()
    for _round in range(100):
        run_due_queue_jobs(env, one_pass=True)
        standin.call("play_operators")
        env.cr.execute(
            SQL(
                "SELECT count(*) FROM eyrie_job WHERE deployment_id = ANY(%s) "
                "AND state IN ('pending', 'running')",
                deployments.ids,
            )
        )
        if not env.cr.fetchone()[0]:
            break
        QUEUE.resume_waiting_jobs(env)
        env.cr.commit()
    env.invalidate_all()
    states = set(deployments.mapped("state"))
    if states != {"deploy"}:
        raise SystemExit(f"set-up failed: deployments in states {states}")
    return cluster, deployments


RUNNER_LOGGER = "odoo.addons.queue_job.jobrunner.runner"


def start_servers(args, balancer_port, ports):
    """One server per port, their job runners sending jobs to the balancer."""
    env = {
        "ODOO_QUEUE_JOB_MAX_CAPACITY": "16",
        "ODOO_QUEUE_JOB_HOST": "127.0.0.1",
        "ODOO_QUEUE_JOB_PORT": str(balancer_port),
    }
    servers, logs = [], []
    for port in ports:
        # Closed by main() once the servers stopped.
        log = tempfile.NamedTemporaryFile("w+", prefix="eyrie-queue-server-")  # noqa: SIM115
        servers.append((start_odoo_server(args, port, log, env), port))
        logs.append(log)
    for (process, port), log in zip(servers, logs, strict=True):
        wait_until_up(process, f"http://127.0.0.1:{port}", log.name, 120)
    for _process, port in servers:
        warm_up(f"http://127.0.0.1:{port}", args.database, max(args.workers, 1))
    return servers, logs


def warm_up(url, database, workers):
    """Have every worker of the server load the registry, as a server that
    has been up for a while has: they load it on their first request. The
    requests ask queue_job's route for a job that does not exist."""
    target = f"{url}/queue_job/runjob?db={database}&job_uuid=warm-up"

    def get(_index):
        with urllib.request.urlopen(target, timeout=120) as response:
            response.read()

    for _round in range(3):
        with concurrent.futures.ThreadPoolExecutor(workers * 2) as pool:
            list(pool.map(get, range(workers * 2)))


def start_odoo_server(args, port, log, env):
    """``odoo server`` with ``args.workers`` HTTP workers (prefork, as in
    production: docs/configuration.rst), or threaded with 0. Its job runner
    logs when it sends each job (``dispatched``)."""
    # odoo-bin, without the gevent process of a prefork server (no browser
    # connects here; see the script).
    script = os.path.join(HERE, "odoo_without_gevent.py")
    command = [
        sys.executable,
        script,
        "-c",
        args.config,
        "-d",
        args.database,
        f"--http-port={port}",
        "--http-interface=127.0.0.1",
        "--max-cron-threads=0",
        f"--workers={args.workers}",
        "--load=base,web,queue_job",
        "--log-level=warn",
        f"--log-handler={RUNNER_LOGGER}:INFO",
    ]
    return subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, **env)
    )


def utc_now():
    """Now on the servers' clock: they run in UTC (odoo-bin's TZ), and
    queue_job's dates and their logs are naive local times."""
    return datetime.datetime.now(datetime.UTC).replace(tzinfo=None)


def dispatched(logs):
    """uuid -> when the job runner sent the job (its log, in the servers'
    time zone, UTC), and the pids of the job runner's process."""
    pattern = re.compile(
        r"^(\S+ \S+) (\d+) INFO \S+ "
        + re.escape(RUNNER_LOGGER)
        + r": asking Odoo to run job (\S+) on db"
    )
    times, pids = {}, set()
    for log in logs:
        log.seek(0)
        for line in log:
            match = pattern.match(line)
            if match:
                times[match[3]] = datetime.datetime.strptime(
                    match[1], "%Y-%m-%d %H:%M:%S,%f"
                )
                pids.add(int(match[2]))
    return times, pids


# -- CPU ------------------------------------------------------------------


def _processes():
    """pid -> (parent pid, CPU seconds of the process and the children it
    reaped) of every process."""
    ticks = os.sysconf("SC_CLK_TCK")
    processes = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields_ = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        cpu = sum(int(value) for value in fields_[11:15]) / ticks
        processes[int(entry)] = (int(fields_[1]), cpu)
    return processes


def tree_cpu(pids):
    """pid -> CPU seconds of the processes ``pids`` and their descendants
    (an Odoo server's workers and job runner, when it has some)."""
    processes = _processes()
    children = {}
    for pid, (parent, _cpu) in processes.items():
        children.setdefault(parent, []).append(pid)
    cpu, todo = {}, list(pids)
    while todo:
        pid = todo.pop()
        cpu[pid] = processes.get(pid, (0, 0.0))[1]
        todo.extend(children.get(pid, ()))
    return cpu


def vacuum(database):
    """``VACUUM (ANALYZE)`` of the database, as autovacuum would have done
    by now in production: the tests' PostgreSQL runs without it, and the
    set-up and every capacity update hundreds of rows many times over."""
    connection = psycopg2.connect(**connection_info_for(database)[1])
    try:
        connection.autocommit = True
        with connection.cursor() as cr:
            cr.execute("VACUUM (ANALYZE)")
    finally:
        connection.close()


def postgres_cpu(cr):
    """pid -> CPU seconds of the PostgreSQL backends on this database."""
    cr.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
    pids = {row[0] for row in cr.fetchall()}
    processes = _processes()
    return {pid: processes[pid][1] for pid in pids if pid in processes}


def machine_cpu():
    """(busy, all) CPU seconds of the machine since it booted: every
    process, this benchmark's and others'."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = values[3] + values[4]
    return (sum(values) - idle) / ticks, sum(values) / ticks


# -- one capacity ---------------------------------------------------------


def run_capacity(env, rig, cluster, deployments, capacity, servers, timeout, logs):
    cluster.job_capacity = capacity
    env.cr.commit()
    vacuum(env.cr.dbname)
    # queue_job's runner reloads the channels on a NOTIFY: let it.
    time.sleep(1.5)
    first_job = max(deployments.job_ids.ids or [0])
    standin, balancer = rig
    pids = [process.pid for process, _port in servers]
    standin.call("stats", reset=True)
    odoo_cpu = tree_cpu(pids)
    pg_cpu = postgres_cpu(env.cr)
    balancer_cpu = sum(tree_cpu([balancer.pid]).values())
    own_cpu = time.process_time()
    busy, everything = machine_cpu()
    started = time.perf_counter()
    deployments.action_deploy()
    env.cr.commit()
    committed = utc_now()
    enqueue = time.perf_counter() - started
    started = time.perf_counter()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # Only this run creates jobs on the database meanwhile.
        env.cr.execute(
            SQL(
                "SELECT count(*) FILTER (WHERE state IN ('done', 'failed')), count(*) "
                "FROM eyrie_job WHERE id > %s",
                first_job,
            )
        )
        ended, total = env.cr.fetchone()
        env.cr.commit()
        if total >= len(deployments) and ended == total:
            break
        time.sleep(0.1)
    wall = time.perf_counter() - started
    api = standin.call("stats", reset=True)
    odoo_now = tree_cpu(pids)
    pg_cpu = sum(
        cpu - pg_cpu.get(pid, 0.0) for pid, cpu in postgres_cpu(env.cr).items()
    )
    balancer_cpu = sum(tree_cpu([balancer.pid]).values()) - balancer_cpu
    own_cpu = time.process_time() - own_cpu
    busy_now, everything_now = machine_cpu()
    env.invalidate_all()
    jobs = env["eyrie.job"].search(
        [("id", ">", first_job), ("deployment_id", "in", deployments.ids)]
    )
    env.cr.execute(
        SQL(
            "SELECT uuid, date_created, date_started, date_done FROM queue_job "
            "WHERE identity_key = ANY(%s) AND date_done IS NOT NULL",
            [f"eyrie.job:{job.id}" for job in jobs],
        )
    )
    sent, runners = dispatched(logs)
    times = [
        (created, sent.get(uuid), started, done)
        for uuid, created, started, done in env.cr.fetchall()
    ]
    if times and len(times) == len(jobs):
        wall = (max(done for *_dates, done in times) - committed).total_seconds()

    def delta(pid):
        return odoo_now.get(pid, 0.0) - odoo_cpu.get(pid, 0.0)

    odoo_total = sum(delta(pid) for pid in odoo_now)
    api_cpu = api["cpu"]
    return {
        "capacity": capacity,
        "wall": wall,
        "enqueue": enqueue,
        "committed": committed,
        "api": api,
        "odoo_cpu": odoo_total,
        # A process of its own in a prefork server; a thread of a threaded one.
        "runner_cpu": sum(delta(pid) for pid in runners if pid not in pids)
        if runners and not runners & set(pids)
        else None,
        "pg_cpu": pg_cpu,
        "balancer_cpu": balancer_cpu,
        "own_cpu": own_cpu,
        "machine": (busy_now - busy) / (everything_now - everything),
        # Everything else the machine ran meanwhile (other benchmarks...).
        "others_cpu": busy_now
        - busy
        - odoo_total
        - pg_cpu
        - api_cpu
        - balancer_cpu
        - own_cpu,
        "times": times,
        "jobs": jobs,
    }


def run_bare_jobs(env, cluster, count, servers, timeout, logs):
    """``count`` queue jobs that do nothing, in the cluster's channel: what
    queue_job, the HTTP round trip and Odoo cost per job without Eyrie."""
    pids = [process.pid for process, _port in servers]
    env.cr.execute("SELECT COALESCE(max(id), 0) FROM queue_job")
    first = env.cr.fetchone()[0]
    odoo_cpu = tree_cpu(pids)
    pg_cpu = postgres_cpu(env.cr)
    bare = env["queue.job"]
    channel = cluster._job_channel_name()
    for _index in range(count):
        # A Delayable makes one job: one each.
        delayable = bare.with_delay(channel=channel, description=BARE_NAME)
        getattr(delayable, BARE_METHOD)()
    env.cr.commit()
    committed = utc_now()
    deadline = time.monotonic() + timeout
    query = SQL(
        "SELECT count(*) FILTER (WHERE state = 'done'), count(*) FROM queue_job "
        "WHERE id > %s AND method_name = %s",
        first,
        BARE_METHOD,
    )
    while time.monotonic() < deadline:
        env.cr.execute(query)
        done, total = env.cr.fetchone()
        env.cr.commit()
        if done == total:
            break
        time.sleep(0.1)
    odoo_now = tree_cpu(pids)
    pg_cpu = sum(
        cpu - pg_cpu.get(pid, 0.0) for pid, cpu in postgres_cpu(env.cr).items()
    )
    env.cr.execute(
        SQL(
            "SELECT uuid, date_created, date_started, date_done FROM queue_job "
            "WHERE id > %s AND method_name = %s AND date_done IS NOT NULL",
            first,
            BARE_METHOD,
        )
    )
    sent, _runners = dispatched(logs)
    times = [
        (created, sent.get(uuid), started, done)
        for uuid, created, started, done in env.cr.fetchall()
    ]
    last = max((done for *_dates, done in times), default=None)
    wall = (last - committed).total_seconds() if last else float(timeout)
    return {
        "wall": wall,
        "committed": committed,
        "times": times,
        "done": len(times),
        "odoo_cpu": sum(
            odoo_now.get(pid, 0.0) - odoo_cpu.get(pid, 0.0) for pid in odoo_now
        ),
        "pg_cpu": pg_cpu,
    }


def _quantiles(values):
    """median and 95th percentile."""
    if not values:
        return 0.0, 0.0
    ordered = sorted(values)
    return ordered[len(ordered) // 2], ordered[
        min(len(ordered) - 1, int(len(ordered) * 0.95))
    ]


def dispatch(run):
    """How long jobs waited to start, in seconds. ``first``: the first
    ``capacity`` jobs (free slots), from the jobs' commit to the job
    runner's dispatch, and from the dispatch to their start (HTTP, the
    route acquiring the job). ``refill``: the k-th start after the first
    ``capacity`` waits for the (k - capacity)-th end: from that end to the
    dispatch, and from the dispatch to the start. ``queued``: each job from
    its creation to its start (the wait for a slot included); ``running``:
    from its start to its end."""
    capacity, committed = run["capacity"], run["committed"]
    jobs = sorted(run["times"], key=lambda dates: dates[2])
    ends = sorted(done for *_dates, done in jobs)

    def seconds(start, end):
        return (end - start).total_seconds() if start and end else None

    first = [
        (seconds(committed, sent), seconds(sent, started))
        for _created, sent, started, _done in jobs[:capacity]
    ]
    refill = [
        (seconds(ends[k - capacity], sent), seconds(sent, started))
        for k, (_created, sent, started, _done) in enumerate(jobs)
        if k >= capacity
    ]
    queued = [seconds(created, started) for created, _sent, started, _d in jobs]
    running = [seconds(started, done) for _c, _sent, started, done in jobs]
    return first, refill, queued, running


def check(jobs, count, servers, checks, capacity):
    env = jobs.env
    label = f"capacity {capacity}"
    checks.append(
        (
            f"{label}: all {count} deploy jobs done",
            len(jobs) == count and set(jobs.mapped("state")) == {"done"},
            f"{len(jobs)} jobs, states {sorted(set(jobs.mapped('state')))}",
        )
    )
    env.cr.execute(
        SQL(
            "SELECT identity_key, count(*), bool_and(state = 'done') FROM queue_job "
            "WHERE identity_key = ANY(%s) GROUP BY identity_key",
            [f"eyrie.job:{job.id}" for job in jobs],
        )
    )
    queue_runs = env.cr.fetchall()
    steps = len(jobs[:1].book_id.step_ids)
    once = (
        len(queue_runs) == count
        and all(runs == 1 and done for _key, runs, done in queue_runs)
        and not any(jobs.mapped("restarts"))
        and all(
            len(re.findall(r"^Step \d+ ", job.log or "", re.MULTILINE)) == steps
            for job in jobs
        )
    )
    checks.append((f"{label}: each job ran exactly once", once, ""))
    # The server of each job: the process that ran it, or its parent (an
    # HTTP worker of the server).
    masters = {process.pid for process, _port in servers}
    servers_of = {
        pid: parent for pid, (parent, _cpu) in _processes().items() if parent in masters
    }
    servers_of.update((pid, pid) for pid in masters)
    shares = dict.fromkeys((str(process.pid) for process, _port in servers), 0)
    for job in jobs:
        ran_on = re.search(r":(\d+):", job.worker or "")
        server = ran_on and servers_of.get(int(ran_on.group(1)))
        if server:
            shares[str(server)] += 1
    checks.append(
        (
            f"{label}: every server took a share",
            all(shares.values()) and sum(shares.values()) == count,
            ", ".join(f"pid {pid}: {n}" for pid, n in sorted(shares.items())),
        )
    )
    return shares


def _ms(seconds):
    return f"{seconds * 1000:.0f}"


def _pair(values, scale=1000, digits=0, top=False):
    """median / 95th percentile (``top``: / max) of the known values."""
    values = [value for value in values if value is not None]
    if not values:
        return "-"
    median, p95 = _quantiles(values)
    high = max(values) if top else p95
    return f"{median * scale:.{digits}f} / {high * scale:.{digits}f}"


def _left(seconds, run, cores):
    """``seconds`` of CPU over the cores that the machine's other processes
    (other benchmarks...) left to this run, on average: when it is about
    the wall time, the run had no core to spare."""
    left = cores - run["others_cpu"] / run["wall"]
    return f"{seconds / left:.2f}" if left > 0 else "-"


def _sum(values):
    return None if None in values else sum(values)


def _cpu(seconds, jobs):
    return f"{seconds:.2f} ({_ms(seconds / jobs)})"


def report_rows(run, args, cores, shares):
    """(section, label, value) of one capacity's figures."""
    capacity, wall, api = run["capacity"], run["wall"], run["api"]
    jobs, latency = args.jobs, args.latency_ms / 1000
    requests = api["requests"]
    own = api["own"]["mean"]
    request_bound = requests * latency / capacity
    cpu_bound = run["odoo_cpu"] / cores
    ideal = max(request_bound, cpu_bound)
    # Eyrie's: the requests as the stand-in answered them, and the cores
    # shared with the stand-in.
    answered_bound = requests * (latency + own) / capacity
    eyrie_cpu_bound = (run["odoo_cpu"] + api["cpu"]) / cores
    eyrie_ideal = max(answered_bound, eyrie_cpu_bound)
    efficiency = eyrie_ideal / wall if wall else 0.0
    target = TARGETS.get(capacity, DEFAULT_TARGET)
    run_cpu = (
        run["odoo_cpu"] + run["pg_cpu"] + api["cpu"] + run["balancer_cpu"]
    ) + run["own_cpu"]
    first, refill, queued, running = dispatch(run)
    per_job = requests / jobs
    in_job = statistics.fmean(running) - per_job * (latency + own) if running else 0
    lag, service = api["lag"], api["service"]
    slot = wall * capacity / jobs
    bare = run["bare"]
    bare_slot = bare["wall"] * capacity / jobs
    _first, bare_refill, _queued, bare_running = dispatch(
        {"capacity": capacity, **bare}
    )
    return [
        ("Wall time and the ideal", "wall s (jobs' commit to last end)", f"{wall:.2f}"),
        ("", f"action_deploy of {jobs} + commit s (apart)", f"{run['enqueue']:.2f}"),
        ("", "requests x latency / capacity s", f"{request_bound:.2f}"),
        ("", "Odoo CPU s / cores", f"{cpu_bound:.2f}"),
        ("", "of the ideal (latency alone)", f"{ideal / wall:.0%}"),
        ("", "requests x answered / capacity s", f"{answered_bound:.2f}"),
        ("", "(Odoo + stand-in CPU) s / cores", f"{eyrie_cpu_bound:.2f}"),
        ("", "of Eyrie's ideal", f"{efficiency:.0%}"),
        (
            "",
            "target",
            f">= {target:.0%} {'met' if efficiency >= target else 'MISSED'}",
        ),
        ("", "all CPU of the run s / cores", f"{run_cpu / cores:.2f}"),
        ("", "all CPU of the run s / cores others left", _left(run_cpu, run, cores)),
        ("The API stand-in (own process)", "requests per job", f"{per_job:.1f}"),
        ("", "requests per second", f"{requests / wall:.0f}"),
        ("", "answered ms (latency incl.), mean", f"{(latency + own) * 1000:.2f}"),
        ("", "own ms (beyond latency), mean", f"{own * 1000:.2f}"),
        (
            "",
            "  loop lag ms, p50 / p95",
            f"{lag['p50'] * 1e3:.2f} / {lag['p95'] * 1e3:.2f}",
        ),
        (
            "",
            "  service ms, p50 / p95",
            f"{service['p50'] * 1e3:.2f} / {service['p95'] * 1e3:.2f}",
        ),
        ("", "CPU s (% of one core)", f"{api['cpu']:.2f} ({api['cpu'] / wall:.0%})"),
        (
            "Dispatch (queue_job)",
            "first jobs: commit to dispatch, ms p50/max",
            _pair([sent for sent, _start in first], top=True),
        ),
        (
            "",
            "first jobs: dispatch to start, ms p50/max",
            _pair([start for _sent, start in first], top=True),
        ),
        (
            "",
            "job end to next dispatch, ms p50 / p95",
            _pair([sent for sent, _start in refill]),
        ),
        (
            "",
            "dispatch to start, ms p50 / p95",
            _pair([start for _sent, start in refill]),
        ),
        (
            "",
            "job end to next start, ms p50 / p95",
            _pair([_sum(pair) for pair in refill]),
        ),
        ("", "enqueue to start, s p50 / p95", _pair(queued, 1, 1)),
        ("", "job run (start to end), ms p50 / p95", _pair(running)),
        ("", "  beyond its requests' answers, ms mean", _ms(in_job)),
        ("", "slot time per job ms (wall x cap. / jobs)", _ms(slot)),
        ("", "jobs running on average", f"{sum(running) / wall:.1f}"),
        (
            "Queue_job alone: as many jobs that do nothing",
            "wall s",
            f"{bare['wall']:.2f}"
            + ("" if bare["done"] == jobs else f" ({bare['done']} done)"),
        ),
        ("", "slot time per job ms", _ms(bare_slot)),
        (
            "",
            "job end to next start, ms p50 / p95",
            _pair([_sum(pair) for pair in bare_refill]),
        ),
        ("", "job run (start to end), ms p50 / p95", _pair(bare_running)),
        ("", "Odoo CPU ms per job", _ms(bare["odoo_cpu"] / jobs)),
        ("", "PostgreSQL CPU ms per job", _ms(bare["pg_cpu"] / jobs)),
        ("Slot time per job, ms", "Eyrie's job (above)", _ms(slot)),
        ("", "  its requests as answered", _ms(per_job * (latency + own))),
        ("", "  a job that does nothing", _ms(bare_slot)),
        (
            "",
            "  the rest: Eyrie, and waiting for a core",
            _ms(slot - per_job * (latency + own) - bare_slot),
        ),
        ("CPU s (ms per job)", "Odoo servers", _cpu(run["odoo_cpu"], jobs)),
        (
            "",
            "  of which queue_job's job runner",
            "-" if run["runner_cpu"] is None else _cpu(run["runner_cpu"], jobs),
        ),
        ("", "PostgreSQL (this database)", _cpu(run["pg_cpu"], jobs)),
        ("", "API stand-in", _cpu(api["cpu"], jobs)),
        (
            "",
            "load balancer, benchmark",
            _cpu(run["balancer_cpu"] + run["own_cpu"], jobs),
        ),
        ("", "other processes (not this run)", f"{run['others_cpu']:.2f}"),
        ("", "machine busy", f"{run['machine']:.0%}"),
        ("", "jobs per server", "/".join(str(n) for _pid, n in sorted(shares.items()))),
    ]


def print_report(args, cores, columns):
    print(
        f"\n{args.jobs} Odoo deploy jobs (shipped books, update), {args.servers} Odoo "
        f"servers behind a round-robin load balancer, {args.latency_ms:g} ms per API "
        f"request (a sleep in the stand-in's own process), {cores} cores"
    )
    labels = [(section, label) for section, label, _value in columns[0][1]]
    width = max(len(label) for _section, label in labels) + 2
    print(f"{'capacity':<{width}}" + "".join(f"{c:>16}" for c, _rows in columns))
    for index, (section, label) in enumerate(labels):
        if section:
            print(f"{section}:")
        cells = "".join(f"{rows[index][2]:>16}" for _c, rows in columns)
        print(f"  {label:<{width - 2}}{cells}")


def main():
    args = parse_args()
    config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn"])
    registry = odoo.modules.registry.Registry(args.database)
    # The tests' queue job helpers, once Odoo's addons path is configured.
    global QUEUE
    QUEUE = load_test_module("queue_jobs")
    cores = os.cpu_count()
    checks, columns = [], []
    servers, logs, balancer, standin = [], [], None, None
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        # An earlier run's dead rows: every deleted job would scan them.
        vacuum(args.database)
        cleanup(env)
        vacuum(args.database)
        try:
            standin = StandIn.start()
            standin.call("seed_operator_crds")
            started = time.perf_counter()
            cluster, deployments = setup(env, standin, args.jobs)
            print(
                f"set-up: {args.jobs} Odoo deployments deployed once in "
                f"{time.perf_counter() - started:.1f} s (untimed)"
            )
            standin.call("freeze")
            ports = [free_port() for _ in range(args.servers)]
            balancer = Balancer.start([("127.0.0.1", port) for port in ports])
            servers, logs = start_servers(args, balancer.port, ports)
            # The job runner starts about 5 s after its server.
            time.sleep(7)
            standin.call("set_latency", seconds=args.latency_ms / 1000)
            for capacity in [int(c) for c in args.capacities.split(",")]:
                if args.profile_standin:
                    standin.call("profile")
                run = run_capacity(
                    env,
                    (standin, balancer),
                    cluster,
                    deployments,
                    capacity,
                    servers,
                    args.timeout,
                    logs,
                )
                if args.profile_standin:
                    path = os.path.join(
                        args.profile_standin, f"standin-{capacity}.prof"
                    )
                    standin.call("profile", path=path)
                shares = check(run["jobs"], args.jobs, servers, checks, capacity)
                run["bare"] = run_bare_jobs(
                    env, cluster, args.jobs, servers, args.timeout, logs
                )
                columns.append((capacity, report_rows(run, args, cores, shares)))
        finally:
            for process, _port in servers:
                stop_process(process)
            if balancer:
                balancer.stop()
            for log in logs:
                log.close()
            if standin:
                standin.stop()
            cr.rollback()
            cleanup(env)
            vacuum(args.database)
    if columns:
        print_report(args, cores, columns)
    failed = [name for name, ok, _detail in checks if not ok]
    for name, ok, detail in checks:
        print(
            f"{'ok    ' if ok else 'FAILED'} {name}"
            + (f" ({detail})" if detail else "")
        )
    if failed:
        print(f"CORRECTNESS FAILED: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
