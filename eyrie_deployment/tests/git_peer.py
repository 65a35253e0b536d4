"""A git server of a test's own, on loopback, over HTTPS: git's own
``git http-backend`` run as a CGI by a ``ThreadingHTTPServer`` in TLS, with a
certificate of a CA made for the run (trusted with ``GIT_SSL_CAINFO``).

``create_sample()`` makes a bare repository holding the addon ``eyrie_sample``
in three versions, only the first on the branch ``18.0``; ``push()`` later
moves the branch. Needs git and ``cryptography`` (Odoo requires it), imports
nothing from Odoo; git runs with a throwaway HOME and no system config.
"""

import base64
import datetime
import gzip
import hmac
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VERSIONS = ("18.0.1.0.0", "18.0.1.1.0", "18.0.1.2.0")
# Commits past the branch head are kept under a ref that upload-pack does not
# advertise: they stay in the repository (fetchable by sha), off every branch.
HELD_REF = "refs/eyrie-peer/held"

MANIFEST = """{{
    "name": "Eyrie Sample",
    "version": "{version}",
    "depends": ["base"],
    "data": ["security/ir.model.access.csv"],
    "license": "LGPL-3",
    "installable": True,
}}
"""
MODEL = """from odoo import fields, models


class EyrieSample(models.Model):
    _name = "eyrie.sample"
    _description = "Eyrie Sample"

    name = fields.Char()
"""
ACCESS = """id,name,model_id:id,group_id:id,perm_read,perm_write,perm_create,perm_unlink
access_eyrie_sample_user,eyrie.sample user,model_eyrie_sample,base.group_user,1,1,1,1
"""
MIGRATION = """def migrate(cr, version):
    raise Exception("sample upgrade refused: the data is broken")
"""


def _sample_files(version):
    files = {
        "__manifest__.py": MANIFEST.format(version=version),
        "__init__.py": "from . import models\n",
        "models/__init__.py": "from . import eyrie_sample\n",
        "models/eyrie_sample.py": MODEL,
        "security/ir.model.access.csv": ACCESS,
    }
    if version >= "18.0.1.1.0":
        files["models/eyrie_sample.py"] += "    note = fields.Char()\n"
    if version >= "18.0.1.2.0":
        files["migrations/18.0.1.2.0/post-migrate.py"] = MIGRATION
    return files


