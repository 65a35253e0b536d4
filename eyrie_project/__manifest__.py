# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
{
    "name": "Eyrie Projects",
    "summary": "Branches become environments: production, neutralized staging "
    "and tested development builds from a git repository, driven by push",
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
        "security/eyrie_project_security.xml",
        "security/ir.model.access.csv",
        "data/queue_job_data.xml",
        "data/ir_cron_data.xml",
        "views/eyrie_project_branch_views.xml",
        "views/eyrie_project_views.xml",
    ],
    "demo": ["demo/eyrie_project_demo.xml"],
    "assets": {
        "web.assets_tests": [
            "eyrie_project/static/tests/tours/**/*",
        ],
    },
}
