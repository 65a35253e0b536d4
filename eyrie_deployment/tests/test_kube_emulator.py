"""The emulated cluster, checked through the unmodified official client.

Plain unittest cases, no Odoo: every call below is a real HTTP request from
``kubernetes`` (typed APIs and the dynamic client) to the in-process server.
"""

import json
import threading
import time
import unittest

import yaml
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import (
    ConflictError,
    ForbiddenError,
    InternalServerError,
    NotFoundError,
    ResourceNotFoundError,
)

try:
    from .kube_emulator import EmulatedCluster
except ImportError:  # collected as a top-level module, outside the addon
    from kube_emulator import EmulatedCluster

PGO_GROUP = "postgres-operator.crunchydata.com"
PGO_VERSION = "v1beta1"
PGO_API = f"{PGO_GROUP}/{PGO_VERSION}"
MERGE = "application/merge-patch+json"
APPLY = "application/apply-patch+yaml"


def deployment(name, namespace="team", replicas=1, **spec):
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "odoo:18",
                            "ports": [{"containerPort": 8069, "name": "http"}],
                            "env": [{"name": "A", "value": "1"}],
                        },
                        {"name": "sidecar", "image": "busybox"},
                    ]
                },
            },
            **spec,
        },
    }


def postgres_cluster(name, namespace="team"):
    return {
        "apiVersion": PGO_API,
        "kind": "PostgresCluster",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"postgresVersion": 16, "instances": [{"name": "i1", "replicas": 1}]},
    }


def close(api):
    # ApiClient.close() leaves urllib3's pooled connections open.
    api.close()
    api.rest_client.pool_manager.clear()