def _certificates():
    """PEM of the CA certificate, the server certificate and the server key."""
    ca_key, key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(2))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Eyrie git peer")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    now = datetime.datetime.now(datetime.UTC)

    def issue(subject, public_key, *extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
        )
        for extension in extensions:
            # Critical as RFC 5280 asks, which strict verifiers check.
            critical = isinstance(extension, x509.BasicConstraints | x509.KeyUsage)
            builder = builder.add_extension(extension, critical)
        cert = builder.sign(ca_key, hashes.SHA256())
        return cert.public_bytes(serialization.Encoding.PEM)

    signs_certs = x509.KeyUsage(*[False] * 5, True, True, False, False)
    ca_constraints = x509.BasicConstraints(ca=True, path_length=0)
    ca = issue(ca_name, ca_key.public_key(), ca_constraints, signs_certs, ca_ski)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    server = issue(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]),
        key.public_key(),
        x509.BasicConstraints(ca=False, path_length=None),
        x509.SubjectAlternativeName([x509.DNSName("localhost"), loopback]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
    )
    pkcs8 = serialization.PrivateFormat.PKCS8
    no_password = serialization.NoEncryption()
    return ca, server, key.private_bytes(serialization.Encoding.PEM, pkcs8, no_password)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the request's thread, not in accept(): a
        # client that stalls or refuses the certificate holds up no one else.
        request.settimeout(60)
        try:
            tls = self.tls.wrap_socket(request, server_side=True)
        except OSError:
            return
        with tls:
            super().finish_request(tls, client_address)

    def handle_error(self, request, client_address):
        pass  # a client hanging up mid-response is no failure of the peer's


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for chunked responses: the client then needs no EOF (nor a TLS
    # close_notify) to find the end of a response, and connections are reused.
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass  # requests() has what was served; the test run's stderr stays clean

    def log_request(self, code="-", size="-"):
        with self.server.peer._lock:
            self.server.peer._requests.append(f"{self.command} {self.path}")

    def do_GET(self):
        peer = self.server.peer
        if peer.token is not None:
            basic = base64.b64encode(f"{peer.username}:{peer.token}".encode())
            given = self.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, b"Basic " + basic):
                return self._refuse()
        body = self._read_body()
        # Inflated here so http-backend always reads a plain body of known size.
        if self.headers.get("Content-Encoding", "").lower() in ("gzip", "x-gzip"):
            body = gzip.decompress(body)
        url = urlsplit(self.path)
        env = dict(
            peer._env,
            GIT_PROJECT_ROOT=peer._repos,
            GIT_HTTP_EXPORT_ALL="1",
            GATEWAY_INTERFACE="CGI/1.1",
            SERVER_PROTOCOL=self.request_version,
            REQUEST_METHOD=self.command,
            PATH_INFO=unquote(url.path),
            QUERY_STRING=url.query,
            CONTENT_TYPE=self.headers.get("Content-Type", ""),
            CONTENT_LENGTH=str(len(body)),
            REMOTE_ADDR=self.client_address[0],
            GIT_PROTOCOL=self.headers.get("Git-Protocol", ""),
        )
        if peer.token is not None:
            env["REMOTE_USER"] = peer.username
        # stdin from a file, not a pipe: upload-pack may write before it has
        # read everything, and two full pipes would deadlock.
        log_path = os.path.join(peer._dir, "http-backend.log")
        with tempfile.TemporaryFile() as stdin, open(log_path, "ab") as log:
            stdin.write(body)
            stdin.seek(0)
            backend = subprocess.Popen(
                ["git", "http-backend"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=log,
                env=env,
            )
        with backend:
            try:
                self._relay(backend.stdout)
            except BaseException:
                backend.kill()  # the client left mid-response
                raise

    do_POST = do_GET

    def _read_body(self):
        if "chunked" not in self.headers.get("Transfer-Encoding", "").lower():
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))
        parts = []
        while size := int(self.rfile.readline().split(b";")[0], 16):
            parts.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(parts)

    def _refuse(self):
        body = b"Authentication required\n"
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="eyrie git peer"')
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True  # the request's body, if any, is unread

    def _relay(self, out):
        status, headers = (200, "OK"), []
        while (line := out.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = (part.strip() for part in line.decode().partition(":"))
            if name.lower() == "status":
                code, _, reason = value.partition(" ")
                status = (int(code), reason)
            elif name.lower() != "content-length":  # the body goes out chunked
                headers.append((name, value))
        self.send_response(*status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        while data := out.read1(65536):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")


class GitPeer:
    """A git server on 127.0.0.1 over HTTPS: git http-backend run as CGI by a
    ThreadingHTTPServer wrapped in TLS with a certificate of a CA made for the run.

    ``with GitPeer() as git: shas = git.create_sample(); git.url("addons")``.
    With ``token``, every request needs HTTP Basic auth (``username``, token).
    """

    host = "localhost"  # what the server certificate names (and 127.0.0.1)

    def __init__(self, token=None, username="eyrie"):
        self.token, self.username = token, username
        self.port = self.ca_pem = self.ca_file = self._dir = self._server = None
        self._requests, self._lock = [], threading.Lock()

    def __enter__(self):
        self._dir = tempfile.mkdtemp(prefix="eyrie-git-peer-")
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self):
        self._repos, home = (os.path.join(self._dir, d) for d in ("repos", "home"))
        os.makedirs(self._repos)
        os.makedirs(home)
        # Inherited GIT_* variables (GIT_DIR, GIT_SSL_NO_VERIFY...) must not leak in.
        self._env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        self._env.update(
            HOME=home,
            XDG_CONFIG_HOME=os.path.join(home, ".config"),
            GIT_CONFIG_NOSYSTEM="1",
            GIT_TERMINAL_PROMPT="0",
            GIT_AUTHOR_NAME="Eyrie Test",
            GIT_AUTHOR_EMAIL="eyrie-test@example.com",
            GIT_COMMITTER_NAME="Eyrie Test",
            GIT_COMMITTER_EMAIL="eyrie-test@example.com",
        )
        files = [os.path.join(self._dir, f) for f in ("ca.pem", "cert.pem", "key.pem")]
        for file, pem in zip(files, _certificates(), strict=True):
            with open(file, "wb") as f:  # in mkdtemp's folder, mode 0700
                f.write(pem)
        self.ca_file = files[0]
        with open(self.ca_file) as f:
            self.ca_pem = f.read()
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(*files[1:])
        server = _Server(("127.0.0.1", 0), _Handler)
        server.tls, server.peer = tls, self
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        self._server = server  # only now may __exit__ wait for serve_forever

    def __exit__(self, *_exc):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def url(self, name):
        return f"https://{self.host}:{self.port}/{name}.git"

    def requests(self):
        """The request lines served so far ("GET /addons.git/info/refs?...")."""
        with self._lock:
            return list(self._requests)

    def _git(self, *args, cwd=None, **env):
        done = subprocess.run(
            ["git", *args],
            check=False,
            cwd=cwd,
            env=dict(self._env, **env),
            capture_output=True,
            text=True,
        )
        if done.returncode:
            raise RuntimeError(f"git {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_sample(self, name="addons", path=""):
        """Bare repository ``<name>.git`` holding ``eyrie_sample`` (in the
        folder ``path``) in three commits, the branch ``18.0`` at the first
        and the tag ``v1.1`` at the second. Returns {version: commit sha}.
        """
        work = os.path.join(self._dir, "work", name)
        self._git("init", "-q", "-b", "18.0", work)
        shas = {}
        for day, version in enumerate(VERSIONS, start=1):
            for rel, text in _sample_files(version).items():
                file = os.path.join(work, path, "eyrie_sample", rel)
                os.makedirs(os.path.dirname(file), exist_ok=True)
                with open(file, "w") as f:
                    f.write(text)
            self._git("add", "-A", cwd=work)
            date = f"2024-01-0{day}T12:00:00+00:00"  # the same shas on every run
            message = f"eyrie_sample {version}"
            dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
            self._git("commit", "-q", "-m", message, cwd=work, **dates)
            shas[version] = self._git("rev-parse", "HEAD", cwd=work)
        self._git("tag", "v1.1", shas["18.0.1.1.0"], cwd=work)
        bare = os.path.join(self._repos, f"{name}.git")
        self._git("init", "-q", "--bare", "-b", "18.0", bare)
        for allow in ("allowReachableSHA1InWant", "allowAnySHA1InWant"):
            self._git("config", f"uploadpack.{allow}", "true", cwd=bare)
        self._git("config", "uploadpack.hideRefs", HELD_REF, cwd=bare)
        first, last = shas[VERSIONS[0]], shas[VERSIONS[-1]]
        refs = [f"{first}:refs/heads/18.0", f"{last}:{HELD_REF}", "refs/tags/v1.1"]
        self._git("push", "-q", bare, *refs, cwd=work)
        return shas

    def push(self, name, sha, branch="18.0"):
        """Move ``branch`` of ``<name>.git`` to ``sha``: fast-forward only."""
        # Pushing the repository to itself gets receive-pack's fast-forward check.
        bare = os.path.join(self._repos, f"{name}.git")
        self._git("push", "-q", ".", f"{sha}:refs/heads/{branch}", cwd=bare)

    def tag(self, name, tag, sha, message="a release"):
        """An annotated tag ``tag`` of ``sha`` in ``<name>.git``: a tag object,
        whose commit ls-remote gives as ``refs/tags/<tag>^{}``."""
        bare = os.path.join(self._repos, f"{name}.git")
        self._git("tag", "-a", tag, sha, "-m", message, cwd=bare)

    def create_repository(self, name, commits, branch="main", at=-1):
        """Bare repository ``<name>.git`` of ``commits`` — a list of
        (message, {path: text}) each added on the previous — the branch
        ``branch`` at the commit of index ``at`` (the others fetchable by
        sha, pushed later with ``push``). Returns the commit shas."""
        work = os.path.join(self._dir, "work", name)
        self._git("init", "-q", "-b", branch, work)
        shas = []
        for day, (message, files) in enumerate(commits, start=1):
            for rel, text in files.items():
                file = os.path.join(work, rel)
                os.makedirs(os.path.dirname(file), exist_ok=True)
                with open(file, "w") as f:
                    f.write(text)
            self._git("add", "-A", cwd=work)
            date = f"2024-02-{day:02d}T12:00:00+00:00"
            dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
            self._git("commit", "-q", "-m", message, cwd=work, **dates)
            shas.append(self._git("rev-parse", "HEAD", cwd=work))
        bare = os.path.join(self._repos, f"{name}.git")
        self._git("init", "-q", "--bare", "-b", branch, bare)
        for allow in ("allowReachableSHA1InWant", "allowAnySHA1InWant"):
            self._git("config", f"uploadpack.{allow}", "true", cwd=bare)
        self._git("push", "-q", bare, f"{shas[at]}:refs/heads/{branch}", cwd=work)
        # Every commit stays fetchable by sha, whatever the branches.
        self._git("push", "-q", bare, f"{shas[-1]}:{HELD_REF}", cwd=work)
        self._git("config", "uploadpack.hideRefs", HELD_REF, cwd=bare)
        return shas

    def delete_branch(self, name, branch):
        """Delete ``branch`` of ``<name>.git``."""
        bare = os.path.join(self._repos, f"{name}.git")
        self._git("update-ref", "-d", f"refs/heads/{branch}", cwd=bare)
