"""Deployment values: the parameters books see as ``values``.

A deployment's values are its type's defaults, overridden by its scope's
section for the type, overridden by its own (top-level keys replace, they are
not merged deeper). Values are data: whatever a user types reaches a book
only through a YAML-safe filter, and is checked here when a scope or
deployment is saved, so that a typo or an injection is refused at once
instead of failing (or succeeding) against the cluster later:

- each deployment type declares the keys it accepts (``_<type>_value_keys``)
  and a scope may accept more for its custom books; any other key is refused;
- the keys the shipped books read have a check of their own (``VALUE_CHECKS``);
- no string anywhere in the values may hold a control character (a newline
  would start a new YAML line, or a new document).
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
# What a DNS provider accepts as a record's TTL, in seconds.
DNS_TTL_RANGE = (30, 86400)
# A PostgreSQL database name Odoo's --db-filter (a regex) matches literally.
DB_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
# Databases of the PostgreSQL server itself: never an Odoo's, never dropped.
RESERVED_DB_NAMES = frozenset({"postgres", "template0", "template1"})
# The roles Eyrie makes for the Odoo deployments on a shared database.
RESERVED_ROLE_PREFIX = "eyrie-"
# C0 and C1 control characters, DEL and the Unicode line separators.
CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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
        if user.startswith(RESERVED_ROLE_PREFIX):
            raise ValuesError(
                f"'{key}' holds {user!r}: names starting with "
                f"'{RESERVED_ROLE_PREFIX}' are the roles Eyrie makes for the Odoo "
                "deployments allowed on this database; choose another name"
            )


def _check_dns_ttl(value, key):
    low, high = DNS_TTL_RANGE
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not low <= value <= high
    ):
        raise ValuesError(
            f"'{key}' is {value!r}: use a whole number of seconds from {low} to {high}"
        )


def _check_db_name(value, key):
    if not isinstance(value, str) or not DB_NAME_RE.match(value):
        raise ValuesError(
            f"'{key}' is {value!r}: use a database name of at most 63 lower-case "
            "letters, digits, '_' and '-', starting with a letter or digit"
        )
    if value in RESERVED_DB_NAMES:
        raise ValuesError(
            f"'{key}' is {value!r}: that database belongs to the PostgreSQL server; "
            "choose another name"
        )


def _check_flag(value, key):
    if not isinstance(value, bool):
        raise ValuesError(f"'{key}' is {value!r}: use true or false")


VALUE_CHECKS = {
    "filestore_snapshot": _check_flag,
    "filestore_archive": _check_flag,
    "demo": _check_flag,
    "snapshot_class": _check_optional_name,
    "mail_catcher_image": _check_image,
    "git_image": _check_image,
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
    "dns_ttl": _check_dns_ttl,
    "db_name": _check_db_name,
}


def check_values(values, accepted=None, checks=None):
    """Raise ``ValuesError`` for the first refused key or value.

    ``accepted``: the keys allowed (``None``: any key); the others are refused,
    naming the accepted ones. ``checks``: {key: check} of a type's own keys,
    besides ``VALUE_CHECKS``."""
    if accepted is not None:
        unknown = sorted(set(values) - set(accepted))
        if unknown:
            raise ValuesError(
                f"'{unknown[0]}' is not a value this deployment accepts; use one of "
                f"{', '.join(sorted(accepted))}"
            )
    for key, value in values.items():
        _check_plain_data(value, key)
        check = (checks or {}).get(key) or VALUE_CHECKS.get(key)
        if check:
            check(value, key)


def _check_plain_data(value, key):
    """Strings, numbers, booleans, lists and objects of them; no string with a
    control character, at any depth."""
    if isinstance(value, str):
        if CONTROL_RE.search(value):
            raise ValuesError(
                f"'{key}' holds a control character (a newline, tab, ...): "
                "write it on one line, without control characters"
            )
    elif isinstance(value, list):
        for item in value:
            _check_plain_data(item, key)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_plain_data(name, key)
            _check_plain_data(item, key)
    elif value is not None and not isinstance(value, (int, float, bool)):
        raise ValuesError(f"'{key}' must be plain JSON data")
