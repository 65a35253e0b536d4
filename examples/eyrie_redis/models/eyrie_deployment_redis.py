from odoo import api, fields, models

REDIS_DEFAULT_VALUES = {"image": "redis:7.4", "storage": "1Gi", "storage_class": ""}


class EyrieDeploymentRedis(models.Model):
    """Deployment type ``redis``: one Redis server with a password."""

    _inherit = "eyrie.deployment"

    deployment_type = fields.Selection(
        selection_add=[("redis", "Redis")],
        ondelete={"redis": lambda records: records._unlink_type_rows()},
    )

    @api.private
    def redis_action_deploy(self):
        self._ensure_credentials(("redis_password",))
        return self._start_deploy()

    @api.private
    def redis_action_pause(self):
        return self._start_pause()

    @api.private
    def redis_action_drop(self):
        return self._start_drop()

    def _redis_default_books(self):
        return {
            action: f"eyrie_redis.eyrie_book_redis_{action}"
            for action in ("initialize", "deploy", "pause", "drop")
        }

    def _redis_default_values(self):
        return dict(REDIS_DEFAULT_VALUES)
