import logging

import psycopg2
from werkzeug.exceptions import RequestEntityTooLarge

from odoo import http
from odoo.http import request

from ..tools.webhooks import (
    Delivery,
    WebhookRefused,
    events,
    payload_repositories,
    repository_key,
)

_logger = logging.getLogger(__name__)

# A push of hundreds of commits is well under this; GitHub caps at 25 MB.
MAX_BODY_BYTES = 1024 * 1024


class EyrieProjectWebhook(http.Controller):
    """One route per project for its git host's webhooks. Whatever comes in
    is hostile until its signature holds: a refusal is a 4xx and a log
    line, and changes nothing. An accepted delivery queues its events; the
    work runs in a queue job, never in the request."""

    @http.route(
        "/eyrie/projects/<int:project_id>/webhook",
        type="http",
        auth="public",
        methods=["POST"],
        csrf=False,
        save_session=False,
    )
    def webhook(self, project_id, **_params):
        peer = request.httprequest.remote_addr
        try:
            status, answer = self._receive(project_id)
        except WebhookRefused as refused:
            _logger.warning(
                "Eyrie: webhook of project %s from %s refused (%s): %s",
                project_id,
                peer,
                refused.status,
                refused,
            )
            return request.make_json_response(
                {"status": "refused", "reason": str(refused)}, status=refused.status
            )
        _logger.info(
            "Eyrie: webhook of project %s from %s: %s", project_id, peer, answer
        )
        return request.make_json_response(answer, status=status)

    def _receive(self, project_id):
        # A webhook has no Odoo user: its signature, checked below against
        # the project's secret (a manager's field), is its authority.
        project = request.env["eyrie.project"].sudo().browse(project_id).exists()
        if not project or not project.active:
            raise WebhookRefused(404, "no such project")
        body = self._body()
        delivery = Delivery(request.httprequest.headers, body)
        delivery.verify(project.webhook_secret)
        payload = delivery.payload()
        found, reason = events(delivery.provider, delivery.event, payload)
        if not found:
            return 200, {"status": "ignored", "reason": reason}
        repositories = payload_repositories(delivery.provider, payload)
        if repository_key(project.repository_url) not in repositories:
            raise WebhookRefused(
                422, "the payload is about another repository than the project's"
            )
        self._remember(project, delivery)
        project._queue_events(
            found,
            request.env._(
                "%(provider)s webhook, %(event)s",
                provider=delivery.provider,
                event=delivery.event,
            ),
        )
        return 202, {"status": "queued", "events": len(found)}

    def _body(self):
        httprequest = request.httprequest
        length = httprequest.content_length
        if length is not None and length > MAX_BODY_BYTES:
            raise WebhookRefused(413, f"the body is over {MAX_BODY_BYTES} bytes")
        # Werkzeug stops reading past it, a chunked body too.
        httprequest.max_content_length = MAX_BODY_BYTES
        try:
            body = httprequest.get_data(cache=False)
        except RequestEntityTooLarge:
            raise WebhookRefused(
                413, f"the body is over {MAX_BODY_BYTES} bytes"
            ) from None
        if not body:
            raise WebhookRefused(400, "the body is empty")
        return body

    def _remember(self, project, delivery):
        """Record the delivery; the same body again is a replay (409)."""
        try:
            with request.env.cr.savepoint():
                request.env["eyrie.project.delivery"].sudo().create(
                    {
                        "project_id": project.id,
                        "digest": delivery.digest,
                        "delivery": delivery.delivery,
                        "provider": delivery.provider,
                        "event": delivery.event,
                    }
                )
        except psycopg2.IntegrityError:
            raise WebhookRefused(
                409, "this delivery was already received (a replay)"
            ) from None
