#!/usr/bin/env python3
"""Time a 20-object apply book run as an Eyrie job against the same calls made
with the raw Kubernetes client, both on the in-process Kubernetes API of the
tests (kmock). Prints a table; changes nothing (one rolled-back transaction).

    bin/eyrie-bench benchmarks/apply_book.py [--objects 20] [--runs 7]
"""

import argparse
import statistics
import threading
import time

from test_modules import load_test_module

import odoo
from odoo import SUPERUSER_ID, api
from odoo.tools import config

TARGET_RATIO = 1.2
OBJECT_TEMPLATE = """{% for i in range(values.count) %}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-{{ i }}
data:
  index: "{{ i }}"
  deployment: "{{ deployment.name }}"
{% endfor %}
"""


QUEUE = None


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-c", "--config", required=True, help="Odoo configuration file")
    parser.add_argument("-d", "--database", required=True)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=10,
        help="every API request's round trip (a managed API server's)",
    )
    return parser.parse_args()


def make_deployment(env, kubeconfig, objects):
    cluster = env["eyrie.cluster"].create({"name": "bench", "kubeconfig": kubeconfig})
    namespace = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ namespace }}\n"
    initialize = env["eyrie.deployment.book"].create(
        {
            "name": "bench: namespace",
            "step_ids": [
                (0, 0, {"name": "ns", "kind": "apply", "template": namespace})
            ],
        }
    )
    book = env["eyrie.deployment.book"].create(
        {
            "name": "bench: apply",
            "step_ids": [
                (
                    0,
                    0,
                    {"name": "objects", "kind": "apply", "template": OBJECT_TEMPLATE},
                )
            ],
        }
    )
    scope = env["eyrie.scope"].create(
        {
            "name": "bench",
            "cluster_id": cluster.id,
            "domain": "bench.example.com",
            "extra_value_keys": "count",
            "deployment_initialize_book_id": initialize.id,
            "deployment_deploy_book_id": book.id,
        }
    )
    return env["eyrie.deployment"].create(
        {
            "name": "bench",
            "deployment_type": "odoo",
            "scope_id": scope.id,
            "values": f'{{"count": {objects}}}',
        }
    )


def warm_up(env, deployment, client):
    """First deploy (namespace, discovery, first creates), untimed."""
    deployment.action_deploy()
    QUEUE.run_queue_jobs(env)
    assert deployment.state == "deploy", deployment.error_message
    namespaces = client.resources.get(api_version="v1", kind="Namespace")
    namespaces.server_side_apply(
        body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "raw"}},
        name="raw",
        field_manager="raw",
        _request_timeout=(5, 30),
    )


def time_job(env, deployment):
    """Seconds to run one deploy job: acquire, render, apply, bookkeeping."""
    deployment.action_deploy()
    env.flush_all()
    start = time.perf_counter()
    QUEUE.run_queue_jobs(env, limit=1)
    elapsed = time.perf_counter() - start
    job = deployment.job_ids.sorted("id")[-1]
    assert job.state == "done", job.error_message
    return elapsed


def time_raw(client, objects, namespace):
    """Seconds for the same server-side applies with the dynamic client."""
    resource = client.resources.get(api_version="v1", kind="ConfigMap")
    start = time.perf_counter()
    for i in range(objects):
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": f"settings-{i}", "namespace": namespace},
            "data": {"index": str(i), "deployment": "bench"},
        }
        resource.server_side_apply(
            body=body,
            name=body["metadata"]["name"],
            namespace=namespace,
            field_manager="raw",
            force_conflicts=True,
            _request_timeout=(5, 30),
        )
    return time.perf_counter() - start


def main():
    args = parse_args()
    config.parse_config(["-c", args.config, "-d", args.database])
    # The runner commits outside tests; this benchmark changes nothing, so it
    # runs as a test does, in one transaction that is rolled back.
    threading.current_thread().testing = True
    from odoo.addons.eyrie_deployment.tools.kubernetes_executor import get_client

    global QUEUE
    QUEUE = load_test_module("queue_jobs")
    emulator_module = load_test_module("kube_emulator")
    emulator_module.EyrieKubernetesEmulator.LATENCY_SECONDS = args.latency_ms / 1000
    EmulatedCluster = emulator_module.EmulatedCluster

    registry = odoo.modules.registry.Registry(args.database)
    # After loading (else Odoo runs its test suites): queue_job then leaves
    # the commits to the transaction, as in tests.
    config["test_enable"] = True
    emulator = EmulatedCluster()
    try:
        with registry.cursor() as cr:
            # A job that commits before it ends goes on on a cursor of its
            # own: here, a test cursor on this transaction, rolled back at
            # the end.
            registry.enter_test_mode(cr)
            env = api.Environment(cr, SUPERUSER_ID, {})
            deployment = make_deployment(env, emulator.kubeconfig(), args.objects)
            client = get_client("raw", ("bench", "raw"), emulator.kubeconfig(), None)
            warm_up(env, deployment, client)
            time_raw(client, args.objects, "raw")
            job_times = [time_job(env, deployment) for _ in range(args.runs)]
            raw_times = [
                time_raw(client, args.objects, "raw") for _ in range(args.runs)
            ]
            registry.leave_test_mode()
            cr.rollback()
    finally:
        emulator.stop()
    job_ms = statistics.median(job_times) * 1000
    raw_ms = statistics.median(raw_times) * 1000
    print(
        f"{args.objects}-object apply book, median of {args.runs} runs (after "
        f"warm-up), {args.latency_ms:g} ms per API request"
    )
    print(f"{'what':<34}{'ms':>10}{'ms/object':>12}")
    per_object = job_ms / args.objects
    print(f"{'Eyrie deploy job (queue job)':<34}{job_ms:>10.1f}{per_object:>12.2f}")
    print(
        f"{'raw client, same applies':<34}{raw_ms:>10.1f}{raw_ms / args.objects:>12.2f}"
    )
    ratio = job_ms / raw_ms
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(
        f"{'ratio job / raw':<34}{ratio:>10.2f}   target <= {TARGET_RATIO}: {verdict}"
    )


if __name__ == "__main__":
    main()
