# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
"""Validate Gateway API objects against the upstream CRD schemas.

The CRDs in ``gateway_api/`` beside this file are copied unchanged from
kubernetes-sigs/gateway-api (standard channel, see its README.md).
``validate(obj)`` picks the CRD and version from the object's ``apiVersion`` and
``kind``, takes that version's ``schema.openAPIV3Schema`` and checks the object
with ``jsonschema`` (Draft 7), the structural way the API server does: types,
``required``, ``enum``, ``pattern``, lengths, item counts, bounds and the
``int32``/``int64`` formats.

The schema is made strict, like kubernetes-validate's ``--strict``: an object
schema that lists ``properties`` and has neither ``additionalProperties`` nor
``x-kubernetes-preserve-unknown-fields`` refuses fields it does not list (the
API server would prune them silently, hiding a typo). ``metadata`` stays loose,
as the CRDs only say ``type: object`` for it; its ``name`` (a DNS-1123
subdomain) and ``namespace`` (a DNS-1123 label) are checked here.

Not evaluated: the CEL rules (``x-kubernetes-validations``), list-type
uniqueness (``x-kubernetes-list-type``) and defaulting.
"""

import copy
import functools
import re
from pathlib import Path

import jsonschema
import yaml

CRD_DIR = Path(__file__).resolve().parent / "gateway_api"
GROUP = "gateway.networking.k8s.io"
# kind -> CRD file in CRD_DIR
CRD_FILES = {
    "HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml",
    "ReferenceGrant": "gateway.networking.k8s.io_referencegrants.yaml",
}

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)

_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("int32")
def _is_int32(value):
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@_FORMATS.checks("int64")
def _is_int64(value):
    return not isinstance(value, int) or -(2**63) <= value < 2**63


def _strict(schema):
    """Return a copy of ``schema`` whose listed-property objects refuse others."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if not isinstance(node, dict):
            return
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for sub in node.get("properties", {}).values():
            walk(sub)
        for key in ("items", "additionalProperties", "not"):
            walk(node.get(key))
        for key in ("allOf", "anyOf", "oneOf"):
            for sub in node.get(key, ()):
                walk(sub)

    walk(schema)
    # metadata is the API server's ObjectMeta: the CRD leaves it open.
    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
    return schema


@functools.cache
def _validator(kind, version):
    """The Draft 7 validator of ``kind`` at ``version``, or None if not served."""
    crd = yaml.safe_load((CRD_DIR / CRD_FILES[kind]).read_text(encoding="utf-8"))
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version and entry.get("served", True):
            schema = _strict(entry["schema"]["openAPIV3Schema"])
            jsonschema.Draft7Validator.check_schema(schema)
            return jsonschema.Draft7Validator(schema, format_checker=_FORMATS)
    return None


def _path(parts):
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(object)"


def _message(error):
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        return "; ".join(
            f"{_path([*path, name])}: unknown field (known here: {', '.join(allowed)})"
            for name in unknown
        )
    return f"{_path(path)}: {error.message}"


def _metadata_errors(metadata):
    if not isinstance(metadata, dict):
        return ["metadata: must be an object"]
    errors = []
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        errors.append("metadata.name: required, a non-empty string")
    elif len(name) > 253 or not _DNS1123_SUBDOMAIN.match(name):
        errors.append(
            f"metadata.name: {name!r} is not a DNS-1123 subdomain (lower-case "
            "alphanumerics, '-' and '.', at most 253 characters)"
        )
    namespace = metadata.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str)
        or len(namespace) > 63
        or not _DNS1123_LABEL.match(namespace)
    ):
        errors.append(
            f"metadata.namespace: {namespace!r} is not a DNS-1123 label (lower-case "
            "alphanumerics and '-', at most 63 characters)"
        )
    return errors


def validate(obj):
    """Check ``obj`` (a dict) against its Gateway API CRD schema.

    Raise ``ValueError`` naming the kind, the object's name and every offending
    field path, e.g. ``HTTPRoute odoo: spec.rules[0].backendRefs[0].port: ...``.
    An unknown ``kind``, or an ``apiVersion`` the CRD does not serve, is refused.
    """
    if not isinstance(obj, dict):
        # One exception type for every refusal: callers catch ValueError.
        raise ValueError(  # noqa: TRY004
            f"Gateway API object: expected a mapping, got {obj!r}"
        )
    kind = obj.get("kind")
    api_version = obj.get("apiVersion")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    label = f"{kind} {name or '<no name>'}"
    if kind not in CRD_FILES:
        raise ValueError(
            f"{label}: unknown kind {kind!r} (known: {', '.join(sorted(CRD_FILES))})"
        )
    group, _, version = str(api_version).rpartition("/")
    validator = _validator(kind, version) if group == GROUP else None
    if validator is None:
        raise ValueError(
            f"{label}: apiVersion {api_version!r} is not served by the {kind} CRD"
        )
    errors = _metadata_errors(metadata)
    found = sorted(
        validator.iter_errors(obj),
        key=lambda err: [(str(type(part)), part) for part in err.absolute_path],
    )
    errors += [_message(error) for error in found]
    if errors:
        raise ValueError(f"{label}: " + "; ".join(errors))
