# Copyright 2026 Eyrie
# License LGPL-3.0 or later (https://www.gnu.org/licenses/lgpl.html).
{
    "name": "Eyrie Redis",
    "summary": "Example deployment type for Eyrie: a Redis server",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "website": "https://github.com/eyrie/eyrie",
    "author": "Eyrie",
    "license": "LGPL-3",
    "depends": ["eyrie_deployment"],
    "data": ["data/eyrie_book_redis_data.xml"],
    "installable": True,
}
