"""The shipped books' templates on a database installed before: the books
are ``noupdate`` data (managers edit them), so a module update alone never
changes them. ``refresh_unmodified_steps`` rewrites the steps still as an
earlier version shipped them, and leaves the edited ones, saying which."""

import hashlib
import logging

from lxml import etree

from odoo.tools.misc import file_path

_logger = logging.getLogger(__name__)

DATA_FILES = (
    "data/eyrie_book_pgo_data.xml",
    "data/eyrie_book_odoo_data.xml",
    "data/eyrie_book_backup_data.xml",
)
# Each step's template as 18.0.1.0.0 shipped it (values rendered bare,
# before "values are data"): xml id without "eyrie_book_", and the first 32
# hex digits of its SHA-256.
SHIPPED_IN_18_0_1 = {
    "odoo_initialize_namespace": "ff921f6b1427cf5f4891aa8f6d1ef20d",
    "odoo_initialize_secret": "2b2e3d9b409b4e22db3e20111f660e25",
    "odoo_initialize_filestore": "e747565bf754fc0e6c92728a9211619b",
    "odoo_initialize_database": "c6a486f266bde5b2b2af64edb42f1d60",
    "odoo_deploy_database": "1931e681723b334b09d4cc8d04af8e66",
    "odoo_deploy_database_ready": "22eb31ebd26d373ef4d7363ccc6d7067",
    "odoo_deploy_scripts": "b2b77bf2681b671e4b9d6b9dd1df20b0",
    "odoo_deploy_workload": "d8e4325190cf2d979b0b989f2122928f",
    "odoo_deploy_network": "ff73c418b5746c75edcd202dadf996b8",
    "odoo_deploy_dns": "40c1b0eb5b9e2a6ffc1e7753d5123cfc",
    "odoo_deploy_rollout": "2ae0fd1e9cba34c1f911c1d31f29164f",
    "odoo_pause_scale": "4e241ec86b7aa078dc476f3b73ac5722",
    "odoo_pause_database": "41e67b9700909352d3862c5373733c92",
    "odoo_drop_dns": "14492e93721c59c4b963a5b2189cad0a",
    "odoo_drop_workload": "bef9b112b7ab224e3d9cf1342734b60c",
    "odoo_drop_own_database": "1576d3e07144d558000f226ec88ba529",
    "odoo_drop_own_database_gone": "54d81fc21e992bfa1cccf98813ad3e3a",
    "odoo_drop_shared_database": "56503829b56db1d2381ab73aa819609e",
    "odoo_drop_shared_database_done": "890a2c145d4c83edf580969f1535c3aa",
    "odoo_drop_shared_database_cleanup": "654736c12ef55c3af080250b6797d285",
    "odoo_drop_namespace": "ff921f6b1427cf5f4891aa8f6d1ef20d",
    "odoo_drop_namespace_gone": "cd14a95fcf1a1ad26b5449fa8e127755",
    "pgo_initialize_namespace": "ff921f6b1427cf5f4891aa8f6d1ef20d",
    "pgo_deploy_users": "dafc9cddfab2a1b25e656924cdcc1560",
    "pgo_deploy_cluster": "4b8fa774da0e171839861e13a6007dc9",
    "pgo_deploy_ready": "79d9659c9515efae244f3ad900a4ef08",
    "pgo_pause_shutdown": "ddbed32e622eaa28b44c4e407a2b7261",
    "pgo_drop_cluster": "f0927a6adc37156f56a2fdc17df9f6b2",
    "pgo_drop_cluster_gone": "a21f039a7a2a020080ec010ff3ccadcf",
    "pgo_drop_namespace": "ff921f6b1427cf5f4891aa8f6d1ef20d",
    "pgo_drop_namespace_gone": "cd14a95fcf1a1ad26b5449fa8e127755",
}

