"""A Kubernetes API server for Eyrie's tests: real HTTP, in-process, no cluster.

kmock's ``KubernetesEmulator`` keeps objects in memory and speaks the API over
HTTP; ``EyrieKubernetesEmulator`` fixes what the official ``kubernetes``
client and the dynamic client need from a real server (URL parsing, status
codes, server-filled metadata, patch types, selectors, discovery, namespaces)
and makes each request cost the same whatever came before it.
``EmulatedCluster`` serves it with ``kmock.Server`` from a thread of its own so
that synchronous code, Odoo tests included, can point an unmodified client at
``cluster.url`` or ``cluster.kubeconfig()``::

    with EmulatedCluster() as cluster:
        cluster.add_crd("postgres-operator.crunchydata.com", "v1beta1",
                        "PostgresCluster", "postgresclusters")
        api = cluster.api_client()
        ...  # the code under test talks HTTP to cluster.url
        cluster.set_status("apps/v1", "Deployment", "web", {...}, "ns")

The emulator is not a full API server: see ``EyrieKubernetesEmulator`` for
what it leaves out.
"""

import asyncio
import contextlib
import copy
import dataclasses
import datetime
import functools
import hashlib
import json
import logging
import os
import re
import sys
import tempfile
import threading
import urllib.parse
import uuid

import aiohttp.web
import attrs
import kmock
import yaml

_logger = logging.getLogger(__name__)

GIT_VERSION = "v1.30.0"

_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update")
_SUBRESOURCE_VERBS = ("get", "patch", "update")
_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}
# Metadata that only the server writes: whatever a client sends is ignored.
_SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
)
# ObjectMeta fields that real servers omit when empty (Go's omitempty).
_OMITTED_WHEN_EMPTY = ("labels", "annotations", "finalizers", "ownerReferences")
_BUILTIN_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")

MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """A served resource: what discovery lists and what URLs address."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True
    subresources: frozenset = frozenset({"status"})
    short_names: tuple = ()
    builtin: bool = True

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @functools.cached_property
    def ref(self):
        # kmock's key for the objects of this resource (``emulator.objects``).
        return kmock.resource(
            group=self.group, version=self.version, plural=self.plural
        )

    @property
    def qualified(self):
        """How real servers name the resource in messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


_STATUS_AND_SCALE = frozenset({"status", "scale"})
BUILTIN_TYPES = (
    ResourceType("", "v1", "Namespace", "namespaces", False, short_names=("ns",)),
    ResourceType("", "v1", "ConfigMap", "configmaps", True, frozenset(), ("cm",)),
    ResourceType("", "v1", "Secret", "secrets", True, frozenset()),
    ResourceType("", "v1", "Service", "services", short_names=("svc",)),
    ResourceType(
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        short_names=("pvc",),
    ),
    ResourceType(
        "", "v1", "ServiceAccount", "serviceaccounts", True, frozenset(), ("sa",)
    ),
    ResourceType("", "v1", "Pod", "pods", True, frozenset({"status", "log"}), ("po",)),
    ResourceType("", "v1", "Event", "events", True, frozenset(), ("ev",)),
    ResourceType(
        "apps", "v1", "Deployment", "deployments", True, _STATUS_AND_SCALE, ("deploy",)
    ),
    ResourceType(
        "apps", "v1", "StatefulSet", "statefulsets", True, _STATUS_AND_SCALE, ("sts",)
    ),
    ResourceType(
        "networking.k8s.io", "v1", "Ingress", "ingresses", short_names=("ing",)
    ),
    ResourceType("batch", "v1", "Job", "jobs"),
    ResourceType("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"),
)


def _error(code, message, reason=None, **details):
    # kmock's own error type, rendered here as a Kubernetes Status body.
    return kmock.KubernetesError(
        status=code,
        reason=reason or _REASONS.get(code, "Unknown"),
        message=message,
        details=details or None,
    )


def _status_body(code, message, reason, details=None):
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def _not_found(rtype, name):
    return _error(
        404,
        f'{rtype.qualified} "{name}" not found',
        name=name,
        group=rtype.group,
        kind=rtype.plural,
    )


def _no_such_resource():
    return _error(404, "the server could not find the requested resource")


def _conflict(rtype, name):
    return _error(
        409,
        f'Operation cannot be fulfilled on {rtype.qualified} "{name}": the object '
        "has been modified; please apply your changes to the latest version and "
        "try again",
        name=name,
        group=rtype.group,
        kind=rtype.plural,
    )


def _omit_empty(meta):
    for field in _OMITTED_WHEN_EMPTY:
        if field in meta and not meta[field]:
            del meta[field]


def _now():
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version_priority(version):
    # Kubernetes' order: GA before beta before alpha, higher numbers first.
    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (0, 0, 0, version)
    major, stage, minor = match.groups()
    rank = {"alpha": 1, "beta": 2}.get(stage, 3)
    return (rank, int(major), int(minor or 0), "")


