#!/usr/bin/env python3
"""Wake time as the emulated cluster plays it: from the waker's signed call
(``_wake_on_request``, what ``/eyrie/wake`` runs) to the deployment serving
again with its route back, with the shipped books, against the tests'
in-process Kubernetes API (``--latency-ms`` per request). The controllers
(PGO, the Deployment controller) are played as answering at once, so the
figure is Eyrie's own part of a wake: on a real cluster, add the pod's
start, Odoo's and PostgreSQL's (docs/sleep-and-wake.rst).

Three runs of an Odoo deployment with its own database, median of
``--runs`` each:

- anchor: an update of the running deployment (``action_deploy``), the same
  deploy book;
- wake with its database still running (the first stage of a pause);
- wake after the database was shut down too (the second stage).

Prints the wall time, the API requests and the SQL queries of each, and the
ratios to the anchor. Changes nothing (one rolled-back transaction).

    bin/eyrie-bench benchmarks/wake.py [--runs 5] [--latency-ms 10]
"""

import argparse
import statistics
import threading
import time

from test_modules import load_test_module

import odoo
from odoo import SUPERUSER_ID, api
from odoo.tools import config


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="Odoo configuration file")
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=10)
    return parser.parse_args()


class Bench:
    def __init__(self, env, emulator, queue):
        self.env = env
        self.emulator = emulator
        self.queue = queue

    def settle(self):
        """Run the jobs to their end, the controllers answering at once."""
        Job = self.env["eyrie.job"]
        for _round in range(40):
            self.queue.run_queue_jobs(self.env)
            self.emulator.play_operators()
            if not Job.search_count([("state", "in", ("pending", "running"))]):
                return
            self.queue.resume_waiting_jobs(self.env)
        raise AssertionError("jobs still pending")

    def measure(self, start_action):
        """(seconds, API requests, SQL queries) from ``start_action`` to the
        end of its jobs."""
        self.env.flush_all()
        requests = self.emulator.request_count()
        queries = self.env.cr.sql_log_count
        begin = time.perf_counter()
        start_action()
        self.settle()
        elapsed = time.perf_counter() - begin
        return (
            elapsed,
            self.emulator.request_count() - requests,
            self.env.cr.sql_log_count - queries,
        )


def setup(env, kubeconfig):
    cluster = env["eyrie.cluster"].create(
        {
            "name": "bench wake",
            "kubeconfig": kubeconfig,
            "waker_eyrie_url": "https://eyrie.example.com",
        }
    )
    cluster.action_install_waker()
    scope = env["eyrie.scope"].create(
        {
            "name": "bench wake",
            "cluster_id": cluster.id,
            "domain": "wake.example.com",
            "wake_on_request": True,
            "database_pause_after_seconds": 600,
        }
    )
    return env["eyrie.deployment"].create(
        {"name": "bench-wake", "deployment_type": "odoo", "scope_id": scope.id}
    )


def run(args, env, emulator, queue):
    bench = Bench(env, emulator, queue)
    odoo_deployment = setup(env, emulator.kubeconfig())
    bench.measure(odoo_deployment.action_deploy)  # first deploy, untimed
    assert odoo_deployment.state == "deploy", odoo_deployment.error_message
    host = odoo_deployment.hostname
    figures = {"update": [], "wake, database up": [], "wake, database down": []}
    for _run in range(args.runs):
        figures["update"].append(bench.measure(odoo_deployment.action_deploy))
        bench.measure(odoo_deployment.action_pause)
        assert odoo_deployment.pause_stage == "instance"
        figures["wake, database up"].append(
            bench.measure(lambda: odoo_deployment._wake_on_request(host, "browser"))
        )
        assert odoo_deployment.state == "deploy", odoo_deployment.error_message
        bench.measure(odoo_deployment.action_pause)
        bench.measure(lambda: odoo_deployment._pause_database())
        assert odoo_deployment.pause_stage == "database"
        figures["wake, database down"].append(
            bench.measure(lambda: odoo_deployment._wake_on_request(host, "browser"))
        )
        assert odoo_deployment.state == "deploy", odoo_deployment.error_message
    return figures


def main():
    args = parse_args()
    config.parse_config(["-c", args.config, "-d", args.database])
    threading.current_thread().testing = True
    queue = load_test_module("queue_jobs")
    emulator_module = load_test_module("kube_emulator")
    emulator_module.EyrieKubernetesEmulator.LATENCY_SECONDS = args.latency_ms / 1000
    registry = odoo.modules.registry.Registry(args.database)
    config["test_enable"] = True
    emulator = emulator_module.EmulatedCluster()
    try:
        with registry.cursor() as cr:
            registry.enter_test_mode(cr)
            env = api.Environment(cr, SUPERUSER_ID, {})
            emulator.seed_operator_crds()
            figures = run(args, env, emulator, queue)
            registry.leave_test_mode()
            cr.rollback()
    finally:
        emulator.stop()
    print(
        f"Wake of an Odoo deployment (own database, shipped books), median of "
        f"{args.runs} runs, {args.latency_ms:g} ms per API request, controllers "
        "answering at once"
    )
    print(f"{'what':<24}{'ms':>10}{'API requests':>14}{'SQL':>8}{'x update':>10}")
    anchor = statistics.median(seconds for seconds, _r, _q in figures["update"])
    for name, runs in figures.items():
        seconds = statistics.median(s for s, _r, _q in runs)
        requests = statistics.median(r for _s, r, _q in runs)
        queries = statistics.median(q for _s, _r, q in runs)
        print(
            f"{name:<24}{seconds * 1000:>10.0f}{requests:>14.0f}{queries:>8.0f}"
            f"{seconds / anchor:>10.2f}"
        )


if __name__ == "__main__":
    main()