# The steps 18.0.5.0.0 changes, as 18.0.4.0.0 shipped them: the clone's
# preparation fetches the filestore archive, and its wait ends when it fails;
# a PostgreSQL deployment's first deploy starts a clone from its source.
SHIPPED_IN_18_0_4 = {
    "odoo_initialize_clone_job": "b00a7e3ae245879a4d810ff89753d298",
    "odoo_initialize_clone_job_done": "a2a7020110fa4a7470674d3e934e4060",
    "pgo_deploy_cluster": "0a8ca937bc6f5377e2b82b34b444b2e8",
    "pgo_deploy_ready": "7e3e6eebd61eca53c5d0a2a709f5230c",
}

# The steps 18.0.6.0.0 changes, as 18.0.5.0.0 shipped them: a backup prints
# its pgBackRest set, a restore or a clone of a backup restores that set, and
# an Odoo's database is closed to the server's other roles.
SHIPPED_IN_18_0_5 = {
    "pgo_deploy_cluster": "0a345a8c4240e4c6dffd8215d5bf32ee",
    "odoo_initialize_database": "34704ae372fb6a83e09c348ed73b4130",
    "odoo_deploy_scripts": "b2b77bf2681b671e4b9d6b9dd1df20b0",
    "odoo_backup_database": "5eacfc769cd27d6955cc91c29190cff2",
    "odoo_restore_database": "9064371325496e14634e6f83c6282864",
    "pgo_backup_request": "5eacfc769cd27d6955cc91c29190cff2",
    "pgo_restore_request": "9064371325496e14634e6f83c6282864",
}

# The steps 18.0.7.0.0 changes, as 18.0.6.0.0 shipped them: a step that may
# do nothing says why in a "{# skipped: ... #}" comment, which the job log
# prints when it is skipped.
SHIPPED_IN_18_0_6 = {
    "odoo_initialize_database": "756140a4926eb20eb2e6fccdf61cfee9",
    "odoo_initialize_clone_database_ready": "30fe6dfc7258481e2cc325d9f1155771",
    "odoo_initialize_clone_job_reset": "601c50cddcce88b4fbcab86ae1f1a998",
    "odoo_initialize_clone_job": "434cbe9d73fb6e769810f5a356ba3fa4",
    "odoo_initialize_clone_job_done": "6d4f15aeb102a3a5aaa054ef50a8b356",
    "odoo_deploy_database": "1931e681723b334b09d4cc8d04af8e66",
    "odoo_deploy_backup_settings": "c092b22f083b75e14bc38e00a66faefe",
    "odoo_deploy_database_ready": "22eb31ebd26d373ef4d7363ccc6d7067",
    "odoo_deploy_mail_catcher": "5286636dbbe449481f1748b91d0967a4",
    "odoo_deploy_mail_catcher_off": "71a3feeee7429a5e2fd40d0b2007ab42",
    "odoo_pause_database": "41e67b9700909352d3862c5373733c92",
    "odoo_drop_own_database": "1576d3e07144d558000f226ec88ba529",
    "odoo_drop_own_database_gone": "54d81fc21e992bfa1cccf98813ad3e3a",
    "odoo_drop_shared_database": "b6c5ccbe7fa4f6514df661d8b89fca8b",
    "odoo_drop_shared_database_done": "4b43833e506804317b3d70d55eb11638",
    "odoo_drop_shared_database_cleanup": "38f5a82d00638a9114a32d9daa372166",
    "odoo_backup_start": "6cd490bc1e49d1fad2043375ef624d35",
    "odoo_backup_started": "c4d246d3522677f906d2dc1773000928",
    "odoo_backup_filestore": "82e66a2b087a98efddd2125cef3b9058",
    "odoo_backup_filestore_archive": "bcd8857bdf759ef40794fdcc59249ae8",
    "odoo_backup_filestore_done": "8ed296f542630f58eaf68154915054b9",
    "odoo_backup_filestore_archive_done": "efb3e56d71ec9dffa2524a34ee83032f",
    "odoo_backup_stop": "b15209f7beb6d320bb0f8d776529338f",
    "odoo_restore_filestore_remove": "1fc199f88a9b668421c15dddb3d929cd",
    "odoo_restore_filestore_gone": "0bc8ba2df46be3e1cd63159c5f4287d4",
    "odoo_restore_filestore": "7037d2c215d63ced7b8624453231adac",
    "odoo_restore_filestore_archive": "4e7e78f7cce4f385b7bfe835535f105a",
    "odoo_restore_filestore_archive_done": "e202112c8105eccd41518caf7925a2ef",
    "pgo_backup_start": "6cd490bc1e49d1fad2043375ef624d35",
    "pgo_backup_stop": "b15209f7beb6d320bb0f8d776529338f",
}

