# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
{
    "name": "Eyrie Instance Activity",
    "summary": "Report the last use and the next scheduled action of this "
    "instance to Eyrie (server-wide module, loaded with --load)",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "website": "https://github.com/eyrie/eyrie",
    "author": "Eyrie",
    "license": "LGPL-3",
    "depends": ["base", "web"],
    "installable": True,
    "auto_install": False,
    "post_load": "post_load",
}
