"""The code of an Odoo deployment: its addons repositories, its modules and
the registries of its images, checked as data, and the refs of the
repositories pinned to commits by ``git ls-remote``.

Everything here comes from users' values, so it is hostile until checked:

- a repository is ``{"url", "ref", "path"?, "credential"?}``, its URL on
  https or ssh only, on a host its scope allows, and nothing in it may read
  as an option of git or ssh, a local path or another transport
  (``file://``, ``ext::``, ``--upload-pack=...``, ``-oProxyCommand``);
- a ref is a branch, a tag or a commit, as ``git check-ref-format`` allows
  them, never starting with ``-``;
- a module is a technical name;
- an image's registry is one its scope allows (none listed: any).

``ls_remote`` runs git with none of the machine's configuration (no
``insteadOf`` rewriting a URL, no credential helper, no prompt) and with
only the https and ssh transports allowed; a credential reaches git through
its environment and temporary files, never its command line.
"""

import base64
import os
import re
import subprocess
import tempfile
import urllib.parse

from .values import DNS_LABEL_RE, ValuesError

MAX_REPOSITORIES = 20
MAX_MODULES = 200
MODULE_RE = re.compile(r"^[a-z0-9][a-z0-9_]{0,63}$")
COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
# A ref as git check-ref-format allows it, narrowed to what branch and tag
# names use: no '..', '@{', '.lock' ends, control characters or spaces.
REF_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./+-]{0,199}$")
# A repository's path on its host, and a folder inside it.
REPO_PATH_RE = re.compile(r"^[A-Za-z0-9_~][A-Za-z0-9_.~/+-]{0,299}$")
SUBFOLDER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}$")
CREDENTIAL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SSH_USER_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
# scp-like ssh addresses: git@github.com:acme/addons.git
SCP_RE = re.compile(r"^(?P<user>[^@/:]+)@(?P<host>[^@/:]+):(?P<path>[^:]+)$")
REPOSITORY_KEYS = frozenset({"url", "ref", "path", "credential"})
LS_REMOTE_TIMEOUT = 60
# The values naming an image that an Odoo deployment's pods run.
IMAGE_KEYS = ("image", "git_image", "mail_catcher_image")


def _refuse(key, message):
    raise ValuesError(f"'{key}' {message}")


def parse_git_url(url, key="repositories"):
    """(scheme, host, port, path) of a repository URL on https or ssh;
    ``ValuesError`` for anything else."""
    if not isinstance(url, str) or not url:
        _refuse(key, "needs a 'url' for each repository")
    scp = SCP_RE.match(url)
    if scp and "://" not in url:
        user, host, path = scp.group("user", "host", "path")
        port = None
        scheme = "ssh"
    else:
        parsed = urllib.parse.urlsplit(url)
        scheme = parsed.scheme
        if scheme not in ("https", "ssh"):
            _refuse(
                key,
                f"has the URL {url!r}: use an https:// or ssh:// address (or "
                "git@host:path); other transports and local paths are refused",
            )
        if parsed.query or parsed.fragment:
            _refuse(key, f"has the URL {url!r}: remove its '?' or '#' part")
        if parsed.password is not None or (scheme == "https" and parsed.username):
            _refuse(
                key,
                f"has a URL with a user or password in it ({parsed.hostname}): "
                "remove them and name a credential of the scope instead",
            )
        try:
            port = parsed.port
        except ValueError:
            _refuse(key, f"has the URL {url!r}: its port is not a number")
        user, host, path = parsed.username, parsed.hostname, parsed.path
    if user is not None and not SSH_USER_RE.match(user):
        _refuse(key, f"has the URL {url!r}: use a plain user name, such as git")
    host = (host or "").lower()
    if not host or not all(DNS_LABEL_RE.match(label) for label in host.split(".")):
        _refuse(key, f"has the URL {url!r}: its host must be a DNS name")
    path = path.lstrip("/")
    if not REPO_PATH_RE.match(path) or ".." in path.split("/"):
        _refuse(
            key,
            f"has the URL {url!r}: its path must be letters, digits and "
            "'_.~/+-', such as acme/addons.git",
        )
    return scheme, host, port, path


