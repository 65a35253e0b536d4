"""The tests' Kubernetes API (``EmulatedCluster`` of kube_emulator.py) in a
process of its own, for the benchmarks that must measure Eyrie and not the
API's stand-in.

The emulator is the tests' own: it routes, validates and stores what the
books send exactly as in the tests. What differs is outside what it checks:

* its request log (kmock's, for the tests' assertions; it parses each body
  a second time and keeps every request) is not kept;
* server-side apply bodies are parsed by PyYAML's C parser (``CSafeLoader``:
  the same safe loader, same result, as ``yaml.safe_load``) when PyYAML has
  it: the pure Python one took most of the stand-in's CPU;
* the process runs at a higher priority (nice -10, when allowed), as an API
  server on machines of its own would not wait for the Odoo servers' CPU;
* once the benchmark set up its objects, they are left out of the garbage
  collector's scans (``freeze``: ``gc.freeze()``);
* the benchmark's latency is an ``asyncio.sleep`` before the request is
  served, as the emulator's ``LATENCY_SECONDS`` does, but timed apart: for
  each request the stand-in measures how late its event loop resumed it
  after the latency (``lag``: the loop, or the machine, was busy) and how
  long it then took to answer (``service``). With its CPU time, these say
  whether the stand-in kept up.

The benchmark process drives it over a pipe, one JSON object a line::

    standin = StandIn.start()
    standin.kubeconfig                  # for eyrie.cluster
    standin.call("seed_operator_crds")  # and "play_operators", as the tests
    standin.call("set_latency", seconds=0.01)
    standin.call("stats", reset=True)   # requests, lag, service, CPU since
    standin.call("trace", start=True)   # then "trace": the requests made
    standin.call("profile")             # then "profile", path=...: cProfile
    standin.stop()

One process, not several behind a load balancer: the API holds the state the
jobs build (a deployment's objects, then their status), which a second
process would not see.
"""

import asyncio
import contextlib
import cProfile
import gc
import json
import logging
import os
import statistics
import subprocess
import sys
import threading
import time

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))


class StandIn:
    """The benchmark's end of the pipe to a stand-in process."""

    def __init__(self, process):
        self.process = process
        self._lock = threading.Lock()
        ready = self._read()
        self.url = ready["url"]
        self.kubeconfig = ready["kubeconfig"]
        self.pid = process.pid

    @classmethod
    def start(cls, nice=-10):
        process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "kube_standin.py"), str(nice)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return cls(process)

    def _read(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError("the Kubernetes API stand-in stopped")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"the Kubernetes API stand-in failed: {reply['error']}")
        return reply

    def call(self, command, **kwargs):
        with self._lock:
            self.process.stdin.write(json.dumps({"command": command, **kwargs}) + "\n")
            self.process.stdin.flush()
            return self._read()

    def stop(self):
        if self.process.poll() is None:
            try:
                self.call("stop")
            except (OSError, RuntimeError):
                pass
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# -- the stand-in process ---------------------------------------------------


def _summary(values):
    if not values:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    ordered = sorted(values)
    return {
        "mean": statistics.fmean(ordered),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))],
        "max": ordered[-1],
    }


class _CYaml:
    """The ``yaml`` module, ``safe_load`` on PyYAML's C parser."""

    def __getattr__(self, name):
        return getattr(yaml, name)

    @staticmethod
    def safe_load(stream):
        return yaml.load(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


class _Server:
    def __init__(self):
        from test_modules import load_test_module

        module = load_test_module("kube_emulator")
        module.yaml = _CYaml()
        self.latency = 0.0
        # (lag, service) of each request since the last reset.
        self.times = []
        self.since = (time.perf_counter(), time.process_time())
        self.profile = None
        # The requests' methods and paths, while traced.
        self.trace = None
        self._patch(module.EyrieKubernetesEmulator)
        self.cluster = module.EmulatedCluster()

    def _patch(self, emulator_class):
        call = emulator_class.__call__
        server = self

        async def timed_call(emulator, raw_request):
            arrived = time.perf_counter()
            if server.latency:
                await asyncio.sleep(server.latency)
            resumed = time.perf_counter()
            if server.trace is not None:
                server.trace.append(f"{raw_request.method} {raw_request.path_qs}")
            try:
                return await call(emulator, raw_request)
            finally:
                server.times.append(
                    (
                        max(resumed - arrived - server.latency, 0.0),
                        time.perf_counter() - resumed,
                    )
                )

        record = emulator_class._record

        def record_for_reactions(emulator, raw_request, body, route):
            # The log serves the reactions of kmock's DSL, which the
            # benchmarks do not add.
            if emulator._payloads:
                return record(emulator, raw_request, body, route)
            return None

        emulator_class.__call__ = timed_call
        emulator_class._record = record_for_reactions

    def _on_loop(self, function):
        # What must run on the server's own thread (the profiler is per
        # thread).
        done = threading.Event()
        self.cluster._loop.call_soon_threadsafe(lambda: (function(), done.set()))
        done.wait(30)

    def handle(self, command, **kwargs):
        cluster = self.cluster
        if command == "seed_operator_crds":
            cluster.seed_operator_crds()
        elif command == "play_operators":
            cluster.play_operators()
        elif command == "set_latency":
            self.latency = kwargs["seconds"]
        elif command == "freeze":
            # The objects set up so far live until the end: the collector
            # need not scan them again on every collection.
            gc.collect()
            gc.freeze()
        elif command == "stats":
            return self.stats(kwargs.get("reset", False))
        elif command == "trace":
            # Starts a trace, or ends it and returns it.
            trace, self.trace = self.trace, [] if kwargs.get("start") else None
            return {"requests": trace or []}
        elif command == "profile":
            if kwargs.get("path"):
                self._on_loop(self.profile.disable)
                self.profile.dump_stats(kwargs["path"])
            else:
                self.profile = cProfile.Profile()
                self._on_loop(self.profile.enable)
        else:
            raise ValueError(f"unknown command {command!r}")
        return {}

    def stats(self, reset):
        times, now = self.times, (time.perf_counter(), time.process_time())
        if reset:
            self.times = []
        wall, cpu = now[0] - self.since[0], now[1] - self.since[1]
        if reset:
            self.since = now
        lags = [lag for lag, _service in times]
        services = [service for _lag, service in times]
        return {
            "requests": len(times),
            "wall": wall,
            "cpu": cpu,
            "lag": _summary(lags),
            "service": _summary(services),
            # What the client waits on beyond the latency.
            "own": _summary([lag + service for lag, service in times]),
        }


def main():
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, int(sys.argv[1]) if sys.argv[1:] else 0)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    server = _Server()
    reply = {"url": server.cluster.url, "kubeconfig": server.cluster.kubeconfig()}
    print(json.dumps(reply), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        command = request.pop("command")
        if command == "stop":
            print(json.dumps({}), flush=True)
            break
        try:
            reply = server.handle(command, **request)
        except Exception as error:  # noqa: BLE001 - the benchmark reports it
            reply = {"error": repr(error)}
        print(json.dumps(reply), flush=True)
    server.cluster.stop()


if __name__ == "__main__":
    main()
