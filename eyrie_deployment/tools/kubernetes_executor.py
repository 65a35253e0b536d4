"""Run book steps on a real cluster through the official Kubernetes client.

Every object goes through the dynamic client (discovery tells the resource
of any kind, custom ones included). Errors become the exceptions of
``executor``: ``StepError`` fails the job, ``TransientStepError`` and
``ClusterConnectionError`` let the runner retry later, ``StepPending`` makes a
wait step check again later without holding a worker.
"""

import base64
import copy
import hashlib
import json
import logging
import threading
import time

import urllib3
import yaml
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    DynamicApiError,
    ResourceNotFoundError,
    ResourceNotUniqueError,
)

from .executor import (
    DEFAULT_WAIT_TIMEOUT,
    DEPLOYMENT_LABEL,
    SCALABLE_KINDS,
    ClusterConnectionError,
    Executor,
    StepError,
    StepPending,
    TransientStepError,
    format_labels,
)
from .kubernetes_discovery import Discoverer, SingleFlight

_logger = logging.getLogger(__name__)
# The client logs whole response bodies at DEBUG, Secrets' data included:
# keep that out of Odoo's log whatever its level.
logging.getLogger("kubernetes.client.rest").setLevel(logging.INFO)

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 30
REQUEST_TIMEOUT = (CONNECT_TIMEOUT, READ_TIMEOUT)
FIELD_MANAGER = "eyrie"
# Where a pause to 0 keeps the replica count that the next deploy restores.
PAUSED_REPLICAS_ANNOTATION = "eyrie.io/replicas-before-pause"
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
MERGE_PATCH = "application/merge-patch+json"


class _TimeoutDynamicClient(DynamicClient):
    """Dynamic client whose every request, discovery included, has timeouts.

    The client passes ``timeout=None`` to urllib3 when a call names none,
    which waits forever; discovery calls never name one.
    """

    def request(self, method, path, body=None, **params):
        params.setdefault("_request_timeout", REQUEST_TIMEOUT)
        return super().request(method, path, body=body, **params)


_clients = {}
_clients_lock = threading.Lock()
# The hosts of each cluster's Ingresses, as a deploy last listed them: {id of
# the client: (client, when, [(deployment label, hosts)])}. A host found free
# in a list younger than HOSTS_LIST_TTL seconds is free; a host found taken
# is checked again in a new list. A fleet update lists once every few
# seconds per process, not once per deploy (each list is as long as the
# cluster's Ingresses). What it may miss: an Ingress created in the last
# seconds, which an apply a moment earlier would have missed as well.
HOSTS_LIST_TTL = 5
_ingress_hosts = {}
_ingress_hosts_lock = threading.Lock()
# The jobs that find no client of their cluster wait for the one making it,
# rather than each discovering the cluster.
_connecting = SingleFlight()


def _client_key(cluster_key, kubeconfig, context):
    digest = hashlib.sha256(f"{kubeconfig or ''}\0{context or ''}".encode())
    return (cluster_key, digest.hexdigest())


def get_client(cluster_name, cluster_key, kubeconfig, context):
    """The dynamic client of a cluster: one per cluster configuration per
    process, kept across jobs and steps, and its discovery with it."""
    key = _client_key(cluster_key, kubeconfig, context)
    with _clients_lock:
        client = _clients.get(key)
    if client is None:
        client = _connecting.run(
            key, lambda: _cached_client(key, cluster_name, kubeconfig, context)
        )
    return client


def _cached_client(key, cluster_name, kubeconfig, context):
    with _clients_lock:
        client = _clients.get(key)  # made by a thread that ended meanwhile
    if client is None:
        client = _make_client(cluster_name, kubeconfig, context)
        with _clients_lock:
            client = _clients.setdefault(key, client)
    return client


def forget_clients(cluster_key):
    """Drop the cached clients of a cluster (its configuration changed), and
    what was listed with them."""
    with _clients_lock:
        for key in [key for key in _clients if key[0] == cluster_key]:
            client = _clients.pop(key)
            with _ingress_hosts_lock:
                _ingress_hosts.pop(id(client), None)