# -- patches ---------------------------------------------------------------


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch; returns a new document."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _pointer(path):
    if path == "":
        return []
    if not path.startswith("/"):
        raise ValueError(f"invalid JSON pointer {path!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _resolve(doc, parts):
    for part in parts:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _json_add(doc, parts, value):
    if not parts:
        return value
    parent, last = _resolve(doc, parts[:-1]), parts[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise IndexError(f"index {last} out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError(f"cannot add to {type(parent).__name__}")
    return doc


def _json_remove(doc, parts):
    if not parts:
        raise ValueError("cannot remove the whole document")
    parent, last = _resolve(doc, parts[:-1]), parts[-1]
    if isinstance(parent, list):
        return parent.pop(int(last))
    return parent.pop(last)


def json_patch(doc, operations):
    """RFC 6902 JSON patch; raises ValueError when an operation cannot apply."""
    doc = copy.deepcopy(doc)
    try:
        if not isinstance(operations, list):
            raise TypeError("a JSON patch is a list of operations")
        for operation in operations:
            op, path = operation["op"], _pointer(operation["path"])
            if op == "test":
                if _resolve(doc, path) != operation.get("value"):
                    raise ValueError(f"test failed at {operation['path']}")
            elif op == "remove":
                _json_remove(doc, path)
            elif op in ("add", "replace"):
                if op == "replace":
                    _json_remove(doc, path)
                doc = _json_add(doc, path, copy.deepcopy(operation["value"]))
            elif op in ("move", "copy"):
                source = _pointer(operation["from"])
                value = copy.deepcopy(_resolve(doc, source))
                if op == "move":
                    _json_remove(doc, source)
                doc = _json_add(doc, path, value)
            else:
                raise ValueError(f"unknown operation {op!r}")
    except (KeyError, IndexError, TypeError) as error:
        raise ValueError(f"the patch does not apply: {error}") from error
    return doc


# The patchMergeKey of the list fields in the built-in types' schemas that
# the addon's manifests use; other lists are replaced whole, as for real.
_MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "resourceClaims": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "hostAliases": "ip",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
}
# Lists of scalars that strategic merge unions instead of replacing.
_SET_LISTS = frozenset({"finalizers"})


def _merge_key(field, items):
    if field == "ports":
        # Container ports merge on containerPort, Service ports on port.
        dicts = [item for item in items if isinstance(item, dict)]
        return "containerPort" if any("containerPort" in i for i in dicts) else "port"
    return _MERGE_KEYS.get(field)


def _keyed(items, key):
    return bool(items) and all(isinstance(item, dict) and key in item for item in items)


def _merge_list(current, patch, key):
    result = [copy.deepcopy(item) for item in current if isinstance(item, dict)]
    for item in patch:
        position = next(
            (i for i, old in enumerate(result) if old.get(key) == item.get(key)), None
        )
        if item.get("$patch") == "delete":
            if position is not None:
                del result[position]
        elif position is None:
            result.append(strategic_merge({}, item))
        else:
            result[position] = strategic_merge(result[position], item)
    return result


def strategic_merge(target, patch):
    """Strategic merge patch for built-in types, with the usual directives.

    Maps merge recursively (``null`` deletes), lists named in ``_MERGE_KEYS``
    merge item by item on their key, ``finalizers`` union, other lists are
    replaced. ``$patch: replace|delete`` and ``$deleteFromPrimitiveList`` are
    honoured; ``$setElementOrder`` and ``$retainKeys`` are ignored.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            result[field] = [v for v in result.get(field) or [] if v not in value]
        elif key.startswith("$"):
            continue
        elif value is None or (
            isinstance(value, dict) and value.get("$patch") == "delete"
        ):
            result.pop(key, None)
        elif isinstance(value, dict):
            result[key] = strategic_merge(result.get(key), value)
        elif isinstance(value, list) and key in _SET_LISTS:
            old = result.get(key) or []
            result[key] = old + [v for v in value if v not in old]
        elif isinstance(value, list) and _keyed(value, _merge_key(key, value)):
            old = result.get(key) if isinstance(result.get(key), list) else []
            result[key] = _merge_list(old, value, _merge_key(key, value))
        else:
            result[key] = copy.deepcopy(value)
    return result


_MISSING = object()


def _prune_applied(live, previous, applied, keyed):
    """Drop from ``live`` what a manager applied before but applies no longer.

    Server-side apply removes the fields that the applier owned and left out
    of its new configuration. Ownership is not tracked here: a field counts
    as still owned when its live value is still the one applied (a field that
    another writer changed since belongs to that writer, as for real).
    """
    for key, old in previous.items():
        if key not in live:
            continue
        new = applied.get(key, _MISSING) if isinstance(applied, dict) else _MISSING
        current = live[key]
        if isinstance(old, dict) and isinstance(current, dict):
            _prune_applied(current, old, new if isinstance(new, dict) else {}, keyed)
            if new is _MISSING and not current:
                del live[key]
        elif new is _MISSING:
            if current == old:
                del live[key]
        elif keyed and isinstance(old, list) and isinstance(new, list):
            live[key] = _prune_list(current, old, new, _merge_key(key, old + new))


def _prune_list(current, old, new, key):
    if not (key and _keyed(old, key) and isinstance(current, list)):
        return current
    old_items = {item[key]: item for item in old}
    new_items = {item.get(key): item for item in new if isinstance(item, dict)}
    result = []
    for item in current:
        previous = old_items.get(item.get(key)) if isinstance(item, dict) else None
        if previous is None:
            result.append(item)  # never applied by this manager
        elif item.get(key) in new_items:
            _prune_applied(item, previous, new_items[item.get(key)], keyed=True)
            result.append(item)
        elif item != previous:
            result.append(item)  # changed by another writer since: theirs now
    return result


# -- selectors ---------------------------------------------------------------

_LABEL_TERM = re.compile(
    r"\s*(?:!\s*(?P<absent>[\w./-]+)"
    r"|(?P<key>[\w./-]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[\w.-]*)"
    r"|\s+(?P<set>in|notin)\s*\((?P<values>[^)]*)\))?)\s*"
)


def _label_term(term):
    match = _LABEL_TERM.fullmatch(term)
    if not match:
        raise _error(400, f"unable to parse requirement: {term!r}")
    if match["absent"]:
        return lambda labels, key=match["absent"]: key not in labels
    key = match["key"]
    if match["op"]:
        value, equal = match["value"], match["op"] != "!="
        return lambda labels: (labels.get(key) == value) is equal
    if match["set"]:
        values = {v.strip() for v in match["values"].split(",")}
        inside = match["set"] == "in"
        return lambda labels: (labels.get(key, _MISSING) in values) is inside
    return lambda labels: key in labels


def label_matcher(selector):
    """A predicate on a labels dict for a labelSelector string."""
    terms = re.findall(r"(?:[^,(]|\([^)]*\))+", selector or "")
    checks = [_label_term(term) for term in terms if term.strip()]
    return lambda labels: all(check(labels) for check in checks)


def _field_value(obj, path):
    value = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def field_matcher(selector):
    """A predicate on an object for a fieldSelector string (any dotted path)."""
    checks = []
    for term in (selector or "").split(","):
        if not term.strip():
            continue
        match = re.fullmatch(r"\s*([\w.]+)\s*(==|=|!=)\s*(.*?)\s*", term)
        if not match:
            raise _error(400, f"invalid field selector: {term!r}")
        path, op, value = match.groups()
        checks.append((path, op != "!=", value))
    return lambda obj: all(
        (_field_value(obj, path) == value) is equal for path, equal, value in checks
    )


# -- the emulator ------------------------------------------------------------


@dataclasses.dataclass
class _Route:
    """What a request path addresses."""

    endpoint: str  # root, version, health, api, apis, group, resources, object
    group: str | None = None
    version: str | None = None
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None
    rtype: ResourceType | None = None


@dataclasses.dataclass
class _Failure:
    method: str
    path_contains: str
    status: int
    times: int | None
    message: str
    reason: str
    headers: dict


@dataclasses.dataclass(eq=False)
class _Watch:
    rtype: ResourceType
    namespace: str | None
    name: str | None
    labels: object
    fields: object
    queue: asyncio.Queue


@attrs.define(kw_only=True)
class EyrieKubernetesEmulator(kmock.KubernetesEmulator):
    """kmock's emulator with the behaviour of a real API server where it matters.

    The fixes over kmock 0.8's ``KubernetesEmulator``:

    * URLs are parsed per resource type: ``/api/v1/namespaces[/name]`` address
      Namespaces, ``/namespaces/<ns>/<plural>`` namespaced objects, and
      ``/version`` answers with or without its trailing slash.
    * Objects get what the server fills: apiVersion, kind, metadata.namespace,
      uid, resourceVersion (one counter, bumped by every change), generation
      (bumped by changes outside metadata and status), creationTimestamp.
      Creation answers 201, a duplicate 409 AlreadyExists, a missing object
      404, a stale resourceVersion 409 Conflict, all as Status bodies.
    * PUT (replace), PATCH as merge, JSON, strategic merge (built-in types
      only, like a real server) and server-side apply, which creates missing
      objects and drops fields its manager stopped applying.
    * status and scale subresources; status written to the main resource is
      ignored where a status subresource exists.
    * labelSelector and fieldSelector on list, watch and deletecollection.
    * Namespaces: objects need an existing, non-terminating namespace;
      deleting one deletes what it holds. Finalizers hold deletion.
    * Discovery lists exactly the built-in types and the CRDs added; unknown
      groups, versions and resources answer 404.
    * kmock's fallback reactions are not registered: matching them rescanned
      the whole request log on every request. Requests are routed directly,
      so each costs the same whatever came before. Reactions that a test adds
      with kmock's DSL (``emulator['get /x'] << 418``) still take precedence.

    Left out: authentication and authorization, admission, defaulting and
    schema validation, field ownership conflicts (``force`` is accepted and
    moot), pagination (``limit``/``continue``), watch history (a watch with a
    resourceVersion sees only later events), managedFields, garbage collection
    by ownerReferences, controllers (``set_status`` plays them).
    """

    git_version: str = GIT_VERSION

    _types: dict = attrs.field(factory=dict, init=False)
    # Requests are served on the server's loop while tests call the helpers
    # from their own thread: every read and write of the state holds this.
    _state_lock: threading.RLock = attrs.field(factory=threading.RLock, init=False)
    _revision: int = attrs.field(default=0, init=False)
    _served: int = attrs.field(default=0, init=False)
    _failures: list = attrs.field(factory=list, init=False)
    # Path -> seconds its requests wait before they are answered (delay()).
    _delays: dict = attrs.field(factory=dict, init=False)
    _applied: dict = attrs.field(factory=dict, init=False)
    _watches: list = attrs.field(factory=list, init=False)
    _loop: asyncio.AbstractEventLoop | None = attrs.field(default=None, init=False)
    _dry_run: bool = attrs.field(default=False, init=False)
    # (namespace, pod, container) -> what the container printed.
    _logs: dict = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self):
        # Not calling super(): it registers the fallback reactions this class
        # replaces with direct routing (see the class docstring).
        self.reset()

    # -- the helpers tests use (thread-safe) --------------------------------

    def reset(self):
        """Forget objects, CRDs, failures, requests; keep the built-ins."""
        with self._state_lock:
            self.objects.clear()
            self.resources.clear()
            self._types.clear()
            self._failures.clear()
            self._delays.clear()
            self._applied.clear()
            self._logs.clear()
            self._requests.clear()
            self._served = 0
            for rtype in BUILTIN_TYPES:
                self._register(rtype)
            namespaces = self._types["", "v1", "namespaces"]
            for name in _BUILTIN_NAMESPACES:
                self._create(namespaces, None, {"metadata": {"name": name}})

    def add_crd(
        self, group, version, kind, plural, namespaced=True, *, subresources=("status",)
    ):
        """Serve a custom resource, as if its CRD were installed."""
        rtype = ResourceType(
            group,
            version,
            kind,
            plural,
            namespaced,
            frozenset(subresources),
            builtin=False,
        )
        with self._state_lock:
            old = self._types.get((group, version, plural))
            if old != rtype:  # re-adding the same CRD keeps its objects
                self._register(rtype)

    def fail(
        self,
        method,
        path_contains,
        status,
        times=1,
        message=None,
        reason=None,
        headers=None,
    ):
        """Answer the next ``times`` matching requests (None: all) with an error.

        ``method`` is an HTTP method or ``"*"``; ``path_contains`` is looked
        for in the unquoted path and query. ``headers`` (e.g. Retry-After) are
        added to the response; none by default, so urllib3 does not retry.
        """
        reason = reason or _REASONS.get(status, "Unknown")
        with self._state_lock:
            self._failures.append(
                _Failure(
                    method.upper(),
                    path_contains,
                    status,
                    times,
                    message or f"injected failure: {status} {reason}",
                    reason,
                    dict(headers or {}),
                )
            )

    def delay(self, path, seconds):
        """Answer the requests of ``path`` (the whole path, without the
        query: a discovery path such as ``/apis`` or ``/api/v1``) ``seconds``
        late, until reset(); the other requests are not held up. 0 answers
        at once again."""
        with self._state_lock:
            self._delays[path.rstrip("/") or "/"] = seconds

    def request_count(self):
        """Requests served since the start or the last reset()."""
        return self._served

    def find_type(self, api_version, kind):
        group, _, version = api_version.rpartition("/")
        with self._state_lock:
            for rtype in self._types.values():
                if (rtype.group, rtype.version, rtype.kind) == (group, version, kind):
                    return rtype
        raise LookupError(f"{kind} {api_version} is not served")

    def get_object(self, api_version, kind, name, namespace=None):
        rtype = self.find_type(api_version, kind)
        if rtype.namespaced and not namespace:
            raise ValueError(f"{kind} is namespaced: a namespace is required")
        with self._state_lock:
            obj = self._stored(rtype, namespace if rtype.namespaced else None, name)
            return copy.deepcopy(obj)

    def list_objects(self, api_version=None, kind=None, namespace=None, labels=None):
        with self._state_lock:
            found = []
            for (_ref, ns, _name), versions in self.objects.items():
                if versions.deleted:
                    continue
                obj = versions.raw
                obj_labels = obj["metadata"].get("labels") or {}
                if (
                    (api_version is None or obj.get("apiVersion") == api_version)
                    and (kind is None or obj.get("kind") == kind)
                    and (namespace is None or ns == namespace)
                    and all(obj_labels.get(k) == v for k, v in (labels or {}).items())
                ):
                    found.append(obj)
            found.sort(key=lambda o: (o["apiVersion"], o["kind"], *self._sort_key(o)))
            return copy.deepcopy(found)

    def set_status(self, api_version, kind, name, status, namespace=None):
        """Replace an object's status, as its controller would."""
        rtype = self.find_type(api_version, kind)
        namespace = namespace if rtype.namespaced else None
        with self._state_lock:
            current = self._stored(rtype, namespace, name)
            if current is None:
                raise LookupError(f"{kind} {name} does not exist")
            new = copy.deepcopy(current)
            new["status"] = copy.deepcopy(status)
            self._commit(rtype, current, new)

    def end_watches(self):
        """Close the open watch streams (before the server stops)."""
        with self._state_lock:
            for watch in self._watches:
                self._loop.call_soon_threadsafe(watch.queue.put_nowait, None)

    # -- state --------------------------------------------------------------

    def _register(self, rtype):
        self._types[rtype.group, rtype.version, rtype.plural] = rtype
        self.resources[rtype.ref] = kmock.ResourceInfo(
            namespaced=rtype.namespaced,
            kind=rtype.kind,
            singular=rtype.kind.lower(),
            verbs=_VERBS + ("watch",),
            shortnames=rtype.short_names,
            subresources=rtype.subresources,
        )

    def _type_of(self, ref):
        return self._types.get((ref.group, ref.version, ref.plural))

    @staticmethod
    def _sort_key(obj):
        meta = obj["metadata"]
        return (meta.get("namespace") or "", meta["name"])

    def _stored(self, rtype, namespace, name):
        key = (rtype.ref, namespace, name)
        if key not in self.objects:
            return None
        versions = self.objects[key]
        return None if versions.deleted else versions.raw

    def _store(self, rtype, obj):
        meta = obj["metadata"]
        key = (rtype.ref, meta.get("namespace"), meta["name"])
        if key in self.objects:
            self.objects[key].history.append(obj)
        else:
            self.objects[key] = obj

    def _namespace_state(self, namespace):
        """None if it does not exist, else whether it is terminating."""
        obj = self._stored(self._types["", "v1", "namespaces"], None, namespace)
        return None if obj is None else bool(obj["metadata"].get("deletionTimestamp"))

    def _create(self, rtype, namespace, body):
        obj = copy.deepcopy(body)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise _error(400, "the body is not a Kubernetes object")
        self._check_type(rtype, obj)
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
        if not name:
            raise _error(
                422, "metadata.name: Required value: name or generateName is required"
            )
        if rtype.namespaced:
            self._check_namespace(rtype, meta.get("namespace"), namespace)
        if self._stored(rtype, namespace, name) is not None:
            raise _error(
                409,
                f'{rtype.qualified} "{name}" already exists',
                "AlreadyExists",
                name=name,
                group=rtype.group,
                kind=rtype.plural,
            )
        for field in _SERVER_METADATA:
            meta.pop(field, None)
        meta.pop("namespace", None)
        obj["apiVersion"], obj["kind"] = rtype.api_version, rtype.kind
        meta.update(
            name=name, uid=str(uuid.uuid4()), creationTimestamp=_now(), generation=1
        )
        if rtype.namespaced:
            meta["namespace"] = namespace
        _omit_empty(meta)
        if "status" in rtype.subresources:
            obj.pop("status", None)  # status is the controllers' to write
        if rtype.kind == "Namespace" and not rtype.group:
            obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        if self._dry_run:
            return obj
        self._revision += 1
        meta["resourceVersion"] = str(self._revision)
        self._store(rtype, obj)
        self._emit("ADDED", rtype, obj)
        return obj

    def _check_type(self, rtype, obj):
        for field, expected in (
            ("apiVersion", rtype.api_version),
            ("kind", rtype.kind),
        ):
            if obj.get(field) not in (None, "", expected):
                raise _error(
                    400,
                    f"the {field} in the data ({obj[field]}) does not match the "
                    f"expected {field} ({expected})",
                )

    def _check_namespace(self, rtype, body_namespace, namespace):
        if body_namespace and body_namespace != namespace:
            raise _error(
                400,
                "the namespace of the provided object does not match the namespace "
                "sent on the request",
            )
        terminating = self._namespace_state(namespace)
        if terminating is None:
            raise _error(
                404,
                f'namespaces "{namespace}" not found',
                name=namespace,
                kind="namespaces",
            )
        if terminating:
            raise _error(
                403,
                f"{rtype.plural} is forbidden: unable to create new content in "
                f"namespace {namespace} because it is being terminated",
            )

    def _sanitize(self, rtype, current, new, only_status=False):
        """A client's version of ``current``, with the server's fields restored."""
        if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
            raise _error(400, "the body is not a Kubernetes object")
        self._check_type(rtype, new)
        meta = current["metadata"]
        wanted = new.get("metadata", {}).get("resourceVersion")
        if wanted and wanted != meta["resourceVersion"]:
            raise _conflict(rtype, meta["name"])
        if only_status:
            result = copy.deepcopy(current)
            result.pop("status", None)
            if new.get("status") is not None:
                result["status"] = copy.deepcopy(new["status"])
            return result
        result = copy.deepcopy(new)
        result["apiVersion"], result["kind"] = rtype.api_version, rtype.kind
        result.setdefault("metadata", {})
        for field in ("name", "namespace", *_SERVER_METADATA):
            result["metadata"].pop(field, None)
            if field in meta:
                result["metadata"][field] = meta[field]
        if "status" in rtype.subresources:
            result.pop("status", None)
            if "status" in current:
                result["status"] = current["status"]
        return result

    def _commit(self, rtype, current, new):
        """Store ``new`` as the next version of ``current``; returns it."""
        _omit_empty(new["metadata"])
        if new == current:
            return current  # a no-op keeps the resourceVersion, as for real
        meta = new["metadata"]

        def spec(obj):
            return {k: v for k, v in obj.items() if k not in ("metadata", "status")}

        if spec(new) != spec(current):
            meta["generation"] = current["metadata"].get("generation", 0) + 1
        if self._dry_run:
            return new
        self._revision += 1
        meta["resourceVersion"] = str(self._revision)
        self._store(rtype, new)
        self._emit("MODIFIED", rtype, new)
        is_namespace = rtype.kind == "Namespace" and not rtype.group
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not is_namespace
        ):
            self._remove(rtype, new)
        return new

    def _remove(self, rtype, obj):
        meta = obj["metadata"]
        key = (rtype.ref, meta.get("namespace"), meta["name"])
        if self._dry_run:
            return obj
        self.objects[key].delete()
        self._applied.pop(key, None)
        self._emit("DELETED", rtype, obj)
        if meta.get("namespace"):
            self._finish_namespace(meta["namespace"])
        return obj

    def _delete(self, rtype, current, options):
        meta = current["metadata"]
        preconditions = (options or {}).get("preconditions") or {}
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) and preconditions[field] != meta.get(field):
                raise _conflict(rtype, meta["name"])
        if rtype.kind == "Namespace" and not rtype.group:
            return self._delete_namespace(rtype, current)
        if not meta.get("finalizers"):
            return self._remove(rtype, current)
        if meta.get("deletionTimestamp"):
            return current
        new = copy.deepcopy(current)
        new["metadata"].update(deletionTimestamp=_now(), deletionGracePeriodSeconds=0)
        return self._commit(rtype, current, new)

    def _delete_namespace(self, rtype, current):
        name = current["metadata"]["name"]
        if not current["metadata"].get("deletionTimestamp"):
            new = copy.deepcopy(current)
            new["metadata"]["deletionTimestamp"] = _now()
            new["status"] = {"phase": "Terminating"}
            current = self._commit(rtype, current, new)
        if self._dry_run:
            return current
        # The namespace controller's work, done at once.
        for (ref, ns, _name), versions in list(self.objects.items()):
            if ns == name and not versions.deleted:
                self._delete(self._type_of(ref), versions.raw, None)
        self._finish_namespace(name)
        return current

    def _finish_namespace(self, name):
        namespaces = self._types["", "v1", "namespaces"]
        obj = self._stored(namespaces, None, name)
        if not obj or not obj["metadata"].get("deletionTimestamp"):
            return
        if obj["metadata"].get("finalizers"):
            return
        if any(
            ns == name and not v.deleted for (_r, ns, _n), v in self.objects.items()
        ):
            return
        self._remove(namespaces, obj)

    def _emit(self, event, rtype, obj):
        for watch in self._watches:
            if self._watched(watch, rtype, obj):
                item = {"type": event, "object": obj}
                self._loop.call_soon_threadsafe(watch.queue.put_nowait, item)

    @staticmethod
    def _watched(watch, rtype, obj):
        meta = obj["metadata"]
        return (
            watch.rtype == rtype
            and (watch.namespace is None or meta.get("namespace") == watch.namespace)
            and (watch.name is None or meta["name"] == watch.name)
            and watch.labels(meta.get("labels") or {})
            and watch.fields(obj)
        )

    # -- HTTP ---------------------------------------------------------------

    async def __aenter__(self):
        self._loop = asyncio.get_running_loop()
        return await super().__aenter__()

    # Seconds every request takes before it is answered, as a managed API
    # server's round trip (benchmarks set it; the tests leave it at 0).
    LATENCY_SECONDS = 0.0

    async def __call__(self, raw_request):
        # Replaces kmock's entry point, whose path parser fails on
        # /api/v1/namespaces[/name] before any handler could fix it.
        if EyrieKubernetesEmulator.LATENCY_SECONDS:
            await asyncio.sleep(EyrieKubernetesEmulator.LATENCY_SECONDS)
        with self._state_lock:
            delay = self._delays.get(raw_request.path.rstrip("/") or "/")
        if delay:
            await asyncio.sleep(delay)
        body = await raw_request.read()
        self._loop = self._loop or asyncio.get_running_loop()
        try:
            with self._state_lock:
                self._served += 1
                route = self._route(raw_request.path)
                request = self._record(raw_request, body, route)
            if self._payloads:  # reactions added with kmock's DSL come first
                with contextlib.suppress(NotImplementedError):
                    return await kmock.RawHandler._handle(self, request)
            with self._state_lock:
                failure = self._take_failure(raw_request)
            if failure is not None:
                return self._failure_response(failure)
            query = raw_request.query
            watching = query.get("watch") in ("true", "1", "True")
            if route.endpoint == "object" and raw_request.method == "GET" and watching:
                return await self._serve_watch(raw_request, route, query)
            with self._state_lock:
                self._dry_run = "All" in query.getall("dryRun", ())
                try:
                    status, payload = self._serve(raw_request, route, body)
                finally:
                    self._dry_run = False
            if isinstance(payload, str):
                return aiohttp.web.Response(text=payload, status=status)
            return self._json(status, payload)
        except kmock.KubernetesError as error:
            body = _status_body(
                error.status, error.message, error.reason, error.details
            )
            return self._json(error.status, body)
        except Exception as error:  # the client must see it, not a dropped connection
            _logger.exception("the Kubernetes emulator failed on %s", raw_request.path)
            return self._json(500, _status_body(500, repr(error), "InternalError"))

    @staticmethod
    def _json(status, payload, headers=None):
        return aiohttp.web.Response(
            body=json.dumps(payload).encode(),
            status=status,
            headers=headers,
            content_type="application/json",
        )

    def _record(self, raw_request, body, route):
        """Log the request as kmock does, for assertions with its DSL."""
        method = raw_request.method
        if route.endpoint != "object":
            action = None
        elif method == "GET" and raw_request.query.get("watch") in ("true", "1"):
            action = kmock.action.WATCH
        elif method == "GET":
            action = kmock.action.FETCH if route.name else kmock.action.LIST
        elif method == "POST":
            action = kmock.action.CREATE
        elif method in ("PUT", "PATCH"):
            action = kmock.action.UPDATE
        else:
            action = kmock.action.DELETE if method == "DELETE" and route.name else None
        resource = route.rtype.ref if route.rtype else None
        if route.endpoint == "object" and resource is None:
            resource = kmock.resource(
                group=route.group, version=route.version, plural=route.plural
            )
        request = kmock.Request(
            id=len(self._requests),
            raw_request=raw_request,
            method=method,
            url=raw_request.url,
            params=dict(raw_request.query),
            headers=dict(raw_request.headers),
            body=body,
            text=body.decode("utf-8", "replace"),
            data=self._decode(body, raw_request.content_type, strict=False),
            action=action,
            resource=resource,
            namespace=route.namespace,
            name=route.name,
            subresource=route.subresource,
        )
        self._requests.append(request)
        return request

    def _take_failure(self, raw_request):
        if not self._failures:
            return None
        target = urllib.parse.unquote(raw_request.path_qs)
        for failure in self._failures:
            if (
                failure.method in ("*", raw_request.method)
                and failure.path_contains in target
            ):
                if failure.times is not None:
                    failure.times -= 1
                    if failure.times <= 0:
                        self._failures.remove(failure)
                return failure
        return None

    def _failure_response(self, failure):
        body = _status_body(failure.status, failure.message, failure.reason)
        return self._json(failure.status, body, failure.headers)

    @staticmethod
    def _decode(body, content_type, strict=True):
        if not body:
            return None
        try:
            if content_type == APPLY_PATCH:
                return yaml.safe_load(body)
            return json.loads(body)
        except (ValueError, yaml.YAMLError) as error:
            if strict:
                raise _error(400, f"the body could not be decoded: {error}") from error
            return None

    def _route(self, path):
        parts = [part for part in path.split("/") if part]
        if not parts:
            return _Route("root")
        if parts == ["version"]:
            return _Route("version")
        if len(parts) == 1 and parts[0] in ("healthz", "livez", "readyz"):
            return _Route("health")
        if parts in (["api"], ["apis"]):
            return _Route(parts[0])
        if parts[0] == "apis" and len(parts) == 2:
            return _Route("group", group=parts[1])
        if parts[0] == "api":
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            return _Route("unknown")
        if not rest:
            return _Route("resources", group, version)
        namespace = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            inner = self._types.get((group, version, rest[2]))
            if inner is not None and inner.namespaced:
                namespace, rest = rest[1], rest[2:]
        return _Route(
            "object",
            group,
            version,
            plural=rest[0],
            namespace=namespace,
            name=rest[1] if len(rest) > 1 else None,
            subresource="/".join(rest[2:]) or None,
            rtype=self._types.get((group, version, rest[0])),
        )

    def _serve(self, raw_request, route, body):
        if route.endpoint == "object":
            return self._serve_object(raw_request, route, body)
        if route.endpoint == "unknown":
            raise _no_such_resource()
        if raw_request.method != "GET":
            raise _error(
                405, f"{raw_request.method} is not allowed on {raw_request.path}"
            )
        if route.endpoint == "health":
            return 200, "ok"
        served = {
            "root": self._serve_root,
            "version": self._serve_version,
            "api": self._serve_api,
            "apis": self._serve_apis,
            "group": self._serve_group,
            "resources": self._serve_resources,
        }[route.endpoint]
        return 200, served(route)

    # -- discovery ----------------------------------------------------------

    def _group_versions(self):
        groups = {}
        for rtype in self._types.values():
            if rtype.group:
                groups.setdefault(rtype.group, set()).add(rtype.version)
        return {
            group: sorted(versions, key=_version_priority, reverse=True)
            for group, versions in sorted(groups.items())
        }

    @staticmethod
    def _group_body(group, versions):
        entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
        return {"name": group, "versions": entries, "preferredVersion": entries[0]}

    def _serve_root(self, route):
        paths = {
            "/api",
            "/api/v1",
            "/apis",
            "/version",
            "/healthz",
            "/livez",
            "/readyz",
        }
        for group, versions in self._group_versions().items():
            paths.add(f"/apis/{group}")
            paths.update(f"/apis/{group}/{version}" for version in versions)
        return {"paths": sorted(paths)}

    def _serve_version(self, route):
        major, minor = self.git_version.lstrip("v").split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.git_version,
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2024-04-17T17:27:03Z",
            "goVersion": "go1.22.2",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    def _serve_api(self, route):
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [
                {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
            ],
        }

    def _serve_apis(self, route):
        groups = self._group_versions().items()
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [self._group_body(group, versions) for group, versions in groups],
        }

    def _serve_group(self, route):
        versions = self._group_versions().get(route.group)
        if not versions:
            raise _no_such_resource()
        return {
            "kind": "APIGroup",
            "apiVersion": "v1",
            **self._group_body(route.group, versions),
        }

    def _serve_resources(self, route):
        listed = [
            rtype
            for rtype in self._types.values()
            if (rtype.group, rtype.version) == (route.group, route.version)
        ]
        if not listed:
            raise _no_such_resource()
        resources = []
        for rtype in sorted(listed, key=lambda rtype: rtype.plural):
            resources.append(
                {
                    "name": rtype.plural,
                    "singularName": rtype.kind.lower(),
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": [*_VERBS, "watch"],
                    **(
                        {"shortNames": list(rtype.short_names)}
                        if rtype.short_names
                        else {}
                    ),
                }
            )
            for sub in sorted(rtype.subresources):
                entry = {
                    "name": f"{rtype.plural}/{sub}",
                    "singularName": "",
                    "namespaced": rtype.namespaced,
                    "kind": rtype.kind,
                    "verbs": list(_SUBRESOURCE_VERBS),
                }
                if sub == "scale":
                    entry.update(group="autoscaling", version="v1", kind="Scale")
                resources.append(entry)
        return {
            "kind": "APIResourceList",
            "apiVersion": "v1",
            "groupVersion": f"{route.group}/{route.version}".lstrip("/"),
            "resources": resources,
        }

    # -- objects ------------------------------------------------------------

    def _serve_object(self, raw_request, route, body):
        rtype, method = route.rtype, raw_request.method
        if rtype is None:
            raise _no_such_resource()
        if route.name is None:
            return self._serve_collection(raw_request, route, body)
        if rtype.namespaced and route.namespace is None:
            raise _no_such_resource()
        sub = route.subresource
        if sub is not None and sub not in rtype.subresources:
            raise _no_such_resource()
        if (
            method == "PATCH"
            and raw_request.content_type == APPLY_PATCH
            and sub is None
        ):
            return self._apply(raw_request, route, body)
        current = self._stored(rtype, route.namespace, route.name)
        if current is None:
            raise _not_found(rtype, route.name)
        if method == "DELETE" and sub is None:
            return 200, self._delete(rtype, current, self._decode(body, None))
        if method not in ("GET", "PUT", "PATCH"):
            raise _error(405, f"{method} is not allowed on {raw_request.path}")
        if sub == "scale":
            return self._serve_scale(raw_request, rtype, current, body)
        if sub == "log":
            return self._serve_log(raw_request, current)
        if method == "GET":
            return 200, current
        if method == "PUT":
            new = self._decode(body, None)
            meta = new.get("metadata") if isinstance(new, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else None
            if name != route.name:
                raise _error(
                    400,
                    f"the name of the object ({name}) does not match the name on "
                    f"the URL ({route.name})",
                )
        else:
            new = self._patched(raw_request, rtype.builtin, current, body)
        new = self._sanitize(rtype, current, new, only_status=sub == "status")
        return 200, self._commit(rtype, current, new)

    def _serve_log(self, raw_request, pod):
        """GET pods/<name>/log: what ``set_logs`` says the container printed,
        the last ``tailLines`` lines; a pod of several containers needs
        ``container``, as on a real server."""
        if raw_request.method != "GET":
            raise _error(405, f"{raw_request.method} is not allowed on logs")
        meta = pod["metadata"]
        spec = pod.get("spec") or {}
        containers = [
            c["name"]
            for c in (spec.get("initContainers") or []) + (spec.get("containers") or [])
        ]
        container = raw_request.query.get("container")
        if not container:
            if len(spec.get("containers") or []) != 1:
                raise _error(
                    400,
                    f"a container name must be specified for pod {meta['name']}, "
                    f"choose one of: {containers}",
                    "BadRequest",
                )
            container = spec["containers"][0]["name"]
        if container not in containers:
            raise _error(
                400,
                f"container {container} is not valid for pod {meta['name']}",
                "BadRequest",
            )
        lines = self._logs.get((meta["namespace"], meta["name"], container), "")
        lines = lines.splitlines()
        tail = raw_request.query.get("tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) else []
        return 200, "".join(f"{line}\n" for line in lines)

    def set_logs(self, namespace, pod, container, text):
        with self._state_lock:
            self._logs[namespace, pod, container] = text

    def _patched(self, raw_request, builtin, current, body):
        """``current`` patched as the request says (apply: a subresource's)."""
        content_type = raw_request.content_type
        patch = self._decode(body, content_type)
        try:
            if content_type == MERGE_PATCH:
                return merge_patch(current, patch)
            if content_type == JSON_PATCH:
                return json_patch(current, patch)
        except ValueError as error:
            raise _error(422, str(error)) from error
        if content_type == STRATEGIC_MERGE_PATCH and builtin:
            return strategic_merge(current, patch)
        if content_type == APPLY_PATCH:
            return (strategic_merge if builtin else merge_patch)(current, patch)
        accepted = [JSON_PATCH, MERGE_PATCH, APPLY_PATCH]
        if builtin:
            accepted.insert(2, STRATEGIC_MERGE_PATCH)
        raise _error(
            415,
            "the body of the request was in an unknown format - accepted media "
            f"types include: {', '.join(accepted)}",
        )

    def _apply(self, raw_request, route, body):
        rtype, manager = route.rtype, raw_request.query.get("fieldManager")
        if not manager:
            raise _error(400, "PATCH, fieldManager is required for apply requests")
        config = self._decode(body, APPLY_PATCH)
        if (
            not isinstance(config, dict)
            or not config.get("apiVersion")
            or not config.get("kind")
        ):
            raise _error(400, "apply configurations must set apiVersion and kind")
        if (config.get("metadata") or {}).get("name") != route.name:
            raise _error(400, "the name in the configuration does not match the URL")
        key = (rtype.ref, route.namespace, route.name)
        applied = copy.deepcopy(config)
        if "status" in rtype.subresources:
            applied.pop("status", None)
        current = self._stored(rtype, route.namespace, route.name)
        if current is None:
            obj = self._create(rtype, route.namespace, config)
            if not self._dry_run:
                self._applied[key] = {manager: applied}
            return 201, obj
        live = copy.deepcopy(current)
        previous = self._applied.get(key, {}).get(manager)
        if previous:
            _prune_applied(live, previous, applied, keyed=rtype.builtin)
        # Without schemas, custom resources' lists are atomic (the default).
        merge = strategic_merge if rtype.builtin else merge_patch
        new = self._sanitize(rtype, current, merge(live, applied))
        result = self._commit(rtype, current, new)
        if not self._dry_run:
            self._applied.setdefault(key, {})[manager] = applied
        return 200, result

    def _serve_scale(self, raw_request, rtype, current, body):
        scale = self._scale(current)
        if raw_request.method == "GET":
            return 200, scale
        if raw_request.method == "PUT":
            wanted = self._decode(body, None)
        else:
            wanted = self._patched(raw_request, True, scale, body)
        spec = wanted.get("spec") if isinstance(wanted, dict) else None
        replicas = spec.get("replicas") if isinstance(spec, dict) else None
        if not isinstance(replicas, int) or replicas < 0:
            raise _error(
                422, "spec.replicas: Invalid value: must be a non-negative integer"
            )
        new = copy.deepcopy(current)
        new.setdefault("spec", {})["replicas"] = replicas
        return 200, self._scale(self._commit(rtype, current, new))

    @staticmethod
    def _scale(obj):
        meta, spec = obj["metadata"], obj.get("spec") or {}
        labels = (spec.get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: meta[k]
                for k in (
                    "name",
                    "namespace",
                    "uid",
                    "resourceVersion",
                    "creationTimestamp",
                )
                if k in meta
            },
            "spec": {"replicas": spec.get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(f"{k}={v}" for k, v in labels.items()),
            },
        }

    def _serve_collection(self, raw_request, route, body):
        rtype, method = route.rtype, raw_request.method
        if route.subresource is not None:
            raise _no_such_resource()
        if method == "POST":
            if rtype.namespaced and route.namespace is None:
                raise _error(405, f"POST is not allowed on {raw_request.path}")
            return 201, self._create(rtype, route.namespace, self._decode(body, None))
        if method not in ("GET", "DELETE"):
            raise _error(405, f"{method} is not allowed on {raw_request.path}")
        items = self._select(rtype, route.namespace, raw_request.query)
        if method == "DELETE":
            items = [self._delete(rtype, item, None) for item in items]
        return 200, {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(self._revision)},
            "items": items,
        }

    def _select(self, rtype, namespace, query):
        labels = label_matcher(query.get("labelSelector"))
        fields = field_matcher(query.get("fieldSelector"))
        items = []
        for (ref, ns, _name), versions in self.objects.items():
            if ref != rtype.ref or versions.deleted:
                continue
            if namespace is not None and ns != namespace:
                continue
            obj = versions.raw
            if labels(obj["metadata"].get("labels") or {}) and fields(obj):
                items.append(obj)
        items.sort(key=self._sort_key)
        return items

    async def _serve_watch(self, raw_request, route, query):
        with self._state_lock:
            rtype = route.rtype
            if (
                rtype is None
                or route.subresource
                or (rtype.namespaced and route.name and not route.namespace)
            ):
                raise _no_such_resource()
            watch = _Watch(
                rtype,
                route.namespace,
                route.name,
                label_matcher(query.get("labelSelector")),
                field_matcher(query.get("fieldSelector")),
                asyncio.Queue(),
            )
            # No history is kept: "0" or nothing means "the current state first".
            initial = []
            if query.get("resourceVersion", "0") == "0":
                initial = [
                    obj
                    for obj in self._select(rtype, route.namespace, query)
                    if route.name is None or obj["metadata"]["name"] == route.name
                ]
            self._watches.append(watch)
        response = aiohttp.web.StreamResponse(
            headers={"Content-Type": "application/json"}
        )
        try:
            await response.prepare(raw_request)
            for obj in initial:
                await response.write(
                    json.dumps({"type": "ADDED", "object": obj}).encode() + b"\n"
                )
            timeout = (
                float(query["timeoutSeconds"]) if "timeoutSeconds" in query else None
            )
            async with asyncio.timeout(timeout):
                while (event := await watch.queue.get()) is not None:
                    await response.write(json.dumps(event).encode() + b"\n")
        except (TimeoutError, ConnectionResetError):
            _logger.debug("watch ended: time is up, or the client has gone")
        finally:
            with self._state_lock:
                self._watches.remove(watch)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