class ClusterCase(unittest.TestCase):
    """One server per class, emptied before each test."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cluster = EmulatedCluster()
        cls.addClassCleanup(cls.cluster.stop)

    def setUp(self):
        super().setUp()
        self.cluster.reset()
        self.api = self.cluster.api_client()
        self.addCleanup(close, self.api)
        self.core = client.CoreV1Api(self.api)
        self.apps = client.AppsV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.core.create_namespace({"metadata": {"name": "team"}})

    def dynamic(self):
        return DynamicClient(self.api)

    def status_body(self, error):
        body = json.loads(error.body)
        self.assertEqual(body["kind"], "Status")
        self.assertEqual(body["apiVersion"], "v1")
        self.assertEqual(body["status"], "Failure")
        self.assertEqual(body["code"], error.status)
        return body

    def config_map(self, name, namespace="team", labels=None, **data):
        body = {"metadata": {"name": name, "labels": labels or {}}, "data": data}
        return self.core.create_namespaced_config_map(namespace, body)


class TestServer(ClusterCase):
    def test_version_with_and_without_slash(self):
        self.assertEqual(client.VersionApi(self.api).get_code().git_version, "v1.30.0")
        dyn = self.dynamic()  # its discovery reads /version
        self.assertEqual(dyn.version["kubernetes"]["gitVersion"], "v1.30.0")
        # No "kind" in /version, as for real: the default serializer needs one.
        version = dyn.request("get", "/version", serializer=lambda _client, data: data)
        self.assertEqual((version["major"], version["minor"]), ("1", "30"))
        self.assertNotIn("kind", version)

    def test_kubeconfig_token_and_context(self):
        config = yaml.safe_load(self.cluster.kubeconfig(token="t0k", context="ctx"))
        self.assertEqual(config["current-context"], "ctx")
        self.assertEqual(config["clusters"][0]["cluster"]["server"], self.cluster.url)
        self.assertEqual(config["users"][0]["user"]["token"], "t0k")
        self.core.list_namespace()
        # kmock's request log still records every request, headers included.
        last = list(self.cluster.emulator)[-1]
        self.assertEqual(last.headers["Authorization"], "Bearer eyrie-test-token")

    def test_request_count(self):
        before = self.cluster.request_count()
        self.core.list_namespace()
        self.core.read_namespace("team")
        self.assertEqual(self.cluster.request_count(), before + 2)
        self.cluster.reset()
        self.assertEqual(self.cluster.request_count(), 0)

    def test_clusters_stop_in_any_order(self):
        first, second = EmulatedCluster(), EmulatedCluster()
        first.stop()
        api = second.api_client()
        self.assertTrue(client.CoreV1Api(api).list_namespace().items)
        close(api)
        second.stop()

    def test_kmock_reactions_take_precedence(self):
        _ = self.cluster.emulator["get /api/v1/namespaces/special"] << 418
        with self.assertRaises(ApiException) as caught:
            self.core.read_namespace("special")
        self.assertEqual(caught.exception.status, 418)


class TestDiscovery(ClusterCase):
    def test_builtin_resources(self):
        core = {r.name: r for r in self.core.get_api_resources().resources}
        self.assertFalse(core["namespaces"].namespaced)
        for name in ("configmaps", "secrets", "services", "persistentvolumeclaims"):
            self.assertTrue(core[name].namespaced, name)
        self.assertEqual(core["serviceaccounts"].kind, "ServiceAccount")
        self.assertIn("pods/status", core)
        self.assertIn("create", core["configmaps"].verbs)
        apps = {r.name: r for r in self.apps.get_api_resources().resources}
        self.assertEqual(apps["deployments/scale"].kind, "Scale")
        self.assertEqual(apps["deployments/scale"].group, "autoscaling")
        self.assertIn("statefulsets/status", apps)
        groups = {g.name for g in client.ApisApi(self.api).get_api_versions().groups}
        self.assertEqual(groups, {"apps", "batch", "networking.k8s.io", "policy"})
        ingresses = client.NetworkingV1Api(self.api).get_api_resources().resources
        self.assertIn("Ingress", {r.kind for r in ingresses})

    def test_dynamic_client_finds_builtins(self):
        dyn = self.dynamic()
        namespace = dyn.resources.get(api_version="v1", kind="Namespace")
        self.assertFalse(namespace.namespaced)
        ingress = dyn.resources.get(api_version="networking.k8s.io/v1", kind="Ingress")
        self.assertEqual(ingress.name, "ingresses")
        deploy = dyn.resources.get(api_version="apps/v1", kind="Deployment")
        self.assertIn("scale", deploy.subresources)

    def test_missing_crd_is_not_installed(self):
        dyn = self.dynamic()
        with self.assertRaises(ResourceNotFoundError):
            dyn.resources.get(api_version=PGO_API, kind="PostgresCluster")
        for path in (f"/apis/{PGO_GROUP}", f"/apis/{PGO_API}"):
            with self.assertRaises(NotFoundError) as caught:
                dyn.request("get", path)
            self.assertEqual(caught.exception.status, 404)
        with self.assertRaises(ApiException) as caught:
            self.custom.list_namespaced_custom_object(
                PGO_GROUP, PGO_VERSION, "team", "postgresclusters"
            )
        self.assertEqual(self.status_body(caught.exception)["reason"], "NotFound")

    def test_added_crd_is_discovered_and_reset_forgets_it(self):
        self.cluster.add_crd(
            PGO_GROUP, PGO_VERSION, "PostgresCluster", "postgresclusters"
        )
        resource = self.dynamic().resources.get(
            api_version=PGO_API, kind="PostgresCluster"
        )
        self.assertTrue(resource.namespaced)
        self.assertIn("status", resource.subresources)
        self.cluster.reset()
        with self.assertRaises(ResourceNotFoundError):
            self.dynamic().resources.get(api_version=PGO_API, kind="PostgresCluster")

    def test_preferred_version(self):
        self.cluster.add_crd("example.com", "v1beta1", "Widget", "widgets")
        self.cluster.add_crd("example.com", "v1", "Widget", "widgets")
        group = self.dynamic().request("get", "/apis/example.com")
        self.assertEqual(group.preferredVersion.version, "v1")


class TestObjects(ClusterCase):
    def test_create_fills_metadata_and_answers_201(self):
        body = {"metadata": {"name": "settings"}, "data": {"a": "1"}}
        created, status, _ = self.core.create_namespaced_config_map_with_http_info(
            "team", body
        )
        self.assertEqual(status, 201)
        meta = created.metadata
        self.assertEqual(
            (meta.name, meta.namespace, meta.generation), ("settings", "team", 1)
        )
        self.assertTrue(meta.uid and meta.resource_version and meta.creation_timestamp)
        self.assertEqual((created.api_version, created.kind), ("v1", "ConfigMap"))
        stored = self.cluster.get("v1", "ConfigMap", "settings", "team")
        self.assertEqual(stored["metadata"]["uid"], meta.uid)
        self.assertEqual(stored["data"], {"a": "1"})

    def test_generate_name(self):
        created = self.core.create_namespaced_config_map(
            "team", {"metadata": {"generateName": "cm-"}}
        )
        self.assertRegex(created.metadata.name, r"^cm-\w{5}$")

    def test_duplicate_create_is_409_already_exists(self):
        self.config_map("settings")
        with self.assertRaises(ApiException) as caught:
            self.config_map("settings")
        body = self.status_body(caught.exception)
        self.assertEqual((body["code"], body["reason"]), (409, "AlreadyExists"))
        self.assertEqual(body["message"], 'configmaps "settings" already exists')

    def test_get_missing_is_404_status(self):
        with self.assertRaises(ApiException) as caught:
            self.core.read_namespaced_config_map("nope", "team")
        body = self.status_body(caught.exception)
        self.assertEqual((body["code"], body["reason"]), (404, "NotFound"))
        self.assertEqual(
            body["details"], {"name": "nope", "group": "", "kind": "configmaps"}
        )

    def test_replace_and_stale_resource_version(self):
        created = self.config_map("settings", a="1")
        created.data = {"a": "2"}
        replaced = self.core.replace_namespaced_config_map("settings", "team", created)
        self.assertEqual(replaced.data, {"a": "2"})
        self.assertGreater(
            int(replaced.metadata.resource_version),
            int(created.metadata.resource_version),
        )
        self.assertEqual(replaced.metadata.uid, created.metadata.uid)
        with self.assertRaises(ApiException) as caught:  # created's version is stale
            self.core.replace_namespaced_config_map("settings", "team", created)
        self.assertEqual(self.status_body(caught.exception)["reason"], "Conflict")

    def test_replace_missing_is_404(self):
        body = {"metadata": {"name": "nope"}, "data": {}}
        with self.assertRaises(ApiException) as caught:
            self.core.replace_namespaced_config_map("nope", "team", body)
        self.assertEqual(caught.exception.status, 404)

    def test_delete(self):
        self.config_map("settings")
        deleted = self.dynamic().request(
            "delete", "/api/v1/namespaces/team/configmaps/settings"
        )
        self.assertEqual(deleted.metadata.name, "settings")
        self.assertIsNone(self.cluster.get("v1", "ConfigMap", "settings", "team"))
        with self.assertRaises(ApiException) as caught:
            self.core.delete_namespaced_config_map("settings", "team")
        self.assertEqual(self.status_body(caught.exception)["code"], 404)
        self.config_map("settings")  # the name is free again

    def test_resource_version_increments_on_every_change(self):
        versions = [int(self.config_map("settings", a="1").metadata.resource_version)]
        for value in ("2", "3"):
            patched = self.core.patch_namespaced_config_map(
                "settings", "team", {"data": {"a": value}}
            )
            versions.append(int(patched.metadata.resource_version))
        self.assertEqual(versions, sorted(set(versions)))
        other = self.config_map("other")
        self.assertGreater(int(other.metadata.resource_version), versions[-1])
        # A patch that changes nothing keeps the version, as for real.
        same = self.core.patch_namespaced_config_map(
            "settings", "team", {"data": {"a": "3"}}
        )
        self.assertEqual(int(same.metadata.resource_version), versions[-1])

    def test_wrong_kind_or_namespace_in_body_is_400(self):
        with self.assertRaises(ApiException) as caught:
            self.core.create_namespaced_config_map(
                "team", {"kind": "Secret", "metadata": {"name": "x"}}
            )
        self.assertEqual(caught.exception.status, 400)
        with self.assertRaises(ApiException) as caught:
            self.core.create_namespaced_config_map(
                "team", {"metadata": {"name": "x", "namespace": "other"}}
            )
        self.assertEqual(caught.exception.status, 400)

    def test_dry_run_stores_nothing(self):
        body = {"metadata": {"name": "settings"}}
        self.core.create_namespaced_config_map("team", body, dry_run="All")
        self.assertIsNone(self.cluster.get("v1", "ConfigMap", "settings", "team"))

    def test_finalizers_hold_deletion(self):
        self.core.create_namespaced_config_map(
            "team", {"metadata": {"name": "held", "finalizers": ["eyrie.io/keep"]}}
        )
        self.core.delete_namespaced_config_map("held", "team")
        held = self.core.read_namespaced_config_map("held", "team")
        self.assertIsNotNone(held.metadata.deletion_timestamp)
        self.core.patch_namespaced_config_map(
            "held", "team", {"metadata": {"finalizers": None}}, _content_type=MERGE
        )
        self.assertIsNone(self.cluster.get("v1", "ConfigMap", "held", "team"))


class TestNamespaces(ClusterCase):
    def test_create_list_get(self):
        created = self.core.create_namespace({"metadata": {"name": "eyrie-a"}})
        self.assertEqual(created.status.phase, "Active")
        self.assertIsNone(created.metadata.namespace)
        names = {ns.metadata.name for ns in self.core.list_namespace().items}
        self.assertLessEqual({"default", "team", "eyrie-a"}, names)
        self.assertEqual(
            self.core.read_namespace("eyrie-a").metadata.uid, created.metadata.uid
        )
        dyn = self.dynamic().resources.get(api_version="v1", kind="Namespace")
        self.assertEqual(dyn.get(name="eyrie-a").metadata.name, "eyrie-a")

    def test_objects_need_an_existing_namespace(self):
        with self.assertRaises(ApiException) as caught:
            self.config_map("settings", namespace="nowhere")
        body = self.status_body(caught.exception)
        self.assertEqual(body["message"], 'namespaces "nowhere" not found')

    def test_deleting_a_namespace_deletes_its_objects(self):
        self.core.create_namespace({"metadata": {"name": "doomed"}})
        self.config_map("settings", namespace="doomed")
        self.apps.create_namespaced_deployment("doomed", deployment("web", "doomed"))
        self.config_map("survivor")
        # A real server answers with the Namespace, which the typed client
        # reads as a V1Status: read the raw answer.
        deleted = self.dynamic().request("delete", "/api/v1/namespaces/doomed")
        self.assertEqual(deleted.status.phase, "Terminating")
        self.assertEqual(self.cluster.list(namespace="doomed"), [])
        with self.assertRaises(ApiException):
            self.core.read_namespace("doomed")
        self.assertIsNotNone(self.cluster.get("v1", "ConfigMap", "survivor", "team"))

    def test_terminating_namespace_refuses_new_objects(self):
        self.core.create_namespace({"metadata": {"name": "doomed"}})
        self.core.create_namespaced_config_map(
            "doomed", {"metadata": {"name": "held", "finalizers": ["eyrie.io/keep"]}}
        )
        self.core.delete_namespace("doomed")
        self.assertEqual(self.core.read_namespace("doomed").status.phase, "Terminating")
        with self.assertRaises(ApiException) as caught:
            self.config_map("new", namespace="doomed")
        self.assertEqual(caught.exception.status, 403)
        self.core.patch_namespaced_config_map(
            "held", "doomed", {"metadata": {"finalizers": None}}, _content_type=MERGE
        )
        with self.assertRaises(ApiException):  # the last object gone, so is it
            self.core.read_namespace("doomed")


class TestSelectors(ClusterCase):
    def setUp(self):
        super().setUp()
        self.core.create_namespace({"metadata": {"name": "other"}})
        self.config_map("a1", labels={"app": "odoo", "tier": "web"})
        self.config_map("a2", labels={"app": "odoo", "tier": "db"})
        self.config_map("b1", labels={"app": "pg"})
        self.config_map("c1")
        self.config_map("a3", namespace="other", labels={"app": "odoo", "tier": "web"})

    def names(self, namespace="team", **kwargs):
        if namespace is None:
            items = self.core.list_config_map_for_all_namespaces(**kwargs).items
        else:
            items = self.core.list_namespaced_config_map(namespace, **kwargs).items
        return [item.metadata.name for item in items]

    def test_label_selectors(self):
        self.assertEqual(self.names(label_selector="app=odoo,tier=web"), ["a1"])
        self.assertEqual(self.names(label_selector="app==odoo"), ["a1", "a2"])
        self.assertEqual(self.names(label_selector="tier"), ["a1", "a2"])
        self.assertEqual(self.names(label_selector="!tier"), ["b1", "c1"])
        self.assertEqual(self.names(label_selector="app!=odoo"), ["b1", "c1"])
        self.assertEqual(self.names(label_selector="tier in (db, cache)"), ["a2"])
        self.assertEqual(self.names(label_selector="app notin (odoo)"), ["b1", "c1"])
        # Cluster-wide lists come by namespace, then name (etcd's key order).
        self.assertEqual(self.names(None, label_selector="tier=web"), ["a3", "a1"])

    def test_field_selectors(self):
        self.assertEqual(self.names(field_selector="metadata.name=a2"), ["a2"])
        self.assertEqual(
            self.names(field_selector="metadata.name!=a2"), ["a1", "b1", "c1"]
        )
        self.assertEqual(
            self.names(None, field_selector="metadata.namespace=other"), ["a3"]
        )

    def test_bad_selector_is_400(self):
        with self.assertRaises(ApiException) as caught:
            self.names(label_selector="a in b")
        self.assertEqual(caught.exception.status, 400)

    def test_dynamic_client_and_helper(self):
        resource = self.dynamic().resources.get(api_version="v1", kind="ConfigMap")
        listed = resource.get(namespace="team", label_selector="app=odoo")
        self.assertEqual([i.metadata.name for i in listed.items], ["a1", "a2"])
        self.assertEqual(listed.kind, "ConfigMapList")
        found = self.cluster.list("v1", "ConfigMap", labels={"app": "odoo"})
        self.assertEqual([o["metadata"]["name"] for o in found], ["a3", "a1", "a2"])

    def test_delete_collection(self):
        self.core.delete_collection_namespaced_config_map(
            "team", label_selector="app=odoo"
        )
        self.assertEqual(self.names(), ["b1", "c1"])


class TestPatches(ClusterCase):
    def test_merge_patch(self):
        self.config_map("settings", labels={"keep": "1", "drop": "1"}, a="1", b="2")
        patched = self.core.patch_namespaced_config_map(
            "settings",
            "team",
            {"metadata": {"labels": {"drop": None, "new": "1"}}, "data": {"b": None}},
            _content_type=MERGE,
        )
        self.assertEqual(patched.metadata.labels, {"keep": "1", "new": "1"})
        self.assertEqual(patched.data, {"a": "1"})
        emptied = self.core.patch_namespaced_config_map(
            "settings",
            "team",
            {"metadata": {"labels": {"keep": None, "new": None}}},
            _content_type=MERGE,
        )
        self.assertIsNone(emptied.metadata.labels)  # omitted when empty

    def test_json_patch(self):
        self.config_map("settings", a="1", b="2")
        operations = [
            {"op": "test", "path": "/data/a", "value": "1"},
            {"op": "replace", "path": "/data/a", "value": "10"},
            {"op": "remove", "path": "/data/b"},
            {"op": "add", "path": "/metadata/labels", "value": {"x~y/z": "1"}},
        ]
        patched = self.core.patch_namespaced_config_map("settings", "team", operations)
        self.assertEqual(patched.data, {"a": "10"})
        self.assertEqual(patched.metadata.labels, {"x~y/z": "1"})
        failing = [{"op": "test", "path": "/data/a", "value": "1"}]
        with self.assertRaises(ApiException) as caught:
            self.core.patch_namespaced_config_map("settings", "team", failing)
        self.assertEqual(caught.exception.status, 422)

    def test_strategic_merge_merges_keyed_lists(self):
        self.apps.create_namespaced_deployment("team", deployment("web"))
        patch = {
            "spec": {
                "template": {
                    "spec": {
                        "containers": [
                            {
                                "name": "web",
                                "image": "odoo:18.1",
                                "env": [{"name": "B", "value": "2"}],
                                "ports": [{"containerPort": 8072, "name": "poll"}],
                            }
                        ]
                    }
                }
            }
        }
        patched = self.apps.patch_namespaced_deployment("web", "team", patch)
        web, sidecar = patched.spec.template.spec.containers
        self.assertEqual(
            (web.name, web.image, sidecar.name), ("web", "odoo:18.1", "sidecar")
        )
        self.assertEqual([e.name for e in web.env], ["A", "B"])
        self.assertEqual([p.container_port for p in web.ports], [8069, 8072])
        delete = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}
                }
            }
        }
        patched = self.apps.patch_namespaced_deployment("web", "team", delete)
        self.assertEqual(
            [c.name for c in patched.spec.template.spec.containers], ["web"]
        )

    def test_dynamic_patch_defaults_to_strategic_merge(self):
        self.apps.create_namespaced_deployment("team", deployment("web"))
        resource = self.dynamic().resources.get(
            api_version="apps/v1", kind="Deployment"
        )
        patch = {
            "spec": {
                "template": {"spec": {"containers": [{"name": "web", "image": "x"}]}}
            }
        }
        patched = resource.patch(name="web", namespace="team", body=patch)
        self.assertEqual(len(patched.spec.template.spec.containers), 2)

    def test_strategic_merge_on_custom_resource_is_415(self):
        self.cluster.add_crd(
            PGO_GROUP, PGO_VERSION, "PostgresCluster", "postgresclusters"
        )
        self.custom.create_namespaced_custom_object(
            PGO_GROUP, PGO_VERSION, "team", "postgresclusters", postgres_cluster("db")
        )
        resource = self.dynamic().resources.get(
            api_version=PGO_API, kind="PostgresCluster"
        )
        with self.assertRaises(Exception) as caught:
            resource.patch(name="db", namespace="team", body={"spec": {"port": 5433}})
        self.assertEqual(caught.exception.status, 415)
        patched = resource.patch(
            name="db",
            namespace="team",
            body={"spec": {"port": 5433}},
            content_type=MERGE,
        )
        self.assertEqual(patched.spec.port, 5433)

    def test_generation_follows_spec_only(self):
        self.apps.create_namespaced_deployment("team", deployment("web"))
        labelled = self.apps.patch_namespaced_deployment(
            "web", "team", {"metadata": {"labels": {"x": "1"}}}
        )
        self.assertEqual(labelled.metadata.generation, 1)
        scaled = self.apps.patch_namespaced_deployment(
            "web", "team", {"spec": {"replicas": 3}}
        )
        self.assertEqual(scaled.metadata.generation, 2)


class TestServerSideApply(ClusterCase):
    def setUp(self):
        super().setUp()
        self.deployments = self.dynamic().resources.get(
            api_version="apps/v1", kind="Deployment"
        )

    def apply(self, body, manager="eyrie"):
        return self.deployments.server_side_apply(
            body=body,
            name=body["metadata"]["name"],
            namespace="team",
            field_manager=manager,
            force_conflicts=True,
        )

    def test_creates_then_updates(self):
        created = self.apply(deployment("web", replicas=2))
        self.assertEqual((created.spec.replicas, created.metadata.generation), (2, 1))
        updated = self.apply(deployment("web", replicas=3))
        self.assertEqual((updated.spec.replicas, updated.metadata.generation), (3, 2))
        self.assertEqual(updated.metadata.uid, created.metadata.uid)
        stored = self.cluster.get("apps/v1", "Deployment", "web", "team")
        self.assertEqual(stored["spec"]["replicas"], 3)

    def test_create_answers_201_then_200(self):
        body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}}
        for expected in (201, 200):
            _, status, _ = self.core.patch_namespaced_config_map_with_http_info(
                "cm", "team", body, field_manager="eyrie", _content_type=APPLY
            )
            self.assertEqual(status, expected)

    def test_fields_no_longer_applied_are_removed(self):
        body = deployment("web")
        body["metadata"]["labels"]["old"] = "1"
        web = body["spec"]["template"]["spec"]["containers"][0]
        web["env"].append({"name": "OLD", "value": "1"})
        self.apply(body)
        self.deployments.patch(
            name="web",
            namespace="team",
            body={"metadata": {"labels": {"by-someone-else": "1"}}},
            content_type=MERGE,
        )
        body = deployment("web")
        del body["spec"]["template"]["spec"]["containers"][1]
        applied = self.apply(body)
        labels = applied.metadata.labels
        self.assertNotIn("old", labels)
        self.assertEqual(labels["by-someone-else"], "1")
        containers = applied.spec.template.spec.containers
        self.assertEqual([c.name for c in containers], ["web"])
        self.assertEqual([e.name for e in containers[0].env], ["A"])

    def test_status_is_ignored_and_kept(self):
        self.apply(deployment("web"))
        self.cluster.set_status("apps/v1", "Deployment", "web", {"replicas": 1}, "team")
        body = deployment("web")
        body["status"] = {"replicas": 99}
        applied = self.apply(body)
        self.assertEqual(applied.status.replicas, 1)

    def test_field_manager_is_required(self):
        with self.assertRaises(Exception) as caught:
            self.deployments.server_side_apply(body=deployment("web"), namespace="team")
        self.assertEqual(caught.exception.status, 400)


class TestSubresources(ClusterCase):
    def test_status_is_the_controllers(self):
        body = deployment("web")
        body["status"] = {"replicas": 5}
        created = self.apps.create_namespaced_deployment("team", body)
        self.assertIsNone(created.status)
        status = {"observedGeneration": 1, "replicas": 1, "availableReplicas": 1}
        self.cluster.set_status("apps/v1", "Deployment", "web", status, "team")
        read = self.apps.read_namespaced_deployment_status("web", "team")
        self.assertEqual(read.status.available_replicas, 1)
        ignored = self.apps.patch_namespaced_deployment(
            "web", "team", {"status": {"replicas": 7}}
        )
        self.assertEqual(ignored.status.replicas, 1)
        written = self.apps.patch_namespaced_deployment_status(
            "web", "team", {"status": {"replicas": 2}}
        )
        self.assertEqual((written.status.replicas, written.metadata.generation), (2, 1))

    def test_scale(self):
        self.apps.create_namespaced_deployment("team", deployment("web", replicas=2))
        scale = self.apps.read_namespaced_deployment_scale("web", "team")
        self.assertEqual((scale.kind, scale.spec.replicas), ("Scale", 2))
        self.assertEqual(scale.status.selector, "app=web")
        scaled = self.apps.patch_namespaced_deployment_scale(
            "web", "team", {"spec": {"replicas": 0}}
        )
        self.assertEqual(scaled.spec.replicas, 0)
        self.assertEqual(
            self.apps.read_namespaced_deployment("web", "team").spec.replicas, 0
        )

    def test_statefulset_rollout_status(self):
        body = deployment("db")
        body["kind"] = "StatefulSet"
        self.apps.create_namespaced_stateful_set("team", body)
        status = {"replicas": 1, "readyReplicas": 1, "observedGeneration": 1}
        self.cluster.set_status("apps/v1", "StatefulSet", "db", status, "team")
        for read in (
            self.apps.read_namespaced_stateful_set,
            self.apps.read_namespaced_stateful_set_status,
        ):
            self.assertEqual(read("db", "team").status.ready_replicas, 1)


class TestCustomResources(ClusterCase):
    def setUp(self):
        super().setUp()
        self.cluster.add_crd(
            PGO_GROUP, PGO_VERSION, "PostgresCluster", "postgresclusters"
        )

    def test_custom_objects_api_returns_the_created_object(self):
        created = self.custom.create_namespaced_custom_object(
            PGO_GROUP, PGO_VERSION, "team", "postgresclusters", postgres_cluster("db")
        )
        self.assertEqual(created["kind"], "PostgresCluster")
        self.assertEqual(created["apiVersion"], PGO_API)
        self.assertEqual(created["metadata"]["namespace"], "team")
        self.assertTrue(created["metadata"]["uid"])
        self.assertTrue(created["metadata"]["resourceVersion"])
        got = self.custom.get_namespaced_custom_object(
            PGO_GROUP, PGO_VERSION, "team", "postgresclusters", "db"
        )
        self.assertEqual(got["metadata"]["uid"], created["metadata"]["uid"])
        patched = self.custom.patch_namespaced_custom_object(
            PGO_GROUP,
            PGO_VERSION,
            "team",
            "postgresclusters",
            "db",
            {"spec": {"port": 5433}},
        )
        self.assertEqual(patched["spec"]["port"], 5433)
        listed = self.custom.list_cluster_custom_object(
            PGO_GROUP, PGO_VERSION, "postgresclusters"
        )
        self.assertEqual([i["metadata"]["name"] for i in listed["items"]], ["db"])
        self.custom.delete_namespaced_custom_object(
            PGO_GROUP, PGO_VERSION, "team", "postgresclusters", "db"
        )
        self.assertEqual(self.cluster.list(PGO_API, "PostgresCluster"), [])

    def test_operator_sets_instances_ready(self):
        resource = self.dynamic().resources.get(
            api_version=PGO_API, kind="PostgresCluster"
        )
        resource.server_side_apply(
            body=postgres_cluster("db"), namespace="team", field_manager="eyrie"
        )
        status = {"instances": [{"name": "i1", "readyReplicas": 1, "replicas": 1}]}
        self.cluster.set_status(PGO_API, "PostgresCluster", "db", status, "team")
        live = resource.get(name="db", namespace="team")
        self.assertEqual(live.status.instances[0].readyReplicas, 1)

    def test_cluster_scoped_crd(self):
        self.cluster.add_crd("example.com", "v1", "Tenant", "tenants", namespaced=False)
        body = {
            "apiVersion": "example.com/v1",
            "kind": "Tenant",
            "metadata": {"name": "t"},
        }
        created = self.custom.create_cluster_custom_object(
            "example.com", "v1", "tenants", body
        )
        self.assertNotIn("namespace", created["metadata"])
        self.assertIsNotNone(self.cluster.get("example.com/v1", "Tenant", "t"))


class TestInjectedFailures(ClusterCase):
    def test_403_then_success(self):
        self.cluster.fail("POST", "/configmaps", 403, message="no way")
        with self.assertRaises(ApiException) as caught:
            self.config_map("settings")
        body = self.status_body(caught.exception)
        self.assertEqual(
            (body["code"], body["reason"], body["message"]),
            (403, "Forbidden", "no way"),
        )
        self.config_map("settings")

    def test_409_then_success_through_the_dynamic_client(self):
        resource = self.dynamic().resources.get(
            api_version="apps/v1", kind="Deployment"
        )
        self.cluster.fail("PATCH", "deployments/web", 409)
        with self.assertRaises(ConflictError):
            resource.server_side_apply(
                body=deployment("web"), namespace="team", field_manager="eyrie"
            )
        resource.server_side_apply(
            body=deployment("web"), namespace="team", field_manager="eyrie"
        )

    def test_500_twice_then_success(self):
        self.cluster.fail("*", "namespaces/team", 500, times=2)
        for _ in range(2):
            with self.assertRaises(ApiException) as caught:
                self.core.read_namespace("team")
            self.assertEqual(
                self.status_body(caught.exception)["reason"], "InternalError"
            )
        self.assertEqual(self.core.read_namespace("team").metadata.name, "team")

    def test_429_and_discovery_failures(self):
        self.cluster.fail("GET", "labelSelector=app=web", 429)
        with self.assertRaises(ApiException) as caught:
            self.core.list_namespaced_config_map("team", label_selector="app=web")
        self.assertEqual(caught.exception.status, 429)
        self.cluster.fail("GET", "/apis/apps/v1", 500, reason="InternalError")
        with self.assertRaises(InternalServerError):
            self.dynamic().resources.get(api_version="apps/v1", kind="Deployment")

    def test_forbidden_through_the_dynamic_client(self):
        self.cluster.fail("GET", "/secrets", 403)
        resource = self.dynamic().resources.get(api_version="v1", kind="Secret")
        with self.assertRaises(ForbiddenError):
            resource.get(namespace="team")


class TestWatch(ClusterCase):
    def test_watch_streams_current_then_changes(self):
        self.config_map("settings", a="1")

        def change():
            time.sleep(0.3)
            self.core.patch_namespaced_config_map(
                "settings", "team", {"data": {"a": "2"}}
            )

        changer = threading.Thread(target=change)
        changer.start()
        events = []
        stream = watch.Watch().stream(
            self.core.list_namespaced_config_map, "team", timeout_seconds=1
        )
        for event in stream:
            events.append((event["type"], event["object"].data["a"]))
        changer.join()
        self.assertEqual(events, [("ADDED", "1"), ("MODIFIED", "2")])


if __name__ == "__main__":
    unittest.main()