# What a kubeconfig may not hold: each would run a program, or read a file, of
# the Odoo server. Key -> what to use instead.
_USER_PLUGINS = {
    "exec": "a token ('token') or a client certificate ('client-certificate-data' "
    "and 'client-key-data')",
    "auth-provider": "a token ('token') or a client certificate "
    "('client-certificate-data' and 'client-key-data')",
}
_FILE_KEYS = {
    "tokenFile": "'token' with the token itself",
    "client-certificate": "'client-certificate-data' (the certificate, base64)",
    "client-key": "'client-key-data' (the key, base64)",
    "certificate-authority": "'certificate-authority-data' (the CA, base64)",
}


class KindNotInstalled(StepError):
    """The cluster does not serve an object's kind (a CRD not installed)."""


class KubeconfigError(ValueError):
    """A kubeconfig holds something Eyrie refuses; the message says what to
    use instead."""


def parse_kubeconfig(kubeconfig):
    """The kubeconfig as a mapping, with inline credentials only.

    Raises ``KubeconfigError`` for an ``exec`` or ``auth-provider`` plugin and
    for every file path: nothing a kubeconfig holds may run or open a file on
    the server. Leave it empty to use the in-cluster service account."""
    try:
        config = yaml.safe_load(kubeconfig)
    except yaml.YAMLError as error:
        # Not the error's text: it quotes the lines around, credentials too.
        mark = getattr(error, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise KubeconfigError(f"it is not valid YAML{where}") from None
    if not isinstance(config, dict):
        raise KubeconfigError("it is not a YAML mapping")
    for section, entry_key in (("users", "user"), ("clusters", "cluster")):
        entries = config.get(section) or []
        if not isinstance(entries, list):
            raise KubeconfigError(f"'{section}' must be a list")
        for entry in entries:
            body = (entry or {}).get(entry_key) if isinstance(entry, dict) else None
            if body is None:
                continue
            if not isinstance(body, dict):
                raise KubeconfigError(f"'{section}[].{entry_key}' must be a mapping")
            _check_kubeconfig_entry(section, entry.get("name"), body)
    return config


def _check_kubeconfig_entry(section, name, body):
    for key, instead in (_USER_PLUGINS | _FILE_KEYS).items():
        if body.get(key) in (None, "", {}):
            continue
        kind = "runs a program" if key in _USER_PLUGINS else "reads a file"
        raise KubeconfigError(
            f"{section[:-1]} {name!r} uses '{key}', which {kind} on the Odoo server: "
            f"use {instead} instead, or leave the kubeconfig empty to use the "
            "in-cluster service account"
        )


def _make_client(cluster_name, kubeconfig, context):
    configuration = k8s_client.Configuration()
    try:
        if kubeconfig:
            config_dict = parse_kubeconfig(kubeconfig)
            k8s_config.load_kube_config_from_dict(
                config_dict,
                context=context or None,
                client_configuration=configuration,
                persist_config=False,
            )
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)
    except (ConfigException, ValueError) as error:
        # The messages name the missing part, never a credential.
        raise StepError(
            f"cluster {cluster_name}: its configuration is not usable: "
            f"{_first_line(error)}"
        ) from error
    # Eyrie retries per job, with backoff; urllib3 must not retry underneath.
    configuration.retries = False
    api_client = k8s_client.ApiClient(configuration)
    try:
        # Eyrie's discoverer: in memory and thread-safe (the library's keeps
        # discovery in a shared temporary file, and breaks under threads).
        return _TimeoutDynamicClient(api_client, discoverer=Discoverer)
    except urllib3.exceptions.HTTPError as error:
        raise _unreachable(f"cluster {cluster_name}", error) from error
    except DynamicApiError as error:
        raise _api_error(error, f"cluster {cluster_name} discovery") from error


def server_version(cluster_name, cluster_key, kubeconfig, context):
    """``gitVersion`` of the cluster, for the "Test connection" button."""
    client = get_client(cluster_name, cluster_key, kubeconfig, context)
    try:
        info = k8s_client.VersionApi(client.client).get_code(
            _request_timeout=REQUEST_TIMEOUT
        )
    except urllib3.exceptions.HTTPError as error:
        raise _unreachable(f"cluster {cluster_name}", error) from error
    except k8s_client.ApiException as error:
        raise _api_error(error, f"cluster {cluster_name} /version") from error
    return info.git_version or "unknown"


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def _unreachable(what, error):
    """The error of a request that never got an answer from ``what``."""
    return ClusterConnectionError(
        f"{what} cannot be reached: {_connection_cause(error)}"
    )


