#!/usr/bin/env python3
"""Deploy jobs on OCA queue_job, two real Odoo servers behind a load balancer.

Sets up ``--jobs`` Odoo deployments (own database, the shipped books) on the
in-process Kubernetes API, deployed once, untimed. Then starts two Odoo
servers on the database, each with queue_job's job runner (one is elected
master and dispatches), behind a round-robin TCP load balancer that the
runner sends every job to, and the API answers each request after
``--latency-ms`` (a managed API server's round trip). For each cluster
capacity (Parallel Jobs, the cluster channel's capacity) it updates every
deployment at once (``action_deploy``: one deploy job each) and measures the
wall time until all are done, against the ideal: the larger of the request
time divided by the capacity and the servers' CPU time divided by the cores.

It fails (exit 1) on a correctness check: every job done, each run exactly
once (one queue job each, no restart, each step once in its log), and both
servers took a share.

    bin/eyrie-bench benchmarks/queue_servers.py [--jobs 200] [--capacities 1,4,8]
"""

import argparse
import asyncio
import itertools
import logging
import os
import re
import sys
import tempfile
import time

from odoo_server import free_port, start_server, stop_process, wait_until_up
from queue_runner import run_due_queue_jobs
from test_modules import load_test_module

import odoo
from odoo import SUPERUSER_ID, api
from odoo.tools import SQL, config

PREFIX = "queue-bench"
TARGET_EFFICIENCY = 0.70


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
    return parser.parse_args()


def load_emulator():
    module = load_test_module("kube_emulator")
    # How long the API server takes to answer each request, latency included:
    # under load, this in-process server's own work grows the round trip.
    emulator_class = module.EyrieKubernetesEmulator
    call = emulator_class.__call__

    async def timed_call(self, raw_request):
        start = time.perf_counter()
        try:
            return await call(self, raw_request)
        finally:
            API_TIMES.append(time.perf_counter() - start)

    emulator_class.__call__ = timed_call
    return module


API_TIMES = []
QUEUE = None


class RoundRobinProxy:
    """A TCP load balancer: each new connection goes to the next backend.
    Served on the API server's event loop: one thread for both, so that
    they do not contend for this process's GIL."""

    def __init__(self, backends, loop):
        self.backends = itertools.cycle(backends)
        self.port = free_port()
        self.loop = loop
        self.server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), loop
        ).result(10)

    async def _serve(self, client_reader, client_writer):
        host, port = next(self.backends)
        try:
            backend_reader, backend_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return

        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                writer.close()

        await asyncio.gather(
            pipe(client_reader, backend_writer), pipe(backend_reader, client_writer)
        )

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)


def cleanup(env):
    cr = env.cr
    # An interrupted run leaves queue jobs of the jobs deleted below.
    cr.execute(
        "DELETE FROM queue_job WHERE model_name = 'eyrie.job' AND state != 'done'"
    )
    cr.execute(SQL("SELECT id FROM eyrie_deployment WHERE name LIKE %s", f"{PREFIX}-%"))
    ids = [row[0] for row in cr.fetchall()]
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


