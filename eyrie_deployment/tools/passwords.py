"""Generated credentials that every consumer accepts as they are.

A password reaches a shell (the official Odoo image's entrypoint word-splits
its options), argparse (its ``wait-for-psql.py`` reads a leading ``-`` as an
option), libpq connection strings and URLs. Letters and digits only are safe
in all of them; 32 of them carry about 190 bits.
"""

import re
import secrets
import string

ALPHABET = string.ascii_letters + string.digits
LENGTH = 32
# What an existing credential must look like to be left as it is: anything
# that a consumer reads specially (a leading '-') is regenerated once.
_UNSAFE_RE = re.compile(r"^-|[^A-Za-z0-9_-]")


def generate_password():
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def is_unsafe(password):
    return (
        not isinstance(password, str)
        or not password
        or bool(_UNSAFE_RE.search(password))
    )
