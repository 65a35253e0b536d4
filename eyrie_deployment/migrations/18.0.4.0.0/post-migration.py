"""18.0.4.0.0: backups. Clusters still on the shipped list of allowed kinds
get VolumeSnapshot (the Odoo backup book snapshots the filestore); a list a
manager edited is left as it is, and the upgrade log says so."""

import logging

from odoo import SUPERUSER_ID, api

from odoo.addons.eyrie_deployment.tools.confinement import (
    DEFAULT_ALLOWED_KINDS,
    parse_allowed_kinds,
)

_logger = logging.getLogger(__name__)
SNAPSHOT_KIND = "snapshot.storage.k8s.io/VolumeSnapshot"


def migrate(cr, version):
    if not version:
        return
    env = api.Environment(cr, SUPERUSER_ID, {})
    add_snapshot_kind(env)


def add_snapshot_kind(env):
    previous = set(DEFAULT_ALLOWED_KINDS) - {SNAPSHOT_KIND}
    for cluster in env["eyrie.cluster"].with_context(active_test=False).search([]):
        kinds = parse_allowed_kinds(cluster.allowed_kinds)
        if SNAPSHOT_KIND in kinds:
            continue
        if kinds == previous:
            cluster.allowed_kinds = "\n".join(DEFAULT_ALLOWED_KINDS)
        else:
            _logger.warning(
                "Cluster %s has its own allowed kinds: add %s to them for the "
                "filestore snapshots of Odoo backups.",
                cluster.name,
                SNAPSHOT_KIND,
            )