# -- the server thread -------------------------------------------------------

# kmock.Server swaps aiohttp's resolver class-wide and insists on getting it
# back in LIFO order; starts and stops of clusters in different threads would
# interleave. Nothing here resolves names (clients dial 127.0.0.1), so the
# swap is undone at once, under this lock.
_SERVER_START_LOCK = threading.Lock()


class _Server(kmock.Server):
    async def __aenter__(self):
        server = await super().__aenter__()
        await self._managed_interceptor.__aexit__(None, None, None)
        self._managed_interceptor = contextlib.nullcontext()
        return server


# Eyrie's cache of clients, once loaded (by the tests and the benchmarks).
_EYRIE_CLIENTS = "odoo.addons.eyrie_deployment.tools.kubernetes_executor"


def _forget_discovery_cache(url):
    # The library's dynamic client caches discovery in a temp file named
    # after the host: a later cluster on a reused port, or after reset(),
    # must not inherit it.
    digest = hashlib.md5(url.encode(), usedforsecurity=False).hexdigest()
    with contextlib.suppress(OSError):
        os.remove(os.path.join(tempfile.gettempdir(), f"osrcp-{digest}.json"))
    # Eyrie's clients keep it in memory and, after a lookup that found
    # nothing, ask again at most every few seconds: the next test must not
    # wait to see the kinds this one serves. Dropped as when a cluster's
    # configuration changes.
    executor = sys.modules.get(_EYRIE_CLIENTS)
    if executor is not None:
        with executor._clients_lock:
            clients = executor._clients.items()
            stale = {
                cluster
                for (cluster, _config), client in clients
                if client.configuration.host == url
            }
        for cluster in stale:
            executor.forget_clients(cluster)