def _connection_cause(error):
    reason = getattr(error, "reason", None) or error
    return _first_line(reason)


def _status_message(error):
    """The API's own message from a Status body, else the HTTP reason."""
    try:
        body = json.loads(error.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return (isinstance(body, dict) and body.get("message")) or error.reason or ""


MAX_ERROR_TEXT = 300


def safe_error_text(error):
    """What a job log or the chatter may say of an unexpected error: its type
    and first line, never an API response's headers or body."""
    if isinstance(error, (DynamicApiError, k8s_client.ApiException)):
        return f"{type(error).__name__}: {_status_message(error)} (HTTP {error.status})"
    text = _first_line(error)
    if len(text) > MAX_ERROR_TEXT:
        text = text[:MAX_ERROR_TEXT] + "..."
    return f"{type(error).__name__}: {text}"


def _api_error(error, what):
    status = getattr(error, "status", None)
    message = f"{what}: {_status_message(error)} (HTTP {status})"
    if status in TRANSIENT_STATUSES:
        return TransientStepError(message)
    return StepError(message)


def _plain(result):
    return result.to_dict() if hasattr(result, "to_dict") else result or {}


def _parsed(_client, data):
    """What a request of the executor returns: its JSON as parsed (the
    dynamic client's ``serializer``). The client's default, a
    ``ResourceInstance``, wraps every field of the answer in an object of its
    own, which the executor turned back into dicts or threw away: most of
    the client's CPU per request."""
    return data


def _get_path(obj, path):
    """Value at a dotted path (``status.instances.0.readyReplicas``)."""
    value = obj
    for part in path.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            value = value[index] if -len(value) <= index < len(value) else None
        elif isinstance(value, dict):
            value = value.get(part)
        else:
            return None
        if value is None:
            return None
    return value


def _secret_values(obj):
    """Strings of a Secret that must never appear in a message."""
    if obj.get("kind") != "Secret":
        return []
    values = []
    for value in (obj.get("stringData") or {}).values():
        text = str(value)
        values += [text, base64.b64encode(text.encode()).decode()]
    for value in (obj.get("data") or {}).values():
        text = str(value)
        values += [text, _b64decode_or_empty(text)]
    return [value for value in values if len(value) >= 3]


def _b64decode_or_empty(text):
    try:
        return base64.b64decode(text, validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def scrub(message, obj):
    for value in _secret_values(obj):
        message = message.replace(value, "***")
    return message


class KubernetesExecutor(Executor):
    """Runs steps on a cluster through a (cached) dynamic client."""

    def __init__(self, cluster_name, default_namespace, labels, client):
        super().__init__(cluster_name, default_namespace, labels)
        self.client = client
        self._live = {}

    def run_step(self, kind, objects):
        # Live objects read once per step for the ownership checks.
        self._live = {}
        try:
            if kind in ("apply", "patch", "delete"):
                self._prefetch_live(kind, objects)
            if kind == "apply":
                self._check_hosts_free(objects)
            return super().run_step(kind, objects)
        except urllib3.exceptions.HTTPError as error:
            raise _unreachable(f"cluster {self.cluster_name}", error) from error
        finally:
            self._live = {}

    def _prefetch_live(self, verb, objects):
        """Read every object the step names before it changes any (one list
        per kind and namespace where the step names several), and refuse
        the whole step when one of them is not this deployment's: a step is
        left untouched as a whole."""
        groups = {}
        for obj in objects:
            metadata = obj.get("metadata") or {}
            if obj.get("apiVersion") and metadata.get("name"):
                key = (obj["apiVersion"], obj["kind"], metadata.get("namespace"))
                groups.setdefault(key, []).append(obj)
        for group in groups.values():
            try:
                resource, name, namespace = self._target(group[0])
            except KindNotInstalled:
                continue
            if len(group) == 1:
                live = {name: self._read_live(resource, name, namespace, group[0])}
            else:
                found = self._call(
                    group[0],
                    f"list {group[0]['kind']}s in namespace {namespace}",
                    resource.get,
                    namespace=namespace,
                )
                live = {
                    item["metadata"]["name"]: item
                    for item in _plain(found).get("items") or []
                }
            for obj in group:
                name = obj["metadata"]["name"]
                self._live[_live_key(obj, namespace, name)] = live.get(name)
                self._check_owned(live.get(name), verb, self._describe(obj, namespace))

    def _check_hosts_free(self, objects):
        """Refuse the whole step when a host one of its Ingresses serves is
        already served on the cluster by an Ingress Eyrie did not create for
        this deployment: browsers would send that site's cookies here. Reads
        only the hosts and labels of the cluster's Ingresses, never says
        whose they are."""
        hosts = {
            rule.get("host")
            for obj in objects
            if obj.get("kind") == "Ingress"
            and str(obj.get("apiVersion", "")).startswith("networking.k8s.io/")
            for rule in ((obj.get("spec") or {}).get("rules") or [])
            if rule.get("host")
        }
        if not hosts:
            return
        ingress = next(obj for obj in objects if obj.get("kind") == "Ingress")
        listed, fresh = self._cluster_ingress_hosts(ingress, refresh=False)
        taken = self._hosts_taken(listed, hosts)
        if taken and not fresh:
            # Seen taken a few seconds ago: maybe no more.
            listed, fresh = self._cluster_ingress_hosts(ingress, refresh=True)
            taken = self._hosts_taken(listed, hosts)
        if taken:
            raise StepError(
                f"host {min(taken)} is already served on cluster "
                f"{self.cluster_name} by an Ingress Eyrie did not create for "
                "this deployment: set another 'hostname' in its values"
            )

    def _hosts_taken(self, listed, hosts):
        """The hosts of ``hosts`` that an Ingress of ``listed`` serves, but
        those this deployment's own Ingresses serve."""
        mine = self.labels.get(DEPLOYMENT_LABEL)
        taken = set()
        for deployment, served in listed:
            if mine is not None and deployment == mine:
                continue
            taken |= hosts & served
        return taken

    def _cluster_ingress_hosts(self, ingress, refresh):
        """[(deployment label, hosts)] of every Ingress of the cluster, and
        whether it was listed now: from the list of the last
        ``HOSTS_LIST_TTL`` seconds unless ``refresh``."""
        now = time.monotonic()
        with _ingress_hosts_lock:
            cached = _ingress_hosts.get(id(self.client))
        if (
            not refresh
            and cached
            and cached[0] is self.client
            and now - cached[1] < HOSTS_LIST_TTL
        ):
            return cached[2], False
        found = self._call(
            ingress,
            "list the cluster's Ingresses to check that its host is free",
            self._resource(ingress).get,
        )
        listed = []
        for item in _plain(found).get("items") or []:
            labels = (item.get("metadata") or {}).get("labels") or {}
            rules = (item.get("spec") or {}).get("rules") or []
            served = frozenset(rule.get("host") for rule in rules if rule.get("host"))
            listed.append((labels.get(DEPLOYMENT_LABEL), served))
        with _ingress_hosts_lock:
            _ingress_hosts[id(self.client)] = (self.client, now, listed)
        return listed, True

    # -- helpers -------------------------------------------------------

    def _resource(self, obj):
        api_version, kind = obj["apiVersion"], obj["kind"]
        try:
            return self.client.resources.get(api_version=api_version, kind=kind)
        except ResourceNotFoundError as error:
            raise KindNotInstalled(
                f"{kind} {api_version} is not installed in the cluster"
            ) from error
        except ResourceNotUniqueError as error:
            raise StepError(
                f"{kind} {api_version} is ambiguous in the cluster"
            ) from error
        except DynamicApiError as error:
            raise _api_error(error, f"discovery of {kind} {api_version}") from error

    def _target(self, obj):
        resource = self._resource(obj)
        namespace = None
        if resource.namespaced:
            namespace = (obj.get("metadata") or {}).get(
                "namespace"
            ) or self.default_namespace
        else:
            self._check_cluster_scoped(obj)
        return resource, obj["metadata"]["name"], namespace

    def _check_cluster_scoped(self, obj):
        # The book was checked against a fixed list of cluster-wide kinds;
        # the cluster's own discovery has the last word (custom kinds).
        name = (obj.get("metadata") or {}).get("name")
        if obj["kind"] != "Namespace" or name != self.default_namespace:
            raise StepError(
                f"{obj['kind']} {name} is cluster-wide on this cluster; the only "
                "cluster-wide object a deployment may touch is its own Namespace "
                f"{self.default_namespace}"
            )

    def check_objects(self, objects):
        """Before the first call that changes anything: no object of the book
        is cluster-wide (as the cluster's discovery says) but the deployment's
        own Namespace. Kinds not installed yet are left to their step."""
        for obj in objects:
            if not obj.get("apiVersion"):
                continue
            try:
                resource = self._resource(obj)
            except KindNotInstalled:
                continue
            except urllib3.exceptions.HTTPError as error:
                # Discovery's requests: the cluster is down, a retry may do.
                raise _unreachable(f"cluster {self.cluster_name}", error) from error
            if not resource.namespaced:
                self._check_cluster_scoped(obj)

    def check_namespace_owners(self, owners):
        for namespace, owner in sorted(owners.items()):
            obj = {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": namespace},
            }
            try:
                live = self._read_live(self._resource(obj), namespace, None, obj)
            except urllib3.exceptions.HTTPError as error:
                raise _unreachable(f"cluster {self.cluster_name}", error) from error
            labels = ((live or {}).get("metadata") or {}).get("labels") or {}
            if labels.get(DEPLOYMENT_LABEL) != str(owner):
                raise StepError(
                    f"namespace {namespace} on cluster {self.cluster_name} is not "
                    f"the one Eyrie created for deployment {owner} (its "
                    f"{DEPLOYMENT_LABEL} label is "
                    f"{labels.get(DEPLOYMENT_LABEL) or 'missing'}): nothing of it "
                    "is read"
                )

    def _check_owned(self, live, verb, described):
        """Refuse to change or delete a live object Eyrie did not create for
        this deployment (its ``eyrie.io/deployment`` label)."""
        mine = self.labels.get(DEPLOYMENT_LABEL)
        if live is None or mine is None:
            return
        owner = ((live.get("metadata") or {}).get("labels") or {}).get(DEPLOYMENT_LABEL)
        if owner == mine:
            return
        whose = (
            f"carries the label {DEPLOYMENT_LABEL}={owner} of another deployment"
            if owner
            else f"has no {DEPLOYMENT_LABEL} label: Eyrie did not create it"
        )
        raise StepError(
            f"{verb} {described} refused: it exists and {whose}. Eyrie changes and "
            "deletes only what it created for this deployment and left it untouched; "
            "choose another namespace or name, or remove it by hand"
        )

    def _describe(self, obj, namespace):
        text = f"{obj['kind']} {obj['metadata']['name']}"
        return f"{text} in namespace {namespace}" if namespace else text

    def _call(self, obj, what, function, *args, **kwargs):
        try:
            return function(*args, serializer=_parsed, **kwargs)
        except DynamicApiError as error:
            if error.status == 404:
                self._raise_if_not_installed(obj)
            raise _scrubbed(_api_error(error, what), obj) from None

    def _raise_if_not_installed(self, obj):
        # Discovery is cached: a kind removed since (a CRD uninstalled) shows
        # as a 404 on the object's path; ask the server again to say so.
        self.client.resources.invalidate_cache()
        self._resource(obj)

    def _get_live(self, resource, name, namespace, obj, what):
        key = _live_key(obj, namespace, name)
        if key in self._live:
            return self._live.pop(key)
        return self._read_live(resource, name, namespace, obj, what)

    def _read_live(self, resource, name, namespace, obj, what=None):
        what = what or f"read {self._describe(obj, namespace)}"
        try:
            return _plain(
                resource.get(name=name, namespace=namespace, serializer=_parsed)
            )
        except DynamicApiError as error:
            if error.status == 404:
                return None
            raise _scrubbed(_api_error(error, what), obj) from None

    def _labelled(self, obj, namespace):
        body = copy.deepcopy(obj)
        body.pop("wait", None)
        metadata = body.setdefault("metadata", {})
        metadata["labels"] = {**(metadata.get("labels") or {}), **self.labels}
        if namespace:
            metadata["namespace"] = namespace
        return body

    # -- step kinds ----------------------------------------------------

    def _step_apply(self, obj):
        resource, name, namespace = self._target(obj)
        what = f"apply {self._describe(obj, namespace)}"
        body = self._labelled(obj, namespace)
        restore = None
        live = self._get_live(resource, name, namespace, obj, what)
        self._check_owned(live, "apply", self._describe(obj, namespace))
        if resource.kind in SCALABLE_KINDS:
            annotations = ((live or {}).get("metadata") or {}).get("annotations") or {}
            restore = annotations.get(PAUSED_REPLICAS_ANNOTATION)
            if restore is not None and "replicas" not in (body.get("spec") or {}):
                body.setdefault("spec", {})["replicas"] = int(restore)
        self._call(
            obj,
            what,
            resource.server_side_apply,
            body=body,
            name=name,
            namespace=namespace,
            field_manager=FIELD_MANAGER,
            force_conflicts=True,
        )
        if restore is not None:
            self._patch(resource, name, namespace, obj, what, _annotation_patch(None))
            return f"applied {self._describe(obj, namespace)} (replicas restored)"
        return f"applied {self._describe(obj, namespace)}"

    def _patch(self, resource, name, namespace, obj, what, body):
        return self._call(
            obj,
            what,
            resource.patch,
            body=body,
            name=name,
            namespace=namespace,
            content_type=MERGE_PATCH,
            field_manager=FIELD_MANAGER,
        )

    def _step_patch(self, obj):
        resource, name, namespace = self._target(obj)
        what = f"patch {self._describe(obj, namespace)}"
        body = copy.deepcopy(obj)
        body.pop("apiVersion", None)
        body.pop("kind", None)
        metadata = body.get("metadata") or {}
        metadata.pop("name", None)
        metadata.pop("namespace", None)
        if not metadata:
            body.pop("metadata", None)
        live = self._get_live(resource, name, namespace, obj, what)
        self._check_owned(live, "patch", self._describe(obj, namespace))
        self._patch(resource, name, namespace, obj, what, body)
        return f"patched {self._describe(obj, namespace)}"

    def _step_delete(self, obj):
        try:
            resource, name, namespace = self._target(obj)
        except KindNotInstalled:
            # A kind that is not installed has nothing to delete.
            return (
                f"{obj['kind']} {obj['apiVersion']} is not installed: nothing to delete"
            )
        described = self._describe(obj, namespace)
        live = self._get_live(resource, name, namespace, obj, f"delete {described}")
        if live is None:
            return f"{described} is already gone"
        self._check_owned(live, "delete", described)
        try:
            resource.delete(
                name=name,
                namespace=namespace,
                propagation_policy="Background",
                serializer=_parsed,
            )
        except DynamicApiError as error:
            if error.status == 404:
                return f"{described} is already gone"
            raise _scrubbed(_api_error(error, f"delete {described}"), obj) from None
        return f"deleted {described}"

    def _step_scale(self, obj):
        obj = {"apiVersion": "apps/v1", "metadata": {}, **obj}
        if "selector" not in obj:
            resource, name, namespace = self._target(obj)
            what = f"scale {self._describe(obj, namespace)}"
            live = self._get_live(resource, name, namespace, obj, what)
            if live is None:
                raise StepError(f"{what}: it does not exist")
            self._check_owned(live, "scale", self._describe(obj, namespace))
            return self._scale(resource, live, obj, namespace)
        resource = self._resource(obj)
        namespace = self.default_namespace if resource.namespaced else None
        namespace = obj["metadata"].get("namespace") or namespace
        selector = format_labels(obj["selector"])
        found = self._call(
            obj,
            f"list {obj['kind']}s labelled {selector}",
            resource.get,
            namespace=namespace,
            label_selector=selector,
        )
        items = _plain(found).get("items") or []
        if not items:
            return f"no {obj['kind']} labelled {selector} in namespace {namespace}"
        for live in items:
            described = f"{obj['kind']} {live['metadata']['name']}"
            self._check_owned(live, "scale", f"{described} in namespace {namespace}")
        return "; ".join(self._scale(resource, live, obj, namespace) for live in items)

    def _scale(self, resource, live, obj, namespace):
        name = live["metadata"]["name"]
        described = self._describe({**obj, "metadata": {"name": name}}, namespace)
        what = f"scale {described}"
        replicas = obj["spec"]["replicas"]
        current = (live.get("spec") or {}).get("replicas", 1)
        body = {"spec": {"replicas": replicas}}
        if replicas == 0 and current:
            body.update(_annotation_patch(str(current)))
        elif replicas:
            body.update(_annotation_patch(None))
        self._patch(resource, name, namespace, obj, what, body)
        return f"scaled {described} from {current} to {replicas} replicas"

    def _step_wait(self, obj):
        wait = obj["wait"]
        condition = wait["for"]
        timeout = wait.get("timeout", DEFAULT_WAIT_TIMEOUT)
        try:
            resource, name, namespace = self._target(obj)
        except KindNotInstalled:
            if condition == "deleted":
                return f"{obj['kind']} {obj['apiVersion']} is not installed: gone"
            raise StepPending(
                f"{obj['kind']} {obj['apiVersion']} is not installed yet", timeout
            ) from None
        described = self._describe(obj, namespace)
        live = self._get_live(resource, name, namespace, obj, f"wait for {described}")
        failure = condition != "deleted" and _failure_of(live)
        if failure:
            # Waiting on would only end in a timeout: the object says it failed.
            raise StepError(f"{described} failed: {failure}")
        holds, status = _condition_holds(condition, wait, live)
        if not holds and _fields_hold(live, wait.get("fail_when")):
            # An operator's status says its run ended without success.
            raise StepError(f"{described} failed: {status}{_reported_error(live)}")
        if not holds:
            raise StepPending(f"{described}: {status}", timeout, condition=condition)
        return f"{described}: {status}"


def _live_key(obj, namespace, name):
    return (obj.get("apiVersion"), obj.get("kind"), namespace, name)


def _annotation_patch(value):
    return {"metadata": {"annotations": {PAUSED_REPLICAS_ANNOTATION: value}}}


def _scrubbed(error, obj):
    error.args = (scrub(str(error), obj),)
    return error


def _failure_of(live):
    """Why ``live`` reports that it failed for good, or None: a Job's
    ``Failed`` condition, a Deployment past its progress deadline, a
    VolumeSnapshot its controller could not take."""
    if not live:
        return None
    if live.get("kind") == "VolumeSnapshot" and _get_path(live, "status.error"):
        return _get_path(live, "status.error.message") or "the snapshot failed"
    conditions = (live.get("status") or {}).get("conditions") or []
    for condition in conditions:
        kind, status = condition.get("type"), condition.get("status")
        reason = condition.get("reason") or kind
        message = condition.get("message") or ""
        if live.get("kind") == "Job" and kind == "Failed" and status == "True":
            return f"{reason}: {message}".rstrip(": ")
        if (
            live.get("kind") == "Deployment"
            and kind == "Progressing"
            and status == "False"
            and reason == "ProgressDeadlineExceeded"
        ):
            return f"{reason}: {message}".rstrip(": ")
    return None


def _same(value, expected):
    return value == expected or (value is not None and str(value) == str(expected))


def _fields_hold(live, conditions):
    """Every ``path: value`` of ``conditions`` holds on ``live`` (none: False)."""
    if not live or not conditions:
        return False
    return all(
        _same(_get_path(live, path), value) for path, value in conditions.items()
    )


def _reported_error(live):
    """The message a VolumeSnapshot's controller left, if any."""
    message = _get_path(live or {}, "status.error.message")
    return f" ({message})" if message else ""


def _condition_holds(condition, wait, live):
    if condition == "exists":
        return live is not None, "exists" if live else "does not exist yet"
    if condition == "deleted":
        return live is None, "is gone" if live is None else "still exists"
    if live is None:
        return False, "does not exist yet"
    if condition == "rollout":
        return _rolled_out(live)
    value = _get_path(live, wait["path"])
    expected = wait["value"]
    unmatched = [
        f"{path} is {_get_path(live, path)!r} (waiting for {wanted!r})"
        for path, wanted in (wait.get("match") or {}).items()
        if not _same(_get_path(live, path), wanted)
    ]
    if unmatched:
        return False, "; ".join(unmatched)
    holds = _same(value, expected)
    return holds, f"{wait['path']} is {value!r} (waiting for {expected!r})"


def _rolled_out(live):
    spec = live.get("spec") or {}
    status = live.get("status") or {}
    wanted = spec.get("replicas", 1)
    generation = (live.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and (observed is None or observed < generation):
        return False, "rollout not observed yet"
    if live.get("kind") == "StatefulSet":
        ready = status.get("readyReplicas", 0) or 0
        updated = status.get("updatedReplicas", 0) or 0
        done = ready >= wanted and updated >= wanted
        return done, f"{ready}/{wanted} replicas ready"
    updated = status.get("updatedReplicas", 0) or 0
    available = status.get("availableReplicas", 0) or 0
    total = status.get("replicas", 0) or 0
    done = updated >= wanted and available >= wanted and total <= updated
    return done, f"{available}/{wanted} replicas available, {updated} updated"


LOG_TAIL_LINES = 200
MAX_EVENTS = 50


def read_status(client, api_version, kind, name, namespace):
    """The ``status`` of one object, read now ({} where it has none yet);
    None where there is no such object, or no such kind on the cluster.

    Raises ``StepError``/``TransientStepError``/``ClusterConnectionError`` as
    a step would."""
    what = f"read {kind} {name} in namespace {namespace}"
    try:
        resource = client.resources.get(api_version=api_version, kind=kind)
        return _plain(resource.get(name=name, namespace=namespace)).get("status") or {}
    except ResourceNotFoundError:
        return None
    except DynamicApiError as error:
        if error.status == 404:
            return None
        raise _api_error(error, what) from None
    except urllib3.exceptions.HTTPError as error:
        raise _unreachable("the cluster", error) from error


def read_logs(client, namespace, selector=None, tail_lines=LOG_TAIL_LINES):
    """What the pods of ``namespace`` (labelled ``selector``, if given)
    printed last (per container, init containers first) and its recent events,
    read now and never stored: {"pods": [...], "events": [...]}.

    Raises ``StepError``/``TransientStepError``/``ClusterConnectionError`` as
    a step would."""
    core = k8s_client.CoreV1Api(client.client)
    try:
        pods = core.list_namespaced_pod(
            namespace,
            label_selector=format_labels(selector) if selector else None,
            _request_timeout=REQUEST_TIMEOUT,
        ).items
        found = [_pod_logs(core, namespace, pod, tail_lines) for pod in pods]
        events = core.list_namespaced_event(
            namespace, _request_timeout=REQUEST_TIMEOUT
        ).items
    except urllib3.exceptions.HTTPError as error:
        raise _unreachable("the cluster", error) from error
    except k8s_client.ApiException as error:
        raise _api_error(error, f"read the logs in namespace {namespace}") from error
    return {"pods": found, "events": _recent_events(events)}


def _pod_logs(core, namespace, pod, tail_lines):
    spec = pod.spec
    names = [c.name for c in (spec.init_containers or [])]
    names += [c.name for c in spec.containers or []]
    containers = []
    for name in names:
        try:
            # Raw: the client would hand back the bytes' repr for text/plain.
            response = core.read_namespaced_pod_log(
                pod.metadata.name,
                namespace,
                container=name,
                tail_lines=tail_lines,
                _request_timeout=REQUEST_TIMEOUT,
                _preload_content=False,
            )
            text = response.data.decode("utf-8", errors="replace")
        except k8s_client.ApiException as error:
            # A container that never started has no log: say why, go on.
            text = f"(no log: {_status_message(error)})"
        containers.append({"name": name, "log": text or ""})
    return {
        "name": pod.metadata.name,
        "phase": (pod.status.phase if pod.status else None) or "Unknown",
        "containers": containers,
    }


def _recent_events(events):
    def when(event):
        moment = event.last_timestamp or event.event_time or event.first_timestamp
        return moment.isoformat() if moment else ""

    recent = sorted(events, key=when, reverse=True)[:MAX_EVENTS]
    return [
        {
            "time": when(event),
            "type": event.type or "",
            "reason": event.reason or "",
            "object": (
                f"{event.involved_object.kind}/{event.involved_object.name}"
                if event.involved_object
                else ""
            ),
            "message": event.message or "",
        }
        for event in recent
    ]
