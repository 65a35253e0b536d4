"""Kubernetes discovery for Eyrie's dynamic clients: in memory, thread-safe.

The dynamic client asks its discoverer which URL serves a kind. The client
library's ``LazyDiscoverer`` is not fit for queue_job's threads: its
``invalidate_cache()`` replaces the dict that other threads are reading
(``KeyError: 'resources'``, ``KeyError: 'api'``), and it keeps discovery in
``<tmp>/osrcp-<md5 of the API URL>.json``, a file that every process of the
host reads and writes without a lock, and that any local account could write
first to tell Eyrie where to send a kind, with the cluster's token.

``Discoverer`` asks the same endpoints as the library (``/version``,
``/apis``, then ``/api/v1`` and ``/apis/<group>/<version>`` lazily, when a
lookup first needs them) and builds the library's own ``Resource`` and
``ResourceList``, but keeps them in memory only, in a snapshot that threads
read without a lock. A refresh builds a new snapshot aside and swaps it in:
a lookup under way keeps reading the one it started with.
"""

import concurrent.futures
import threading
import time

from kubernetes.dynamic.exceptions import (
    NotFoundError,
    ResourceNotFoundError,
    ResourceNotUniqueError,
)
from kubernetes.dynamic.resource import Resource, ResourceList

# After a lookup that found nothing, discovery is asked again (a CRD
# installed since), but at most once per this many seconds per client: a
# book that names a kind the cluster does not serve (a delete of an optional
# CRD's object, a status read) must not rediscover the whole cluster on
# every call. ``invalidate_cache()``, which callers use when a kind that
# discovery lists answered 404, refreshes at once.
REFRESH_INTERVAL = 5

# What a resource entry of discovery names and ``Resource`` sets itself.
_RESOURCE_OWN_KEYS = ("prefix", "group", "api_version", "client", "preferred")


class SingleFlight:
    """Calls shared by the threads that make them at the same time: while
    one thread runs the call for a key, the others asking for that key wait
    and get its result, or its error, instead of sending the same requests."""

    def __init__(self):
        self._lock = threading.Lock()
        self._calls = {}

    def run(self, key, function):
        with self._lock:
            call = self._calls.get(key)
            leader = call is None
            if leader:
                call = self._calls[key] = concurrent.futures.Future()
        if leader:
            try:
                call.set_result(function())
            except BaseException as error:  # noqa: BLE001 - raised below, by all
                call.set_exception(error)
            finally:
                with self._lock:
                    del self._calls[key]
        return call.result()


class _Snapshot:
    """One discovery of the cluster. Published whole and never changed
    after, but for the resources of a group version added on first use (a
    dict insert, which readers see either done or not at all)."""

    def __init__(self, client, version, group_versions):
        self.taken_at = time.monotonic()
        self.version = version
        # (prefix, group, version) -> preferred version of its group?
        self.group_versions = group_versions
        # (prefix, group, version) -> {kind: [Resource or ResourceList]}
        self.resources = {("apis", "", "v1"): {"List": [ResourceList(client)]}}
        self.fetches = SingleFlight()


def _as_json(_client, data):
    return data