PGO_ANNOTATIONS = "postgres-operator.crunchydata.com/"


def _pgbackrest_status(cluster, fail):
    """PGO's status.pgbackrest once the Jobs of the cluster's backup and
    restore annotations ended (a restore only while spec asks for one)."""
    status = dict((cluster.get("status") or {}).get("pgbackrest") or {})
    annotations = cluster["metadata"].get("annotations") or {}
    outcome = {"finished": True, "succeeded": 0 if fail else 1, "failed": int(fail)}
    backup = annotations.get(PGO_ANNOTATIONS + "pgbackrest-backup")
    if backup:
        status["manualBackup"] = {"id": backup, **outcome}
    restore = annotations.get(PGO_ANNOTATIONS + "pgbackrest-restore")
    pgbackrest = ((cluster["spec"].get("backups") or {}).get("pgbackrest")) or {}
    if restore and (pgbackrest.get("restore") or {}).get("enabled"):
        status["restore"] = {"id": restore, **outcome}
    return status


class EmulatedCluster:
    """An ``EyrieKubernetesEmulator`` on a real port, served from a thread.

    Start with ``EmulatedCluster()`` or ``with EmulatedCluster() as cluster``;
    ``stop()`` stops the server and its thread. All methods are thread-safe.
    """

    def __init__(self, *, git_version=GIT_VERSION):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="kube-emulator", daemon=True
        )
        self._stack = contextlib.AsyncExitStack()
        self._stopped = False
        self._thread.start()
        try:
            with _SERVER_START_LOCK:
                self.emulator, server = self._call(self._start(git_version))
        except BaseException:
            self._stop_loop()
            raise
        self.url = f"http://{server.host}:{server.port}"
        _forget_discovery_cache(self.url)

    async def _start(self, git_version):
        emulator = EyrieKubernetesEmulator(git_version=git_version)
        await self._stack.enter_async_context(emulator)
        server = await self._stack.enter_async_context(_Server(emulator))
        return emulator, server

    def _call(self, coroutine, timeout=30):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def _stop_loop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        if not self._thread.is_alive():
            self._loop.close()

    def stop(self):
        if self._stopped:
            return
        self._stopped = True
        try:
            self.emulator.end_watches()
            self._call(self._stack.aclose())
        finally:
            self._stop_loop()
            _forget_discovery_cache(self.url)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.stop()

    def kubeconfig(self, token="eyrie-test-token", context="emulator"):
        """A kubeconfig (YAML) whose current context is this cluster."""
        return yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "preferences": {},
                "clusters": [{"name": context, "cluster": {"server": self.url}}],
                "users": [{"name": context, "user": {"token": token}}],
                "contexts": [
                    {"name": context, "context": {"cluster": context, "user": context}}
                ],
                "current-context": context,
            },
            sort_keys=False,
        )

    def api_client(self, token="eyrie-test-token"):
        """A ``kubernetes.client.ApiClient`` built from ``kubeconfig()``."""
        from kubernetes import config  # only the callers need the client

        return config.new_client_from_config_dict(
            yaml.safe_load(self.kubeconfig(token)), persist_config=False
        )

    def add_crd(
        self, group, version, kind, plural, namespaced=True, *, subresources=("status",)
    ):
        self.emulator.add_crd(
            group, version, kind, plural, namespaced, subresources=subresources
        )
        _forget_discovery_cache(self.url)

    def get(self, api_version, kind, name, namespace=None):
        """The object as the server holds it, or None."""
        return self.emulator.get_object(api_version, kind, name, namespace)

    def list(self, api_version=None, kind=None, namespace=None, labels=None):
        """Objects of any kind, filtered; ``labels`` is a dict to match."""
        return self.emulator.list_objects(api_version, kind, namespace, labels)

    def set_status(self, api_version, kind, name, status, namespace=None):
        self.emulator.set_status(api_version, kind, name, status, namespace)

    def set_logs(self, namespace, pod, container, text):
        """What container ``container`` of pod ``pod`` printed (its log)."""
        self.emulator.set_logs(namespace, pod, container, text)

    def seed_operator_crds(self):
        """The CRDs of the shipped books: PGO's PostgresCluster and
        ExternalDNS's DNSEndpoint."""
        self.add_crd(
            "postgres-operator.crunchydata.com",
            "v1beta1",
            "PostgresCluster",
            "postgresclusters",
        )
        self.add_crd("externaldns.k8s.io", "v1alpha1", "DNSEndpoint", "dnsendpoints")
        self.add_crd(
            "snapshot.storage.k8s.io", "v1", "VolumeSnapshot", "volumesnapshots"
        )

    def play_operators(self, backups_fail=False):
        """Report what the controllers of a real cluster would: PGO's
        instances ready unless shut down, its manual backup and in-place
        restore of the current annotations finished (failed with
        ``backups_fail``), every VolumeSnapshot ready (or in error), every
        Deployment rolled out, every Job succeeded."""
        pgo = "postgres-operator.crunchydata.com/v1beta1"
        for cluster in self.list(pgo, "PostgresCluster"):
            meta, spec = cluster["metadata"], cluster["spec"]
            ready = 0 if spec.get("shutdown") else spec["instances"][0]["replicas"]
            status = {"instances": [{"name": "instance1", "readyReplicas": ready}]}
            status["pgbackrest"] = _pgbackrest_status(cluster, backups_fail)
            self.set_status(
                pgo,
                "PostgresCluster",
                meta["name"],
                status,
                namespace=meta["namespace"],
            )
            if not backups_fail:
                self._play_manual_backup_job(cluster)
        for snapshot in self.list("snapshot.storage.k8s.io/v1", "VolumeSnapshot"):
            outcome = (
                {"readyToUse": False, "error": {"message": "the disk is full"}}
                if backups_fail
                else {"readyToUse": True, "restoreSize": "10Gi"}
            )
            self.set_status(
                "snapshot.storage.k8s.io/v1",
                "VolumeSnapshot",
                snapshot["metadata"]["name"],
                outcome,
                namespace=snapshot["metadata"]["namespace"],
            )
        for workload in self.list("apps/v1", "Deployment"):
            meta = workload["metadata"]
            replicas = workload["spec"].get("replicas", 1)
            self.set_status(
                "apps/v1",
                "Deployment",
                meta["name"],
                {
                    "observedGeneration": meta.get("generation", 1),
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "availableReplicas": replicas,
                },
                namespace=meta["namespace"],
            )
        for job in self.list("batch/v1", "Job"):
            self.set_status(
                "batch/v1",
                "Job",
                job["metadata"]["name"],
                {"succeeded": 1},
                namespace=job["metadata"]["namespace"],
            )

    def _play_manual_backup_job(self, cluster):
        """The pod of PGO's manual backup Job of the cluster's current
        annotation, whose log holds the label pgBackRest printed (with the
        manual options' --log-level-console=info) as a real one does."""
        meta = cluster["metadata"]
        backup = (meta.get("annotations") or {}).get(
            PGO_ANNOTATIONS + "pgbackrest-backup"
        )
        manual = ((cluster["spec"].get("backups") or {}).get("pgbackrest") or {}).get(
            "manual"
        ) or {}
        if not backup or "--log-level-console=info" not in (
            manual.get("options") or []
        ):
            return
        namespace, name = meta["namespace"], f"{meta['name']}-backup-{backup}"
        if self.get("v1", "Pod", name, namespace=namespace):
            return
        from kubernetes import client  # only the callers need the client

        client.CoreV1Api(self.api_client()).create_namespaced_pod(
            namespace,
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        PGO_ANNOTATIONS + "cluster": meta["name"],
                        PGO_ANNOTATIONS + "pgbackrest-backup": "manual",
                    },
                },
                "spec": {"containers": [{"name": "pgbackrest", "image": "pgo"}]},
            },
        )
        label = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%SF")
        self.set_logs(
            namespace,
            name,
            "pgbackrest",
            f"{label[:8]} P00   INFO: backup command begin\n"
            f"P00   INFO: new backup label = {label}\n"
            "P00   INFO: backup command end: completed successfully\n",
        )

    def fail(
        self,
        method,
        path_contains,
        status,
        times=1,
        message=None,
        reason=None,
        headers=None,
    ):
        self.emulator.fail(
            method, path_contains, status, times, message, reason, headers
        )

    def delay(self, path, seconds):
        self.emulator.delay(path, seconds)

    def request_count(self):
        return self.emulator.request_count()

    def reset(self):
        self.emulator.reset()
        _forget_discovery_cache(self.url)
