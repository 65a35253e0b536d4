"""The tenancy boundary of a book: what its rendered objects may touch.

A job checks the whole rendered book before its first call to the cluster
(``check_book``), so that a book, or a value that slipped into it, can never
reach beyond its deployment:

- every kind must be in the cluster's allowlist (``allowed_kinds``);
- the only cluster-scoped object allowed is the deployment's own Namespace;
- every namespaced object is in the deployment's namespace, except the few
  objects its type declares elsewhere (``foreign``: the shared-database
  ``dropdb`` Job in the PostgreSQL deployment's namespace).

Ownership of live objects (their ``eyrie.io/deployment`` label) is checked by
the executor at each call, on what the cluster holds.
"""

from .executor import CLUSTER_SCOPED_KINDS

# The kinds the shipped books use: the default allowlist of a cluster.
DEFAULT_ALLOWED_KINDS = (
    "Namespace",
    "Secret",
    "ConfigMap",
    "PersistentVolumeClaim",
    "Service",
    "apps/Deployment",
    "batch/Job",
    "networking.k8s.io/Ingress",
    "gateway.networking.k8s.io/HTTPRoute",
    "gateway.networking.k8s.io/ReferenceGrant",
    "postgres-operator.crunchydata.com/PostgresCluster",
    "externaldns.k8s.io/DNSEndpoint",
    "snapshot.storage.k8s.io/VolumeSnapshot",
)
# A scale step may leave out apiVersion: its kinds are apps/v1 ones.
_DEFAULT_API_VERSIONS = {"scale": "apps/v1"}


class ConfinementError(Exception):
    """A rendered object is outside the deployment's boundary."""


def parse_allowed_kinds(text):
    """The set of ``group/Kind`` (``Kind`` for the core group) in ``text``,
    one per line; raises ``ValueError`` for a malformed line."""
    kinds = set()
    for raw in (text or "").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        group, _slash, kind = line.rpartition("/")
        if not kind[:1].isupper() or not kind.isalnum() or " " in group:
            raise ValueError(
                f"'{line}' is not a kind: write one per line as group/Kind, such as "
                "apps/Deployment, or Kind alone for the core group, such as Secret"
            )
        kinds.add(line)
    if not kinds:
        raise ValueError("list at least one kind, such as Namespace")
    return frozenset(kinds)


def kind_ref(obj, step_kind=None):
    """``apps/Deployment``, ``Secret``: an object's kind as the allowlist
    names it (API group and kind, no version)."""
    api_version = obj.get("apiVersion") or _DEFAULT_API_VERSIONS.get(step_kind, "")
    group = api_version.rpartition("/")[0] if "/" in str(api_version) else ""
    return f"{group}/{obj.get('kind')}" if group else str(obj.get("kind"))


def _describe(obj, namespace):
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    text = f"{obj.get('kind')} {name}" if name else f"{obj.get('kind')}s selected"
    return f"{text} in namespace {namespace}" if namespace else text


def check_book(steps, namespace, allowed_kinds, foreign=frozenset()):
    """Raise ``ConfinementError`` for the first object outside the boundary.

    ``steps``: (label, step kind, rendered objects) for every step of the
    book; ``foreign``: the (namespace, group/Kind, name) the deployment's type
    declares outside its namespace."""
    for label, step_kind, objects in steps:
        for index, obj in enumerate(objects, start=1):
            problem = _problem(obj, step_kind, namespace, allowed_kinds, foreign)
            if problem:
                raise ConfinementError(
                    f"{label}, object {index} refused before anything ran: {problem}"
                )


def _problem(obj, step_kind, namespace, allowed_kinds, foreign):
    ref = kind_ref(obj, step_kind)
    metadata = obj.get("metadata") or {}
    name = metadata.get("name")
    if ref not in allowed_kinds:
        return (
            f"kind {ref} is not allowed on this cluster (allowed: "
            f"{', '.join(sorted(allowed_kinds))}); a manager can add it to the "
            "cluster's Allowed Kinds"
        )
    if obj.get("kind") in CLUSTER_SCOPED_KINDS:
        if obj.get("kind") == "Namespace" and name == namespace:
            return None
        return (
            f"{_describe(obj, None)} is cluster-wide; the only cluster-wide object "
            f"a deployment may touch is its own Namespace {namespace}"
        )
    target = metadata.get("namespace") or namespace
    if target == namespace or (target, ref, name) in foreign:
        return None
    return (
        f"{_describe(obj, target)} is outside the deployment's namespace "
        f"{namespace}; a deployment's objects stay in its own namespace"
    )