class Discoverer:
    """What ``DynamicClient(api_client, discoverer=Discoverer)`` finds kinds
    with: ``get``, ``search``, ``version``, ``api_groups``,
    ``invalidate_cache`` and iteration, as the library's discoverers, with
    the library's exceptions."""

    def __init__(self, client, cache_file=None):
        # ``cache_file`` is what DynamicClient passes: discovery is never
        # stored in a file, whatever it says.
        self.client = client
        self._lock = threading.Lock()
        self._refreshes = SingleFlight()
        # Discovered at once, as the library does: a cluster that cannot be
        # reached fails where the client is made.
        self._snapshot = self._discover()

    # -- the library's interface ----------------------------------------

    @property
    def version(self):
        return self._snapshot.version

    @property
    def api_groups(self):
        groups = self._snapshot.group_versions
        return sorted({group for prefix, group, _version in groups if prefix == "apis"})

    def invalidate_cache(self):
        """Discover again now: a kind that discovery lists answered 404 (its
        CRD removed). Threads that invalidate at once share one discovery."""
        self._refresh(self._snapshot, forced=True)

    def search(self, **kwargs):
        """The resources that match (``prefix``, ``group``, ``api_version``,
        ``kind``, and any attribute of ``Resource``). Nothing found: discovery
        is asked again, at most every ``REFRESH_INTERVAL`` seconds."""
        snapshot = self._snapshot
        results = self._search(snapshot, **kwargs)
        if not results:
            refreshed = self._refresh(snapshot)
            if refreshed is not snapshot:
                results = self._search(refreshed, **kwargs)
        return results

    def get(self, **kwargs):
        """The one resource that matches, as the library's ``get``: an exact
        match on ``api_version`` and a kind over its List win; raises
        ``ResourceNotFoundError`` or ``ResourceNotUniqueError``."""
        results = self.search(**kwargs)
        if len(results) > 1 and kwargs.get("api_version"):
            results = [r for r in results if r.group_version == kwargs["api_version"]]
        if len(results) > 1 and not all(isinstance(r, ResourceList) for r in results):
            results = [r for r in results if not isinstance(r, ResourceList)]
        if len(results) == 1:
            return results[0]
        if not results:
            raise ResourceNotFoundError(f"No matches found for {kwargs}")
        raise ResourceNotUniqueError(f"Multiple matches found for {kwargs}: {results}")

    def __iter__(self):
        """Every resource the cluster serves (each group version fetched)."""
        snapshot = self._snapshot
        for key in snapshot.group_versions:
            for resources in self._resources(snapshot, key).values():
                yield from resources

    # -- lookups ---------------------------------------------------------

    def _search(
        self, snapshot, prefix=None, group=None, api_version=None, kind=None, **fields
    ):
        if not group and api_version and "/" in api_version:
            group, api_version = api_version.split("/", 1)
        elif group is None and api_version:
            # "v1" is the core group, as an object's apiVersion means (the
            # library fetched and searched every group's v1 as well).
            group = ""
        wanted = (prefix or None, group, api_version or None)
        found = []
        for key in snapshot.group_versions:
            if not _matches(key, wanted):
                continue
            resources = self._resources(snapshot, key)
            listed = [resources.get(kind, [])] if kind else resources.values()
            found += [r for some in listed for r in some if _has_fields(r, fields)]
        return found

    def _resources(self, snapshot, key):
        """The resources of a group version, fetched once per snapshot."""
        resources = snapshot.resources.get(key)
        if resources is None:
            resources = snapshot.fetches.run(
                key, lambda: self._fetch_once(snapshot, key)
            )
        return resources

    def _fetch_once(self, snapshot, key):
        # Fetched by a thread that finished before this one asked.
        resources = snapshot.resources.get(key)
        if resources is None:
            resources = snapshot.resources[key] = self._fetch_resources(
                *key, snapshot.group_versions[key]
            )
        return resources

    # -- discovery requests ----------------------------------------------

    def _refresh(self, seen, forced=False):
        """The snapshot that replaces ``seen``: ``seen`` itself while it is
        younger than ``REFRESH_INTERVAL`` (unless ``forced``), else a new one,
        made by this thread or shared with the one already making it."""
        with self._lock:
            if self._snapshot is not seen:  # replaced since the caller read it
                return self._snapshot
            if not forced and time.monotonic() - seen.taken_at < REFRESH_INTERVAL:
                return seen
        return self._refreshes.run(seen, lambda: self._replace(seen))

    def _replace(self, seen):
        with self._lock:
            if self._snapshot is not seen:  # replaced between decision and flight
                return self._snapshot
        # Built aside: lookups under way go on with the old snapshot.
        snapshot = self._discover()
        with self._lock:
            self._snapshot = snapshot
        return snapshot

    def _discover(self):
        """``/version`` and ``/apis``; the group versions' resources are
        fetched when a lookup first needs them."""
        version = {"kubernetes": self._get("/version")}
        # The core group has one version, v1 (the library assumes it too).
        group_versions = {("api", "", "v1"): True}
        for group in self._get("/apis").get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("version")
            for entry in group.get("versions") or []:
                key = ("apis", group["name"], entry["version"])
                group_versions[key] = entry["version"] == preferred
        return _Snapshot(self.client, version, group_versions)

    def _fetch_resources(self, prefix, group, version, preferred):
        path = "/" + "/".join(part for part in (prefix, group, version) if part)
        try:
            listed = self._get(path).get("resources") or []
        except NotFoundError:
            # Listed by /apis but gone (an aggregated API whose service went
            # away, a CRD removed since): it serves nothing.
            return {}
        subresources = {}
        for entry in listed:
            if "/" in entry["name"]:
                parent, name = entry["name"].split("/", 1)
                subresources.setdefault(parent, {})[name] = entry
        resources = {}
        for entry in listed:
            if "/" in entry["name"]:
                continue
            fields = {k: v for k, v in entry.items() if k not in _RESOURCE_OWN_KEYS}
            resource = Resource(
                prefix=prefix,
                group=group,
                api_version=version,
                client=self.client,
                preferred=preferred,
                subresources=subresources.get(entry["name"]),
                **fields,
            )
            listing = ResourceList(
                self.client, group=group, api_version=version, base_kind=resource.kind
            )
            resources.setdefault(resource.kind, []).append(resource)
            resources.setdefault(listing.kind, []).append(listing)
        return resources

    def _get(self, path):
        body = self.client.request("get", path, serializer=_as_json)
        # Not JSON (the client then hands back the text): nothing to read.
        return body if isinstance(body, dict) else {}


def _matches(key, wanted):
    """Whether the (prefix, group, version) ``key`` is what a lookup wants
    (None: any)."""
    pairs = zip(wanted, key, strict=True)
    return all(want is None or want == part for want, part in pairs)


def _has_fields(resource, fields):
    return all(getattr(resource, name, None) == value for name, value in fields.items())
