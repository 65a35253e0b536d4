"""Executors run the rendered objects of one book step against a cluster.

``eyrie.cluster._get_executor()`` picks the executor. The dry-run executor is
the embedded default: it validates every object exactly as a real cluster
backend would need it and writes what it would send to the job log, without
contacting anything. A Kubernetes executor implements the same ``run_step``
contract with the official client.
"""

STEP_KINDS = [
    ("apply", "Apply"),
    ("delete", "Delete"),
    ("scale", "Scale"),
    ("patch", "Patch (JSON merge)"),
    ("wait", "Wait"),
]

WAIT_CONDITIONS = ("exists", "deleted", "rollout", "field")
SCALABLE_KINDS = ("Deployment", "StatefulSet")
DEFAULT_WAIT_TIMEOUT = 300

# Kinds that never live in a namespace; everything else gets the deployment's.
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "PriorityClass",
        "IngressClass",
    }
)


MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
DEPLOYMENT_LABEL = "eyrie.io/deployment"


class StepError(Exception):
    """A step failed for good; the message is shown to the user as is."""


class ClusterConnectionError(Exception):
    """The cluster could not be reached or is not usable (retried)."""


class TransientStepError(Exception):
    """A failure that a later attempt may not meet (5xx, 429, timeouts)."""


class StepPending(Exception):
    """A wait step's condition does not hold yet: check again later.

    ``timeout`` is the step's own limit in seconds, ``status`` what was
    observed, for the log and the error message once the wait times out.
    """

    def __init__(self, status, timeout, interval=5, condition=None):
        super().__init__(status)
        self.condition = condition
        self.status = status
        self.timeout = timeout
        self.interval = interval


def object_namespace(obj, default_namespace):
    if obj.get("kind") in CLUSTER_SCOPED_KINDS:
        return None
    return (obj.get("metadata") or {}).get("namespace") or default_namespace


def describe_object(obj, default_namespace):
    """``Deployment web in namespace demo``: what a log line may say of an
    object. Never more: a Secret's data must not reach the log."""
    name = (obj.get("metadata") or {}).get("name")
    if name is None and isinstance(obj.get("selector"), dict):
        text = f"{obj.get('kind')}s labelled {format_labels(obj['selector'])}"
    else:
        text = f"{obj.get('kind')} {name}"
    namespace = object_namespace(obj, default_namespace)
    return f"{text} in namespace {namespace}" if namespace else text


def _require(condition, index, message):
    if not condition:
        raise StepError(f"object {index}: {message}")


def format_labels(labels):
    """``app=web,tier=front``: a label selector."""
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def validate_object(kind, obj, index):
    """Check that ``obj`` carries what a step of ``kind`` needs."""
    metadata = obj.get("metadata")
    _require(
        isinstance(obj.get("kind"), str) and obj["kind"], index, "'kind' is missing"
    )
    selected = kind == "scale" and "selector" in obj
    if selected:
        _require(
            isinstance(obj["selector"], dict)
            and obj["selector"]
            and all(isinstance(v, str) for v in obj["selector"].values()),
            index,
            "'selector' must map label names to values",
        )
    _require(
        selected
        or (isinstance(metadata, dict) and isinstance(metadata.get("name"), str)),
        index,
        "'metadata.name' is missing",
    )
    if kind != "scale":
        _require(
            isinstance(obj.get("apiVersion"), str) and obj["apiVersion"],
            index,
            "'apiVersion' is missing",
        )
    validator = _KIND_VALIDATORS.get(kind)
    if validator:
        validator(obj, index)


def _validate_scale(obj, index):
    _require(
        obj["kind"] in SCALABLE_KINDS,
        index,
        f"scale works on {' or '.join(SCALABLE_KINDS)}, not {obj['kind']}",
    )
    replicas = (obj.get("spec") or {}).get("replicas")
    _require(
        isinstance(replicas, int) and not isinstance(replicas, bool) and replicas >= 0,
        index,
        "'spec.replicas' must be a whole number of 0 or more",
    )


def _validate_wait(obj, index):
    wait = obj.get("wait")
    _require(
        isinstance(wait, dict),
        index,
        f"a wait step needs a 'wait' mapping with 'for' ({', '.join(WAIT_CONDITIONS)})",
    )
    _require(
        wait.get("for") in WAIT_CONDITIONS,
        index,
        f"'wait.for' must be one of {', '.join(WAIT_CONDITIONS)}",
    )
    if wait["for"] == "field":
        _require(
            isinstance(wait.get("path"), str) and "value" in wait,
            index,
            "'wait.for: field' needs 'wait.path' and 'wait.value'",
        )
    for key in ("match", "fail_when"):
        conditions = wait.get(key, {})
        _require(
            isinstance(conditions, dict)
            and all(isinstance(path, str) and path for path in conditions),
            index,
            f"'wait.{key}' must map field paths to the values they must have",
        )
    _require(
        "fail_when" not in wait or wait["for"] == "field",
        index,
        "'wait.fail_when' works with 'wait.for: field' only",
    )
    timeout = wait.get("timeout", DEFAULT_WAIT_TIMEOUT)
    _require(
        isinstance(timeout, int) and not isinstance(timeout, bool) and timeout > 0,
        index,
        "'wait.timeout' must be a positive number of seconds",
    )


_KIND_VALIDATORS = {"scale": _validate_scale, "wait": _validate_wait}


class Executor:
    """Contract of a cluster backend.

    ``run_step(kind, objects)`` runs one step's rendered objects and returns
    the lines to append to the job log; it raises ``StepError`` when the step
    fails and ``ClusterConnectionError`` when the cluster cannot be used.
    Implementations provide one ``_step_<kind>(obj)`` method per step kind.
    """

    def __init__(self, cluster_name, default_namespace, labels=None):
        self.cluster_name = cluster_name
        self.default_namespace = default_namespace
        # Labels that every object Eyrie creates carries.
        self.labels = dict(labels or {})

    def run_step(self, kind, objects):
        for index, obj in enumerate(objects, start=1):
            validate_object(kind, obj, index)
        handler = getattr(self, f"_step_{kind}", None)
        if handler is None:
            raise StepError(f"step kind '{kind}' is not supported by this cluster")
        return [handler(obj) for obj in objects]

    def describe(self, obj):
        return describe_object(obj, self.default_namespace)

    def check_objects(self, objects):
        """Refuse, by ``StepError``, a book whose objects this cluster says
        are out of bounds; called once before the book's first step."""

    def check_namespace_owners(self, owners):
        """Refuse, by ``StepError``, to go on when one of the namespaces
        ``owners`` maps to a deployment id (the ones the book reads besides
        its own: a clone's source, a shared database) is not that
        deployment's on the cluster; called once before the first step."""


class DryRunExecutor(Executor):
    """Validates and logs what would be sent; applies nothing."""

    def _step_apply(self, obj):
        return f"would apply {self.describe(obj)}"

    def _step_delete(self, obj):
        return f"would delete {self.describe(obj)}"

    def _step_patch(self, obj):
        return f"would patch {self.describe(obj)}"

    def _step_scale(self, obj):
        return f"would scale {self.describe(obj)} to {obj['spec']['replicas']} replicas"

    def _step_wait(self, obj):
        wait = obj["wait"]
        condition = wait["for"]
        if condition == "field":
            condition = f"{wait['path']} == {wait['value']!r}"
        return (
            f"would wait for {self.describe(obj)}: {condition} "
            f"(timeout {wait.get('timeout', DEFAULT_WAIT_TIMEOUT)} s)"
        )