def check_repositories(value, key="repositories"):
    """A list of ``{"url", "ref", "path"?, "credential"?}``."""
    if not isinstance(value, list):
        _refuse(
            key,
            'must be a list of repositories, such as [{"url": '
            '"https://github.com/acme/addons.git", "ref": "18.0"}]',
        )
    if len(value) > MAX_REPOSITORIES:
        _refuse(key, f"lists {len(value)} repositories; at most {MAX_REPOSITORIES}")
    for repository in value:
        if not isinstance(repository, dict):
            _refuse(key, 'holds an item that is not an object {"url", "ref"}')
        unknown = sorted(set(repository) - REPOSITORY_KEYS)
        if unknown:
            _refuse(
                key,
                f"holds a repository with {unknown[0]!r}: use url, ref and "
                "optionally path and credential",
            )
        parse_git_url(repository.get("url"), key)
        check_ref(repository.get("ref"), key)
        path = repository.get("path")
        if path not in (None, "") and (
            not isinstance(path, str)
            or not SUBFOLDER_RE.match(path)
            or ".." in path.split("/")
        ):
            _refuse(
                key,
                f"has the path {path!r}: use a folder of the repository, such "
                "as addons, without '..'",
            )
        credential = repository.get("credential")
        if credential not in (None, "") and (
            not isinstance(credential, str) or not CREDENTIAL_NAME_RE.match(credential)
        ):
            _refuse(key, f"names the credential {credential!r}: use its name")


def check_ref(ref, key="repositories"):
    if (
        not isinstance(ref, str)
        or not REF_RE.match(ref)
        or ".." in ref
        or "//" in ref
        or ref.endswith((".", "/", ".lock"))
        or "/." in ref
    ):
        _refuse(
            key,
            f"has the ref {ref!r}: use a branch, a tag or a commit, such as 18.0",
        )


def check_modules(value, key="modules"):
    if not isinstance(value, list) or len(value) > MAX_MODULES:
        _refuse(key, 'must be a list of module names, such as ["sale", "stock"]')
    for module in value:
        if not isinstance(module, str) or not MODULE_RE.match(module):
            _refuse(
                key,
                f"holds {module!r}: use technical names of modules, such as "
                "sale_management",
            )


def check_allowed_sources(values, hosts, registries, credentials, image_keys):
    """The repositories of ``values`` on ``hosts`` with ``credentials`` (names
    offered by the scope), the images of ``image_keys`` from ``registries``
    (empty: any)."""
    for repository in values.get("repositories") or ():
        _scheme, host, _port, _path = parse_git_url(repository["url"])
        if host not in hosts:
            allowed = ", ".join(sorted(hosts)) or "none"
            _refuse(
                "repositories",
                f"names host {host}, which the scope does not allow (allowed: "
                f"{allowed}); a manager adds it to the scope's Git Hosts",
            )
        credential = repository.get("credential")
        if credential and credential not in credentials:
            offered = ", ".join(sorted(credentials)) or "none"
            _refuse(
                "repositories",
                f"names the credential {credential!r}, which the scope does not "
                f"offer (offered: {offered})",
            )
    if not registries:
        return
    for key in image_keys:
        image = values.get(key)
        if image and image_registry(image) not in registries:
            _refuse(
                key,
                f"is {image!r}, from registry {image_registry(image)}, which the "
                f"scope does not allow (allowed: {', '.join(sorted(registries))})",
            )


def image_registry(image):
    """The registry of an image reference, as container runtimes read it:
    the first component when it names a host (a '.', a ':' or localhost),
    else Docker Hub."""
    first, slash, _rest = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return "docker.io"


def split_names(text):
    """The names of a comma- or line-separated list, lower-cased."""
    return {name.strip().lower() for name in re.split(r"[,\s]+", text or "")} - {""}


# ----------------------------------------------------------------------
# Pinning refs to commits
# ----------------------------------------------------------------------


class GitError(Exception):
    """git could not tell the commit of a ref; the message names them."""


