"""The objects of a cluster's waker, built from the cluster's settings (a
manager's, checked): its namespace, key, script, two replicas and Service.

The waker is stateless: any replica answers any host, and each asks Eyrie.
It runs the official Python image and nothing else: its one script comes
from a ConfigMap, so an update of Eyrie updates the waker without an image
of ours to build or trust.
"""

import hashlib
import os

WAKER_PORT = 8080
WAKER_LABEL = "eyrie.io/waker"
SCRIPT_PATH = os.path.join(os.path.dirname(__file__), "..", "waker", "waker.py")


def waker_script():
    with open(SCRIPT_PATH, encoding="utf-8") as handle:
        return handle.read()


def waker_objects(cluster_id, namespace, image, replicas, eyrie_url, key):
    """The objects, in the order they are applied."""
    script = waker_script()
    selector = {"app.kubernetes.io/name": "eyrie-waker"}
    # A new script or key restarts the pods (they read both at start).
    checksum = hashlib.sha256((script + key).encode()).hexdigest()[:16]
    hardened = {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "runAsGroup": 65534,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    probe = {
        "httpGet": {"path": "/.eyrie-waker/healthz", "port": "http"},
        "periodSeconds": 10,
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "waker-key"},
            "type": "Opaque",
            "stringData": {"EYRIE_WAKE_KEY": key},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "waker-script"},
            "data": {"waker.py": script},
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "waker"},
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": selector},
                "template": {
                    "metadata": {
                        "labels": selector,
                        "annotations": {"eyrie.io/checksum": checksum},
                    },
                    "spec": {
                        "automountServiceAccountToken": False,
                        "affinity": _spread(selector),
                        "containers": [
                            {
                                "name": "waker",
                                "image": image,
                                "command": ["python3", "/waker/waker.py"],
                                "env": [
                                    {"name": "EYRIE_URL", "value": eyrie_url},
                                    {"name": "EYRIE_CLUSTER", "value": str(cluster_id)},
                                    {"name": "WAKER_PORT", "value": str(WAKER_PORT)},
                                    {"name": "PYTHONUNBUFFERED", "value": "1"},
                                ],
                                "envFrom": [{"secretRef": {"name": "waker-key"}}],
                                "ports": [
                                    {"name": "http", "containerPort": WAKER_PORT}
                                ],
                                "readinessProbe": probe,
                                "livenessProbe": probe,
                                "resources": {
                                    "requests": {"cpu": "10m", "memory": "32Mi"},
                                    "limits": {"memory": "96Mi"},
                                },
                                "securityContext": hardened,
                                "volumeMounts": [
                                    {
                                        "name": "script",
                                        "mountPath": "/waker",
                                        "readOnly": True,
                                    }
                                ],
                            }
                        ],
                        "volumes": [
                            {"name": "script", "configMap": {"name": "waker-script"}}
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "waker"},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": 80, "targetPort": "http"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": "waker"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": selector}},
        },
    ]


def _spread(selector):
    """Prefer the replicas on different nodes: a node's loss leaves one."""
    return {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": selector},
                    },
                }
            ]
        }
    }
