# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
{
    "name": "Eyrie Sleep and Wake",
    "summary": "Paused Odoo instances wake on their first request, pause when "
    "idle (the instance, then its database) and wake for their scheduled actions",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "website": "https://github.com/eyrie/eyrie",
    "author": "Eyrie",
    "maintainers": ["eyrie"],
    "license": "LGPL-3",
    "development_status": "Alpha",
    "installable": True,
    "depends": ["eyrie_deployment"],
    "data": [
        "security/ir.model.access.csv",
        "data/eyrie_wake_book_data.xml",
        "data/ir_cron_data.xml",
        "views/eyrie_cluster_views.xml",
        "views/eyrie_scope_views.xml",
        "views/eyrie_deployment_views.xml",
    ],
    "demo": ["demo/eyrie_wake_demo.xml"],
}
