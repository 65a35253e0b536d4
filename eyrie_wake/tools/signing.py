"""The signed calls into Eyrie: from a cluster's waker (``/eyrie/wake``)
and from an instance's activity module (``/eyrie/activity``).

Both sign ``<timestamp>.<body>`` with HMAC-SHA256: the waker with its
cluster's key, an instance with a key derived from it for its deployment
alone (``deployment_key``), so that an instance can speak only for itself.
A call older or newer than ``MAX_SKEW_SECONDS`` is refused; a replay within
that window is refused by the nonces Eyrie keeps (``eyrie.wake.nonce``).
"""

import hashlib
import hmac
import json
import re
import time

MAX_SKEW_SECONDS = 300
MAX_BODY_BYTES = 16 * 1024
SIGNATURE_RE = re.compile(r"^sha256=([0-9a-f]{64})$")
NONCE_RE = re.compile(r"^[0-9a-f]{16,64}$")


class SignatureRefused(Exception):
    """The call is not signed as it must be; ``status`` is the HTTP answer."""

    def __init__(self, message, status=401):
        super().__init__(message)
        self.status = status


def sign(key, timestamp, body):
    """``sha256=<hex>``: the signature of ``body`` (bytes) at ``timestamp``."""
    message = f"{int(timestamp)}.".encode() + body
    return "sha256=" + hmac.new(key.encode(), message, hashlib.sha256).hexdigest()


def deployment_key(cluster_key, deployment_id):
    """The key an instance signs its reports with: derived from the
    cluster's, it signs for this deployment only."""
    return hmac.new(
        cluster_key.encode(), f"activity:{int(deployment_id)}".encode(), hashlib.sha256
    ).hexdigest()


def verify(key, headers, body, now=None):
    """The JSON object of ``body`` if ``headers`` sign it with ``key`` at a
    time close to ``now``; raises ``SignatureRefused`` otherwise."""
    if len(body) > MAX_BODY_BYTES:
        raise SignatureRefused("the body is over 16 KiB", status=413)
    timestamp = headers.get("X-Eyrie-Timestamp") or ""
    signature = headers.get("X-Eyrie-Signature") or ""
    if not timestamp.isdigit() or not SIGNATURE_RE.match(signature):
        raise SignatureRefused("the call is not signed (X-Eyrie-Timestamp/Signature)")
    if not key or not hmac.compare_digest(sign(key, int(timestamp), body), signature):
        raise SignatureRefused("the signature does not match the body")
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_SKEW_SECONDS:
        raise SignatureRefused("the timestamp is more than 5 minutes away from now")
    try:
        payload = json.loads(body)
    except ValueError:
        raise SignatureRefused("the body is not JSON", status=400) from None
    if not isinstance(payload, dict) or not NONCE_RE.match(
        str(payload.get("nonce") or "")
    ):
        raise SignatureRefused(
            "the body is not a JSON object with a hex 'nonce'", status=400
        )
    return payload
