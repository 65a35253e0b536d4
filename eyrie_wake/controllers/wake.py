import logging
import re

from werkzeug.exceptions import RequestEntityTooLarge

from odoo import http
from odoo.http import request

from ..models.eyrie_deployment_activity import parse_reported_time
from ..tools.signing import MAX_BODY_BYTES, SignatureRefused, verify

_logger = logging.getLogger(__name__)

HOST_RE = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$")
# How long the waker waits before it asks again, by state.
RETRY_AFTER = {"waking": 5, "serving": 1, "refused": 300, "unknown": 300}


class EyrieWake(http.Controller):
    """The signed calls of the clusters: a waker asking to wake the
    deployment of a host, an instance reporting its activity. Both come
    from outside and are hostile until their signature holds; a refusal is
    a 4xx and a log line, and changes nothing."""

    @http.route(
        "/eyrie/wake",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=False,
        save_session=False,
    )
    def wake(self, **_params):
        try:
            answer = self._wake()
        except SignatureRefused as refused:
            return self._refused("wake", refused)
        return request.make_json_response(answer)

    @http.route(
        "/eyrie/activity",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=False,
        save_session=False,
    )
    def activity(self, **_params):
        try:
            answer = self._activity()
        except SignatureRefused as refused:
            return self._refused("activity report", refused)
        return request.make_json_response(answer)

    # ------------------------------------------------------------------

    def _wake(self):
        cluster_id = request.httprequest.headers.get("X-Eyrie-Cluster") or ""
        # The caller has no Odoo user: the cluster's key (a manager's field)
        # is its authority, checked in _verified.
        cluster = self._record("eyrie.cluster", cluster_id)
        payload = self._verified(f"cluster {cluster.id}", cluster.waker_key)
        host = str(payload.get("host") or "")
        kind = payload.get("kind")
        if not HOST_RE.match(host) or kind not in ("browser", "api"):
            raise SignatureRefused(
                "the body needs a 'host' name and a 'kind' (browser or api)", 400
            )
        deployment = (
            request.env["eyrie.deployment"]
            .sudo()  # the signed call acts for the system, on this cluster only
            .search(
                [("hostname", "=", host), ("scope_id.cluster_id", "=", cluster.id)],
                limit=1,
            )
        )
        if not deployment:
            state, message = (
                "unknown",
                request.env._("No instance is served at %(host)s.", host=host),
            )
        else:
            state, message = deployment._wake_on_request(host, kind)
        _logger.info("Eyrie: wake of %s from cluster %s: %s", host, cluster.id, state)
        return {"state": state, "message": message, "retry_after": RETRY_AFTER[state]}

    def _activity(self):
        deployment_id = request.httprequest.headers.get("X-Eyrie-Deployment") or ""
        # The instance has no Odoo user: its key, derived from its cluster's
        # for it alone, is its authority, checked in _verified.
        deployment = self._record("eyrie.deployment", deployment_id)
        cluster = deployment.scope_id.cluster_id
        key = cluster._activity_key(deployment) if cluster.waker_key else None
        payload = self._verified(f"deployment {deployment.id}", key)
        try:
            last_request = parse_reported_time(payload.get("last_request_at"))
            next_action = parse_reported_time(payload.get("next_scheduled_action_at"))
        except ValueError as error:
            raise SignatureRefused(str(error), 400) from None
        kept = deployment._record_activity(last_request, next_action)
        return {"status": "recorded", "changed": sorted(kept)}

    def _record(self, model, record_id):
        """The record a signed call names (as the system: the signature, not
        a user, says who may call); 404 for none."""
        if not record_id.isdigit():
            raise SignatureRefused(f"no {model} is named by the call", 404)
        # The key is a manager-only field: read for the check only.
        record = request.env[model].sudo().browse(int(record_id)).exists()
        if not record:
            raise SignatureRefused(f"no such {model}", 404)
        return record

    def _verified(self, sender, key):
        payload = verify(key, request.httprequest.headers, self._body())
        if not request.env["eyrie.wake.nonce"].sudo()._claim(sender, payload["nonce"]):
            raise SignatureRefused("this call was already received (a replay)", 409)
        return payload

    def _body(self):
        httprequest = request.httprequest
        length = httprequest.content_length
        if length is not None and length > MAX_BODY_BYTES:
            raise SignatureRefused("the body is over 16 KiB", 413)
        httprequest.max_content_length = MAX_BODY_BYTES
        try:
            return httprequest.get_data(cache=False)
        except RequestEntityTooLarge:
            raise SignatureRefused("the body is over 16 KiB", 413) from None

    def _refused(self, what, refused):
        _logger.warning(
            "Eyrie: %s from %s refused (%s): %s",
            what,
            request.httprequest.remote_addr,
            refused.status,
            refused,
        )
        return request.make_json_response(
            {"status": "refused", "reason": str(refused)}, status=refused.status
        )
