"""Secrets out of every text a user reads: job logs and errors, the
deployment's error message and chatter, the Logs of its pods.

A secret reaches a message in more forms than the one Eyrie holds: an API
server or an admission webhook quotes the object it refuses (JSON or Go
quoting, newlines escaped), a Secret's data is base64, a URL percent-encodes
a password, a composite value (an ``s3.conf`` of two keys) is printed one
line at a time. ``Scrubber`` knows each secret in all these forms and
replaces any of them, longest first.
"""

import base64
import json
import re
import urllib.parse

MASK = "***"
# Shorter strings would mask ordinary words; generated secrets are longer.
MIN_LENGTH = 6


def _go_quoted(text):
    """``text`` as Go's ``%q`` writes it (strconv.Quote), without the quotes:
    JSON's escapes, but non-ASCII kept and \\x for other control bytes."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char == "\n":
            out.append("\\n")
        elif char == "\t":
            out.append("\\t")
        elif char == "\r":
            out.append("\\r")
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "".join(out)


def _base64_forms(text):
    raw = text.encode()
    forms = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        encoded = encode(raw).decode()
        forms |= {encoded, encoded.rstrip("=")}
    return forms


def forms_of(secret):
    """Every form of ``secret`` a message may hold: as it is, each of its
    lines, JSON- and Go-quoted, percent-encoded and base64."""
    text = str(secret)
    if len(text) < MIN_LENGTH:
        return set()
    pieces = {text} | {line.strip() for line in text.splitlines()}
    forms = set()
    for piece in pieces:
        if len(piece) < MIN_LENGTH:
            continue
        forms |= {
            piece,
            json.dumps(piece)[1:-1],
            json.dumps(piece, ensure_ascii=False)[1:-1],
            _go_quoted(piece),
            urllib.parse.quote(piece, safe=""),
            urllib.parse.quote_plus(piece),
        }
        forms |= _base64_forms(piece)
    # A composite value quoted whole: its lines joined by an escaped newline.
    forms |= {json.dumps(text)[1:-1], _go_quoted(text)} | _base64_forms(text)
    return {form for form in forms if len(form) >= MIN_LENGTH}


# A run of base64 (standard or URL-safe) long enough to hide a secret.
BASE64_RUN_RE = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


class Scrubber:
    """Replaces every form of the given secrets by ``***``, and any base64
    run whose decoded text holds one (a composite value encoded whole)."""

    def __init__(self, secrets=()):
        forms = set()
        texts = {str(secret) for secret in secrets if secret}
        self._raw = sorted(text for text in texts if len(text) >= MIN_LENGTH)
        for secret in self._raw:
            forms |= forms_of(secret)
        # Longest first: a form inside another is masked with it.
        ordered = sorted(forms, key=len, reverse=True)
        self._pattern = (
            re.compile("|".join(re.escape(form) for form in ordered))
            if ordered
            else None
        )

    def __bool__(self):
        return self._pattern is not None

    def __call__(self, text):
        if not text or self._pattern is None:
            return text
        return BASE64_RUN_RE.sub(self._mask_encoded, self._pattern.sub(MASK, text))

    def _mask_encoded(self, match):
        token = match.group()
        decoded = _decoded(token)
        if decoded and any(secret in decoded for secret in self._raw):
            return MASK
        return token


def _decoded(token):
    """The text a base64 run stands for, or None."""
    padded = token + "=" * (-len(token) % 4)
    for decode in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return decode(padded).decode("utf-8", errors="ignore")
        except ValueError:
            continue
    return None


def plain_strings(value):
    """The strings of plain data (dicts, lists), at any depth."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in plain_strings(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in plain_strings(item)]
    return [value] if isinstance(value, str) and value else []


def secret_strings(secrets, objects=()):
    """The strings to mask for a job: the books' ``secrets`` and, of the
    Secrets the book renders, the values a template built from them (an
    ``s3.conf`` holding two keys, as sent in base64 and decoded)."""
    found = plain_strings(secrets)
    raw = [text for text in found if len(text) >= MIN_LENGTH]
    for obj in objects:
        if obj.get("kind") != "Secret":
            continue
        values = plain_strings(obj.get("stringData") or {})
        for value in (obj.get("data") or {}).values():
            text = str(value)
            try:
                values += [text, base64.b64decode(text, validate=True).decode()]
            except (ValueError, UnicodeDecodeError):
                continue
        built = [text for text in values if any(secret in text for secret in raw)]
        found += built + [base64.b64encode(text.encode()).decode() for text in built]
    return found
