"""18.0.6.0.0: backups restored as they were, clones that keep their lineage,
PostgreSQL deployments used only by the Odoo deployments their owner allows.

- Every job in progress gets its queue job (a chained one waits for the
  previous job's), as jobs have from their creation from now on.
- The changed steps nobody edited get the new templates (a backup prints its
  pgBackRest set; a restore or a clone of a backup restores that set; an
  Odoo's database is closed to the server's other roles).
- Clones keep their source's name (the lineage outlives a dropped source).
- An Odoo already on a shared PostgreSQL deployment keeps the role it used
  (its database belongs to it), and that deployment allows it: it was using
  it. New ones get a role of their own.
"""

import json
import logging

from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.shipped_books import (
    SHIPPED_IN_18_0_5,
    refresh_unmodified_steps,
)

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    # Chained jobs had no queue job until the one before them was done; each
    # job now has one from the start, waiting for the previous one's.
    env["eyrie.job"]._enqueue_after_upgrade()
    refresh_unmodified_steps(
        env,
        SHIPPED_IN_18_0_5,
        change="backups restored by their pgBackRest set, closed Odoo databases",
    )
    cr.execute(
        """
        UPDATE eyrie_deployment clone SET cloned_from_name = source.name
          FROM eyrie_deployment source
         WHERE clone.cloned_from_id = source.id AND clone.cloned_from_name IS NULL
        """
    )
    consumers = (
        env["eyrie.deployment"]
        .with_context(active_test=False)
        .search(
            [
                ("deployment_type", "=", "odoo"),
                ("database_mode", "=", "shared"),
                ("database_deployment_id", "!=", False),
            ]
        )
    )
    for odoo in consumers:
        database = odoo.database_deployment_id
        database.database_consumer_ids = [(4, odoo.id)]
        if odoo.repository_state == "draft":
            continue
        own = json.loads(odoo.values or "{}") or {}
        role = own.get("db_user") or odoo._effective_values().get("db_user")
        odoo.database_role_kept = role
        _logger.info(
            "Eyrie: Odoo deployment %s keeps PostgreSQL role %s on %s",
            odoo.name,
            role,
            database.name,
        )
