"""A round-robin TCP load balancer in a process of its own, as in front of
several Odoo servers: each new connection goes to the next backend.

    balancer = Balancer.start([("127.0.0.1", 8069), ("127.0.0.1", 8070)])
    balancer.port  # where to connect
    balancer.stop()

queue_job's runner sends each job (``GET /queue_job/runjob``) on a
connection of its own, so the jobs are shared out in turn.
"""

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Balancer:
    """The benchmark's handle on a balancer process."""

    def __init__(self, process):
        self.process = process
        self.pid = process.pid
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the load balancer did not start")
        self.port = json.loads(line)["port"]

    @classmethod
    def start(cls, backends):
        process = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "tcp_balancer.py")]
            + [f"{host}:{port}" for host, port in backends],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        return cls(process)

    def stop(self):
        if self.process.poll() is None:
            # It stops when its standard input closes.
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


async def _pipe(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _serve(backends):
    async def forward(client_reader, client_writer):
        host, port = next(backends)
        try:
            backend_reader, backend_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer)
        )

    server = await asyncio.start_server(forward, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(json.dumps({"port": port}), flush=True)
    loop = asyncio.get_running_loop()
    # Until the benchmark closes our standard input (or dies).
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


def main():
    # As a load balancer on machines of its own would not wait for the Odoo
    # servers' CPU.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, -10)
    backends = []
    for backend in sys.argv[1:]:
        host, port = backend.rsplit(":", 1)
        backends.append((host, int(port)))
    asyncio.run(_serve(itertools.cycle(backends)))


if __name__ == "__main__":
    main()
