# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
{
    "name": "Eyrie Deployments",
    "summary": "Run Odoo and PostgreSQL deployments on Kubernetes with "
    "lifecycle books, jobs and automatic pause/drop timers",
    "version": "18.0.11.0.0",
    "category": "Technical",
    "website": "https://github.com/eyrie/eyrie",
    "author": "Eyrie",
    "maintainers": ["eyrie"],
    "license": "LGPL-3",
    "development_status": "Alpha",
    "application": True,
    "installable": True,
    "depends": ["base", "mail", "queue_job"],
    "external_dependencies": {"python": ["Jinja2", "PyYAML", "kubernetes", "boto3"]},
    "data": [
        "security/eyrie_security.xml",
        "security/ir.model.access.csv",
        "security/eyrie_deployment_login_security.xml",
        "data/queue_job_data.xml",
        "data/eyrie_cluster_data.xml",
        "data/eyrie_book_pgo_data.xml",
        "data/eyrie_book_odoo_data.xml",
        "data/eyrie_book_backup_data.xml",
        "data/ir_cron_data.xml",
        "views/eyrie_job_views.xml",
        "views/eyrie_backup_views.xml",
        "views/eyrie_deployment_views.xml",
        "views/eyrie_deployment_odoo_views.xml",
        "views/eyrie_release_views.xml",
        "views/eyrie_test_run_views.xml",
        "views/eyrie_git_credential_views.xml",
        "views/eyrie_deployment_login_views.xml",
        "views/eyrie_deployment_book_views.xml",
        "views/eyrie_scope_views.xml",
        "views/eyrie_cluster_views.xml",
        "views/res_config_settings_views.xml",
        "views/eyrie_menus.xml",
    ],
    "demo": [
        "demo/eyrie_demo.xml",
    ],
    "assets": {
        "web.assets_backend": [
            "eyrie_deployment/static/src/**/*",
        ],
        "web.assets_tests": [
            "eyrie_deployment/static/tests/tours/**/*",
        ],
    },
}
