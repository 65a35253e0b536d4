"""18.0.7.0.0: a day in the browser.

- The shipped steps that may do nothing, as 18.0.6.0.0 shipped them, get
  the templates whose ``{# skipped: ... #}`` comment the job log prints.
- The piles of drop warnings of earlier versions become one activity per
  deployment, true to its drop time (or withdrawn, saying why).
- A deployment deployed again after a pause no longer shows when it was
  paused.
"""

import logging

from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.shipped_books import (
    SHIPPED_IN_18_0_6,
    refresh_unmodified_steps,
)

_logger = logging.getLogger(__name__)


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    refresh_unmodified_steps(
        env, SHIPPED_IN_18_0_6, change="skipped steps say why in the job log"
    )
    _collapse_drop_warnings(env)
    cr.execute(
        """
        UPDATE eyrie_deployment SET paused_at = NULL
         WHERE repository_state = 'deploy' AND paused_at IS NOT NULL
        """
    )


def _collapse_drop_warnings(env):
    deployments = env["eyrie.deployment"].with_context(active_test=False)
    warnings = deployments.search([])._drop_warnings()
    piles = warnings.grouped("res_id")
    for pile in piles.values():
        # The newest is the one a later warning would have updated.
        pile.sorted("id")[:-1].unlink()
    if piles:
        deployments.browse(list(piles))._sync_drop_warnings()
        _logger.info(
            "Eyrie: drop warnings collapsed to one per deployment on %s deployment(s)",
            len(piles),
        )