# The steps 18.0.9.0.0 changes, as 18.0.8.0.0 shipped them: the Odoo pods
# fetch the addons repositories at their pinned commits, and pull the images
# with the scope's registry credentials.
SHIPPED_IN_18_0_8 = {
    "odoo_deploy_workload": "351b7d7650201a098d5eeccbc03284bf",
    "odoo_initialize_secret": "2b2e3d9b409b4e22db3e20111f660e25",
    "odoo_deploy_credentials": "ecdd01d8d88e45e7c916f39e07a8bb78",
    "odoo_initialize_clone_job": "02c06e967bd2a4a29dcc8f620dd8414f",
}

# The steps 18.0.10.0.0 changes, as 18.0.9.0.0 shipped them: a new database
# gets demo data only where the values ask for it, and the code's scripts
# include the test run of the modules' tests.
SHIPPED_IN_18_0_9 = {
    "odoo_deploy_code": "0fdf62af376c38575fd9bba36f652f55",
    "odoo_deploy_upgrade": "1327fc020e89fdf23960cfa5f2ef0f71",
}

# The steps 18.0.11.0.0 changes, as 18.0.10.0.0 shipped them: the Ingress
# leaves the Service's step for a route step after the rollout, the workload
# may load a server-wide module, and the pause may leave the database up.
SHIPPED_IN_18_0_10 = {
    "odoo_deploy_network": "8a60ad24ad5fc283d68b7ec340383018",
    "odoo_deploy_workload": "0ed8be55841ca5ffa77dc7e44cd973f8",
    "odoo_pause_database": "30f8a8a25f729cc49235a5d2f433550a",
}

XML_ID_PREFIX = "eyrie_book_"


def _digest(text):
    return hashlib.sha256((text or "").encode()).hexdigest()[:32]


def shipped_templates():
    """{xml id: template} of the steps this version ships."""
    templates = {}
    for name in DATA_FILES:
        with open(file_path(f"eyrie_deployment/{name}"), "rb") as handle:
            root = etree.parse(handle).getroot()
        for record in root.iter("record"):
            if record.get("model") == "eyrie.deployment.book.step":
                template = record.find("field[@name='template']")
                templates[record.get("id")] = template.text
    return templates


def refresh_unmodified_steps(env, previous=None, change=None):
    """Give the shipped steps still as ``previous`` (default: as 18.0.1.0.0
    shipped them) this version's template. Returns (refreshed, kept) xml ids:
    kept ones were edited by a manager and need a look. With ``previous``
    given, only its steps are looked at; ``change`` says what their new
    templates do, for the log."""
    listed_only = previous is not None
    if not listed_only:
        previous = SHIPPED_IN_18_0_1
        change = "values rendered with '| to_json'"
    refreshed, kept = [], []
    for xml_id, template in shipped_templates().items():
        key = xml_id.removeprefix(XML_ID_PREFIX)
        if listed_only and key not in previous:
            continue
        step = env.ref(f"eyrie_deployment.{xml_id}", raise_if_not_found=False)
        if not step or step.template == template:
            continue
        if previous.get(key) == _digest(step.template):
            step.template = template
            refreshed.append(xml_id)
        else:
            kept.append(xml_id)
    if kept:
        _logger.warning(
            "Eyrie: shipped book steps edited since they were installed keep "
            "their text; compare them with this version's (%s): %s",
            change,
            ", ".join(kept),
        )
    return refreshed, kept
