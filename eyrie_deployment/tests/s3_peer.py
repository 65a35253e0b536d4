"""An S3-compatible server of a test's own (moto's server mode, on loopback)
and the AWS CLI that the shipped books' filestore archive Jobs run.

Both come from the virtualenv ``$EYRIE_S3_PEER`` that ``bin/eyrie-test``
installs (moto needs a newer ``cryptography`` than Odoo 18.0 pins, so it
cannot share Odoo's Python). Missing, they fail the test: nothing is skipped.
"""

import os
import subprocess
import time
import urllib.error
import urllib.request

from .private_postgres import free_port

START_TIMEOUT = 60


def _peer_binary(name):
    root = os.environ.get(
        "EYRIE_S3_PEER",
        os.path.expanduser("~/.local/share/eyrie/s3-peer"),
    )
    path = os.path.join(root, "bin", name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(
            f"The tests' S3 peer has no {name} in {root}: run the tests with "
            "bin/eyrie-test, which installs moto[server] and awscli there "
            "(or set EYRIE_S3_PEER to such a virtualenv)"
        )
    return path


class S3Peer:
    """``with S3Peer("bucket") as s3: s3.aws(["s3", "ls"], env)``."""

    def __init__(self, bucket):
        self.bucket = bucket
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.aws_binary = _peer_binary("aws")
        self._server_binary = _peer_binary("moto_server")
        self._server = None

    def __enter__(self):
        self._server = subprocess.Popen(
            [self._server_binary, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self._wait_listening()
            self.aws(["s3", "mb", f"s3://{self.bucket}"], self.client_env("k", "s"))
        except BaseException:
            self._stop()
            raise
        return self

    def __exit__(self, *_exc):
        self._stop()

    def _stop(self):
        self._server.terminate()
        try:
            self._server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()

    def _wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._server.poll() is not None:
                raise RuntimeError(f"moto_server exited with {self._server.returncode}")
            try:
                urllib.request.urlopen(self.endpoint_url, timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"moto_server did not answer within {START_TIMEOUT} s")

    def client_env(self, key_id, secret_key, region="us-east-1"):
        """The environment of an AWS CLI pointed at this server."""
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("AWS_")
        }
        return env | {
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_DEFAULT_REGION": region,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }

    def aws(self, args, env):
        """``aws ARGS`` with ``env``; returns the finished process."""
        return subprocess.run(
            [self.aws_binary, *args],
            env=env,
            capture_output=True,
            check=False,
            text=True,
            timeout=300,
        )

    def keys(self, env):
        """The object keys in the bucket."""
        listed = self.aws(
            ["s3api", "list-objects-v2", "--bucket", self.bucket,
             "--query", "Contents[].Key", "--output", "text"],
            env,
        )  # fmt: skip
        if listed.returncode:
            raise RuntimeError(listed.stderr)
        return [key for key in listed.stdout.split() if key != "None"]
