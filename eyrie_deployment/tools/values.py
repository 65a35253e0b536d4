"""Deployment values: the parameters books see as ``values``.

A deployment's values are its type's defaults, overridden by its scope's
section for the type, overridden by its own (top-level keys replace, they are
not merged deeper). The keys Eyrie's shipped books use are checked here when a
scope or deployment is saved, so that a typo is refused at once instead of
failing a job against the cluster later. Unknown keys are allowed: custom books
may use their own.
"""

import ipaddress
import json
import re

DNS_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Kubernetes resource quantity (binary or decimal suffix), as in 10Gi or 500M.
QUANTITY_RE = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
# PostgreSQL major versions Crunchy PGO 5 runs.
POSTGRES_VERSIONS = (13, 14, 15, 16, 17)
MAX_REPLICAS = 50


class ValuesError(ValueError):
    """A value is refused; the message names the key and how to fix it."""


def parse_json_object(text):
    """The JSON object in ``text`` (empty means ``{}``)."""
    try:
        values = json.loads(text or "{}")
    except ValueError as error:
        raise ValuesError(
            f"not valid JSON ({error}); write a JSON object, "
            'for example {"replicas": 2}'
        ) from error
    if not isinstance(values, dict):
        raise ValuesError(
            'must be a JSON object, for example {"replicas": 2}, '
            f"not a {type(values).__name__}"
        )
    return values


def check_hostname(value, key="hostname"):
    """``value`` is a DNS name such as ``acme.preview.example.com``."""
    labels = value.split(".") if isinstance(value, str) else []
    if (
        not labels
        or len(value) > 253
        or not all(len(label) <= 63 and DNS_LABEL_RE.match(label) for label in labels)
    ):
        raise ValuesError(
            f"'{key}' is {value!r}: use a DNS name of lower-case letters, digits, "
            "'-' and '.', such as acme.preview.example.com"
        )


def _check_dns_target(value, key):
    try:
        ipaddress.ip_address(value)
    except (TypeError, ValueError):
        check_hostname(value, key)


def _check_quantity(value, key):
    if not isinstance(value, str) or not QUANTITY_RE.match(value):
        raise ValuesError(
            f"'{key}' is {value!r}: use a Kubernetes quantity such as 10Gi or 500Mi"
        )
    if not float(re.match(r"[0-9.]+", value).group()):
        raise ValuesError(f"'{key}' is {value!r}: it must be more than 0")


def _check_count(maximum):
    def check(value, key):
        if (
            not isinstance(value, int)
            or isinstance(value, bool)
            or not 0 <= value <= maximum
        ):
            raise ValuesError(
                f"'{key}' is {value!r}: use a whole number from 0 to {maximum}"
            )

    return check


def _check_image(value, key):
    if not isinstance(value, str) or not value or any(c.isspace() for c in value):
        raise ValuesError(
            f"'{key}' is {value!r}: use a container image reference such as odoo:18.0"
        )


def _check_optional_name(value, key):
    if value in ("", None):
        return
    if not isinstance(value, str) or not all(
        DNS_LABEL_RE.match(part) for part in value.split(".")
    ):
        raise ValuesError(
            f"'{key}' is {value!r}: use a Kubernetes object name (lower-case "
            "letters, digits, '-' and '.'), or leave it empty"
        )


def _check_postgres_version(value, key):
    if value not in POSTGRES_VERSIONS or isinstance(value, bool):
        versions = ", ".join(map(str, POSTGRES_VERSIONS))
        raise ValuesError(f"'{key}' is {value!r}: use one of {versions}")


def _check_user_name(value, key):
    if not isinstance(value, str) or not DNS_LABEL_RE.match(value):
        raise ValuesError(
            f"'{key}' is {value!r}: use a PostgreSQL user name of lower-case "
            "letters, digits and '-', such as odoo"
        )


def _check_users(value, key):
    if not isinstance(value, list) or not value:
        raise ValuesError(f"'{key}' is {value!r}: use a list of user names")
    for user in value:
        _check_user_name(user, key)


VALUE_CHECKS = {
    "hostname": check_hostname,
    "dns_target": _check_dns_target,
    "image": _check_image,
    "replicas": _check_count(MAX_REPLICAS),
    "workers": _check_count(64),
    "storage": _check_quantity,
    "database_storage": _check_quantity,
    "backup_storage": _check_quantity,
    "cpu_request": _check_quantity,
    "memory_limit": _check_quantity,
    "storage_class": _check_optional_name,
    "ingress_class": _check_optional_name,
    "tls_secret": _check_optional_name,
    "postgres_version": _check_postgres_version,
    "db_user": _check_user_name,
    "users": _check_users,
}


def check_values(values):
    """Raise ``ValuesError`` for the first known key with a bad value."""
    for key, value in values.items():
        check = VALUE_CHECKS.get(key)
        if check:
            check(value, key)
