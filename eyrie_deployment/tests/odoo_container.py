"""Running the shipped Odoo books' containers for real: a real Odoo 18.0
process runs the scripts and commands of the rendered objects, with the
environment the Pod gives them, against a private PostgreSQL cluster.

What the official image does with that environment (``/entrypoint.sh`` and
``wait-for-psql.py`` of odoo/docker 18.0) is mirrored by ``odoo_image.py``.
The rest is the Pod's: the ConfigMaps mounted where the Pod mounts them, the
filestore at ``/var/lib/odoo``, the image's configuration file at
``$ODOO_RC`` and the database Service; here they are temporary folders, a
configuration file with this machine's addons and free loopback ports, and
the private cluster.
"""

import base64
import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from . import odoo_image
from .private_postgres import free_port

MIRROR = os.path.abspath(odoo_image.__file__)
START_TIMEOUT = 180


def _odoo_addons_paths():
    import odoo

    package = os.path.dirname(odoo.__file__)
    candidates = [
        os.path.join(package, "addons"),
        os.path.join(package, "..", "addons"),
    ]
    return ",".join(
        os.path.abspath(path)
        for path in candidates
        if os.path.isfile(os.path.join(path, "web", "__manifest__.py"))
        or os.path.isfile(os.path.join(path, "base", "__manifest__.py"))
    )


class OdooContainerMixin:
    """Render a deployment's shipped books and run their containers here."""

    def setUp(self):
        super().setUp()
        self.root = tempfile.mkdtemp(prefix="eyrie-odoo-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def _rendered(self, deployment, action, values=None):
        """{(kind, name): object} that the apply steps of a shipped book send,
        with ``values`` (default: the deployment's values now)."""
        context = deployment._template_context(values or deployment._odoo_values())
        objects = {}
        steps = deployment[f"deployment_{action}_book_id"].step_ids
        for step in steps.filtered(lambda s: s.kind == "apply"):
            for obj in deployment._render_step(step, context):
                objects[obj["kind"], obj["metadata"]["name"]] = obj
        return objects

    def _pod_env(self, container, secrets, pg=None):
        """The container's environment as the kubelet builds it, the
        database Service's address replaced by the private cluster's."""
        # This machine's environment stands for the image's own; nothing in it
        # may say where the database or a bucket is.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PG", "ODOO", "OPENERP", "AWS_"))
        }
        for item in container.get("env", []):
            if "valueFrom" in item:
                ref = item["valueFrom"]["secretKeyRef"]
                env[item["name"]] = secrets[ref["name"]][ref["key"]]
            else:
                env[item["name"]] = item["value"]
        if pg:
            env["HOST"], env["PORT"] = pg.host, str(pg.port)
        return env

    def _image_config(self, http_port, data_dir=None, name="odoo.conf"):
        """The image's /etc/odoo/odoo.conf (addons_path, data_dir), with
        this machine's addons and a free port in place of 8069/8072."""
        path = os.path.join(self.root, name)
        with open(path, "w") as handle:
            handle.write(
                "[options]\n"
                f"addons_path = {_odoo_addons_paths()}\n"
                f"data_dir = {data_dir or self._default_mounts()['/var/lib/odoo']}\n"
                f"http_port = {http_port}\n"
                f"gevent_port = {free_port()}\n"
                "http_interface = 127.0.0.1\n"
            )
        return path

    def _default_mounts(self):
        return {
            "/var/lib/odoo": f"{self.root}/filestore",
            "/eyrie": f"{self.root}/eyrie",
            "/eyrie-code": f"{self.root}/eyrie-code",
        }

    def _on_host(self, text, mounts=None):
        """``text`` with the container's mount paths (``mounts``: container
        path -> this machine's folder) where the test mounted them."""
        mounts = mounts or self._default_mounts()
        # In one pass, whole path components only: a folder the test made may
        # itself contain a mount path's name.
        pattern = "|".join(re.escape(path) for path in mounts)
        return re.sub(
            rf"(?<![\w/.-])({pattern})(?![\w.-])",
            lambda match: mounts[match.group(1)],
            text,
        )

    def _mounted(self, args, mounts=None):
        return [self._on_host(arg, mounts) for arg in args]

    def _write_scripts(self, config_map, mounts=None, mount="/eyrie"):
        """The ConfigMap's files where the Pod mounts it (``mount``), the
        image's entrypoint replaced by its mirror."""
        folder = (mounts or self._default_mounts())[mount]
        os.makedirs(folder, exist_ok=True)
        for name, text in config_map["data"].items():
            text = text.replace("/entrypoint.sh", f"{sys.executable} {MIRROR}")
            with open(os.path.join(folder, name), "w") as handle:
                handle.write(self._on_host(text, mounts))
        return folder

    def _run_container(self, container, env, mounts=None):
        """The container's command and arguments (``bash /eyrie/<script>``,
        ``bash -c ...``), its ConfigMap and volumes mounted from the test's
        folders: the finished process."""
        command = self._mounted(container["command"], mounts)
        return subprocess.run(
            [*command, *self._mounted(container.get("args", []), mounts)],
            env=env,
            capture_output=True,
            check=False,
            text=True,
            timeout=600,
        )

    def _run_container_script(self, container, env, mounts=None):
        """``_run_container``, asserting it exits 0."""
        result = self._run_container(container, env, mounts)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return result

    def _run_aws_container(self, container, secrets, s3, mounts):
        """A container of the scope's S3 client image (``aws ...``) with this
        machine's AWS CLI, the bucket's endpoint replaced by the S3 peer's;
        asserts it exits 0."""
        command = container["command"]
        self.assertEqual(command[0], "aws")
        env = self._pod_env(container, secrets)
        env["AWS_ENDPOINT_URL_S3"] = s3.endpoint_url
        env["AWS_CONFIG_FILE"] = self._on_host(env["AWS_CONFIG_FILE"], mounts)
        result = s3.aws(self._mounted(command[1:], mounts), env)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])

    @staticmethod
    def _decoded(secret):
        return {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}

    def _wait_healthy(self, server, url):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if server.poll() is not None:
                self.fail(f"Odoo exited with {server.returncode} before it was healthy")
            # OSError: not listening yet.
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(url, timeout=5) as answer,
            ):
                if answer.status == 200:
                    return
            time.sleep(1)
        self.fail(f"Odoo did not answer {url} within {START_TIMEOUT} s")

    def _odoo(self, pg, config, password, command, *args):
        """This machine's Odoo 18.0 CLI on the private cluster (as role odoo):
        ``odoo <command> <options> <args>``."""
        return subprocess.run(
            [sys.executable, "-m", "odoo", command, "-c", config]
            + ["--db_host", pg.host, "--db_port", str(pg.port)]
            + ["--db_user", "odoo", "--db_password", password, *args],
            capture_output=True,
            check=False,
            text=True,
            timeout=600,
        )