def setup(env, emulator, count):
    """``count`` Odoo deployments deployed once (untimed, no latency)."""
    cluster = env["eyrie.cluster"].create(
        {"name": PREFIX, "kubeconfig": emulator.kubeconfig(), "job_capacity": 8}
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
        emulator.play_operators()
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


def start_servers(args, proxy_port, ports):
    """One server per port, their job runners sending jobs to the proxy."""
    env = {
        "ODOO_QUEUE_JOB_MAX_CAPACITY": "16",
        "ODOO_QUEUE_JOB_HOST": "127.0.0.1",
        "ODOO_QUEUE_JOB_PORT": str(proxy_port),
    }
    servers, logs = [], []
    for port in ports:
        # Closed by main() once the servers stopped.
        log = tempfile.NamedTemporaryFile("w+", prefix="eyrie-queue-server-")  # noqa: SIM115
        servers.append(
            (start_server(args.config, args.database, port, log, env=env), port)
        )
        logs.append(log)
    for (process, port), log in zip(servers, logs, strict=True):
        wait_until_up(process, f"http://127.0.0.1:{port}", log.name, 120)
    return servers, logs


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields_ = stat.read().rsplit(")", 1)[1].split()
    return (int(fields_[11]) + int(fields_[12])) / os.sysconf("SC_CLK_TCK")


def run_capacity(env, emulator, cluster, deployments, capacity, servers, timeout):
    cluster.job_capacity = capacity
    env.cr.commit()
    # queue_job's runner reloads the channels on a NOTIFY: let it.
    time.sleep(1.5)
    first_job = max(deployments.job_ids.ids or [0])
    served = emulator.emulator._served
    API_TIMES.clear()
    cpu = [cpu_seconds(process.pid) for process, _port in servers]
    own = time.process_time()
    start = time.perf_counter()
    deployments.action_deploy()
    env.cr.commit()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        env.cr.execute(
            SQL(
                "SELECT count(*) FILTER (WHERE state IN ('done', 'failed')), count(*) "
                "FROM eyrie_job WHERE id > %s AND deployment_id = ANY(%s)",
                first_job,
                deployments.ids,
            )
        )
        ended, total = env.cr.fetchone()
        env.cr.commit()
        if total and ended == total:
            break
        # Seldom: this process also serves the API.
        time.sleep(0.1)
    wall = time.perf_counter() - start
    own = time.process_time() - own
    requests = emulator.emulator._served - served
    api_seconds = sum(API_TIMES)
    cpu = sum(cpu_seconds(process.pid) for process, _port in servers) - sum(cpu)
    env.invalidate_all()
    jobs = env["eyrie.job"].search(
        [("id", ">", first_job), ("deployment_id", "in", deployments.ids)]
    )
    return wall, requests, api_seconds, cpu, own, jobs


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
    pids = {str(process.pid) for process, _port in servers}
    shares = {
        pid: sum(f":{pid}:" in (job.worker or "") for job in jobs) for pid in pids
    }
    checks.append(
        (
            f"{label}: every server took a share",
            all(shares.values()) and sum(shares.values()) == count,
            ", ".join(f"pid {pid}: {n}" for pid, n in sorted(shares.items())),
        )
    )
    return shares


def main():
    args = parse_args()
    config.parse_config(["-c", args.config, "-d", args.database, "--log-level=warn"])
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    emulator_module = load_emulator()
    emulator = emulator_module.EmulatedCluster()
    emulator.seed_operator_crds()
    registry = odoo.modules.registry.Registry(args.database)
    # The tests' queue job helpers, once Odoo's addons path is configured.
    global QUEUE
    QUEUE = load_test_module("queue_jobs")
    cores = os.cpu_count()
    checks, rows = [], []
    servers, logs, proxy = [], [], None
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        cleanup(env)
        try:
            started = time.perf_counter()
            cluster, deployments = setup(env, emulator, args.jobs)
            print(
                f"set-up: {args.jobs} Odoo deployments deployed once in "
                f"{time.perf_counter() - started:.1f} s (untimed)"
            )
            ports = [free_port() for _ in range(args.servers)]
            proxy = RoundRobinProxy(
                [("127.0.0.1", port) for port in ports], emulator._loop
            )
            servers, logs = start_servers(args, proxy.port, ports)
            # The job runner starts about 5 s after its server.
            time.sleep(7)
            emulator_module.EyrieKubernetesEmulator.LATENCY_SECONDS = (
                args.latency_ms / 1000
            )
            for capacity in [int(c) for c in args.capacities.split(",")]:
                wall, requests, api_seconds, cpu, api_cpu, jobs = run_capacity(
                    env, emulator, cluster, deployments, capacity, servers, args.timeout
                )
                shares = check(jobs, args.jobs, servers, checks, capacity)
                busy = sum(
                    (job.ended_at - job.started_at).total_seconds() for job in jobs
                )
                request_bound = requests * args.latency_ms / 1000 / capacity
                # The requests as the API server answered them, and every
                # process on the machine's cores (Odoo servers, API server).
                answered_bound = api_seconds / capacity
                cpu_bound = cpu / cores
                machine_bound = (cpu + api_cpu) / cores
                ideal = max(request_bound, cpu_bound)
                measured_ideal = max(answered_bound, machine_bound)
                efficiency = ideal / wall if wall else 0
                rows.append(
                    [
                        capacity,
                        f"{wall:.2f}",
                        f"{request_bound:.2f}",
                        f"{cpu_bound:.2f}",
                        f"{answered_bound:.2f}",
                        f"{machine_bound:.2f}",
                        f"{measured_ideal / wall:.0%}",
                        f"{efficiency:.0%}",
                        "met" if efficiency >= TARGET_EFFICIENCY else "MISSED",
                        f"{cpu / (wall * cores):.0%}",
                        f"{requests / args.jobs:.1f}",
                        f"{busy / len(jobs) * 1000:.0f}",
                        f"{busy / wall:.1f}",
                        f"{api_cpu:.2f}",
                        "/".join(str(n) for _pid, n in sorted(shares.items())),
                    ]
                )
        finally:
            for process, _port in servers:
                stop_process(process)
            if proxy:
                proxy.stop()
            for log in logs:
                log.close()
            for log in logs:
                log.close()
            emulator.stop()
            cr.rollback()
            cleanup(env)
    headers = [
        "capacity",
        "wall s",
        "requests x latency / capacity, s",
        "Odoo CPU s / cores",
        "answered request s / capacity",
        "all CPU s / cores",
        "of measured ideal",
        "of ideal",
        f">= {TARGET_EFFICIENCY:.0%}",
        "CPU load",
        "API requests per job",
        "ms per job (start to end)",
        "jobs running on average",
        "API server CPU s",
        "jobs per server",
    ]
    print(
        f"\n{args.jobs} Odoo deploy jobs (shipped books, update), {args.servers} Odoo "
        f"servers behind a round-robin load balancer, {args.latency_ms:g} ms per API "
        f"request, {cores} cores"
    )
    # One line per figure, one column per capacity.
    width = max(len(header) for header in headers)
    for index, header in enumerate(headers):
        cells = "".join(f"{row[index]!s:>12}" for row in rows)
        print(f"{header:<{width}}{cells}")
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