def pin(repository, credential=None, timeout=LS_REMOTE_TIMEOUT):
    """The commit ``repository``'s ref is at now: itself for a commit, else
    the branch or tag of that name (a tag's commit, not the tag object)."""
    ref = repository["ref"]
    if COMMIT_RE.match(ref):
        return ref
    output = ls_remote(repository["url"], ref, credential, timeout)
    found = {}
    for line in output.splitlines():
        commit, _tab, name = line.partition("\t")
        found[name] = commit
    for name in (
        f"refs/heads/{ref}",
        f"refs/tags/{ref}^{{}}",
        f"refs/tags/{ref}",
        ref,
    ):
        if name in found:
            return found[name]
    raise GitError(
        f"{repository['url']} has no branch or tag {ref!r}; push it, or set another ref"
    )


def ls_remote(url, ref, credential=None, timeout=LS_REMOTE_TIMEOUT):
    """``git ls-remote <url> <ref> refs/tags/<ref>^{}`` with the credential
    (a dict: ``username`` and ``token``, or ``ssh_private_key`` and
    ``ssh_known_hosts``; ``ca_certificate`` for a private CA)."""
    parse_git_url(url)
    check_ref(ref)
    return _ls_remote(url, [ref, f"refs/tags/{ref}^{{}}"], credential, timeout)


def branch_heads(url, credential=None, timeout=LS_REMOTE_TIMEOUT):
    """{branch: commit} of every branch of ``url`` now (``git ls-remote
    --heads``), with the credential as ``ls_remote``."""
    parse_git_url(url)
    heads = {}
    output = _ls_remote(url, ["--heads"], credential, timeout, options=True)
    for line in output.splitlines():
        commit, _tab, name = line.partition("\t")
        if name.startswith("refs/heads/") and COMMIT_RE.match(commit):
            heads[name.removeprefix("refs/heads/")] = commit
    return heads


def _ls_remote(url, patterns, credential, timeout, options=False):
    credential = credential or {}
    # The options before the URL; the URL after "--" never reads as one.
    arguments = (
        ["git", "ls-remote", *patterns, "--", url]
        if options
        else ["git", "ls-remote", url, *patterns]
    )
    with tempfile.TemporaryDirectory(prefix="eyrie-git-") as home:
        env = _git_env(home, credential)
        try:
            result = subprocess.run(
                arguments,
                env=env,
                cwd=home,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise GitError(f"{url} did not answer within {timeout} s") from None
    if result.returncode:
        raise GitError(f"{url}: {_first_error_line(result.stderr)}")
    return result.stdout


def _first_error_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line.removeprefix("fatal: ").removeprefix("remote: ")
    return "git failed without saying why"


def _write(folder, name, text, mode=0o600):
    path = os.path.join(folder, name)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT, mode), "w") as handle:
        handle.write(text if text.endswith("\n") else text + "\n")
    return path


def _git_env(home, credential):
    """git's environment: no configuration but ours, no prompt, https and
    ssh only, the credential in files of ``home`` and in variables."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "LC_ALL": "C",
    }
    config = [
        ("protocol.allow", "never"),
        ("protocol.https.allow", "always"),
        ("protocol.ssh.allow", "always"),
        ("credential.helper", ""),
    ]
    if credential.get("token"):
        basic = base64.b64encode(
            f"{credential.get('username') or 'git'}:{credential['token']}".encode()
        ).decode()
        config.append(("http.extraHeader", f"Authorization: Basic {basic}"))
    if credential.get("ca_certificate"):
        env["GIT_SSL_CAINFO"] = _write(home, "ca.pem", credential["ca_certificate"])
    known_hosts = _write(home, "known_hosts", credential.get("ssh_known_hosts") or "")
    ssh = [
        "ssh",
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        f"UserKnownHostsFile={known_hosts}",
    ]
    if credential.get("ssh_private_key"):
        key = _write(home, "id_key", credential["ssh_private_key"])
        ssh += ["-o", "IdentitiesOnly=yes", "-i", key]
    env["GIT_SSH_COMMAND"] = " ".join(ssh)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (name, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = name
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env
