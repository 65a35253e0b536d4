#!/usr/bin/env python3
"""Measure how late the pause timer fires on a real Odoo server.

Starts an Odoo server (two cron threads, Odoo's default) on the database,
creates a scope on the dry-run cluster with a short pause timer and a few
PostgreSQL deployments deployed a few seconds apart over XML-RPC, waits until
the timers paused them all, and prints, for each, when its pause was due and
when the timer created its pause job. The timers cron runs every 5 minutes;
each deployment also has a queue job at its next due time, which queue_job's
job runner (started with the server) runs then.
Leaves the scope and its paused deployments in the database (named
``lateness-<time>``).

    bin/eyrie-bench benchmarks/timer_lateness.py [--deployments 5] [--pause-after 30]
"""

import argparse
import statistics
import time
import xmlrpc.client
from datetime import datetime, timedelta

from odoo_server import running_server

ODOO_FORMAT = "%Y-%m-%d %H:%M:%S"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="Odoo configuration file")
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--deployments", type=int, default=5)
    parser.add_argument("--pause-after", type=int, default=30, help="seconds")
    parser.add_argument("--stagger", type=float, default=7.0, help="seconds")
    parser.add_argument("--password", default="admin", help="admin's password")
    return parser.parse_args()


class Rpc:
    def __init__(self, url, database, password):
        url = f"{url}/xmlrpc/2"
        self.database, self.password = database, password
        common = xmlrpc.client.ServerProxy(f"{url}/common")
        self.uid = common.authenticate(database, "admin", password, {})
        if not self.uid:
            raise SystemExit("cannot log in as admin (set --password)")
        self.models = xmlrpc.client.ServerProxy(f"{url}/object", allow_none=True)

    def __call__(self, model, method, *args, **kwargs):
        return self.models.execute_kw(
            self.database, self.uid, self.password, model, method, list(args), kwargs
        )


def dry_run_cluster(rpc):
    rows = rpc(
        "ir.model.data",
        "search_read",
        [("module", "=", "eyrie_deployment"), ("name", "=", "eyrie_cluster_dry_run")],
        fields=["res_id"],
    )
    return rows[0]["res_id"]


def deploy_staggered(rpc, scope_id, name, count, stagger):
    ids = []
    for index in range(count):
        deployment_id = rpc(
            "eyrie.deployment",
            "create",
            {"name": f"{name}-{index}", "deployment_type": "pgo", "scope_id": scope_id},
        )
        rpc("eyrie.deployment", "action_deploy", [deployment_id])
        ids.append(deployment_id)
        time.sleep(stagger)
    return ids


def wait_until_paused(rpc, ids, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = rpc("eyrie.deployment", "read", ids, ["repository_state", "deployed_at"])
        if all(row["repository_state"] == "pause" for row in rows):
            return rows
        time.sleep(1)
    raise SystemExit(f"not all deployments were paused within {timeout} s")


def due_times(rows, pause_after):
    """deployment id -> when its pause was due (its last deploy + the timer)."""
    return {
        row["id"]: datetime.strptime(row["deployed_at"], ODOO_FORMAT)
        + timedelta(seconds=pause_after)
        for row in rows
    }


def lateness(rpc, due):
    jobs = rpc(
        "eyrie.job",
        "search_read",
        [("deployment_id", "in", list(due)), ("action", "=", "pause")],
        fields=["deployment_id", "create_date"],
    )
    rows = []
    for job in jobs:
        due_at = due[job["deployment_id"][0]]
        fired = datetime.strptime(job["create_date"], ODOO_FORMAT)
        rows.append(
            (job["deployment_id"][1], due_at, fired, (fired - due_at).total_seconds())
        )
    return sorted(rows, key=lambda row: row[1])


def print_report(rows, pause_after):
    print(
        f"\nPause timer lateness ({len(rows)} deployments, pause after {pause_after} s)"
    )
    print(f"{'deployment':<24} {'due (UTC)':<20} {'fired (UTC)':<20} {'late (s)':>8}")
    for name, due_at, fired, late in rows:
        print(
            f"{name:<24} {due_at:%Y-%m-%d %H:%M:%S}  "
            f"{fired:%Y-%m-%d %H:%M:%S}  {late:>8.0f}"
        )
    late = [row[3] for row in rows]
    print(
        f"median {statistics.median(late):.0f} s, max {max(late):.0f} s "
        "(periodic run alone: up to 300 s); early: "
        + ("none" if min(late) >= 0 else f"{sum(x < 0 for x in late)} EARLY")
    )


def main():
    args = parse_args()
    name = f"lateness-{datetime.now():%H%M%S}"
    # Odoo's default two cron threads; queue_job's runner runs the jobs and
    # the timer jobs.
    with running_server(args.config, args.database, cron_threads=2) as url:
        rpc = Rpc(url, args.database, args.password)
        scope_id = rpc(
            "eyrie.scope",
            "create",
            {
                "name": name,
                "cluster_id": dry_run_cluster(rpc),
                "deployment_pause_after_seconds": args.pause_after,
            },
        )
        ids = deploy_staggered(rpc, scope_id, name, args.deployments, args.stagger)
        paused = wait_until_paused(rpc, ids, timeout=args.pause_after + 400)
        due = due_times(paused, args.pause_after)
        print_report(lateness(rpc, due), args.pause_after)


if __name__ == "__main__":
    main()
