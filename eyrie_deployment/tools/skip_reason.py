"""Why a book step did nothing.

A step whose template renders no object does nothing, and the job log says
why. The template may say it in a comment, which also tells its readers
when the step does nothing::

    {# skipped: the deployment is not a clone #}
    {% if values.get("clone") %}
    ...
    {% endif %}

Without one, the reason is read from the template itself: when everything
it outputs is inside ``{% if %}`` blocks (no ``elif`` or ``else``), nothing
rendered because their conditions were false, and the log names them.
"""

import functools
import re

from jinja2 import Environment, TemplateSyntaxError

# Lexing only: the books' delimiters are Jinja2's defaults.
_LEXER = Environment()
_GIVEN = re.compile(r"\s*skipped\s*:\s*(?P<reason>.*?)\s*", re.IGNORECASE | re.DOTALL)
# Tags that open a block closed by ``end<name>``; ``set`` only without ``=``.
_BLOCKS = frozenset(
    {"if", "for", "macro", "call", "filter", "block", "with", "autoescape", "trans"}
)


@functools.lru_cache(maxsize=512)
def skip_reason(source):
    """``(given, conditions)`` of the template ``source``: the reason its
    ``{# skipped: ... #}`` comment gives (or None), and the conditions of
    the ``{% if %}`` blocks that hold all it outputs, as written (empty when
    something may output outside them)."""
    try:
        tokens = list(_LEXER.lex(source or ""))
    except TemplateSyntaxError:
        return None, ()
    for _lineno, kind, value in tokens:
        given = _GIVEN.fullmatch(value) if kind == "comment" else None
        if given and given["reason"]:
            return " ".join(given["reason"].split()).rstrip("."), ()
    return None, _top_level_conditions(tokens)


def _top_level_conditions(tokens):
    pieces = _pieces(tokens)
    if pieces is None:
        return ()
    conditions = []
    depth = 0
    for name, source in pieces:
        if name == "if":
            if depth == 0:
                conditions.append(source)
            depth += 1
        elif name.startswith("end"):
            depth -= 1
        elif depth == 1 and name in ("elif", "else"):
            # A branch that printed nothing ran, or none did: which one is
            # not known here.
            return ()
        elif name in _BLOCKS or (name == "set" and "=" not in source):
            if depth == 0 and name != "set":
                return ()
            depth += 1
        elif depth == 0 and name not in ("set", "import", "from"):
            # Output outside any condition, or a tag that may print.
            return ()
    return tuple(dict.fromkeys(conditions))


def _pieces(tokens):
    """The template in order: ``(name, source)`` for each tag (``("if",
    'values.get("clone")')``), ``("output", "")`` for what may print (text
    that is not blank, an expression, a raw block). None when a tag never
    ends (not valid Jinja2, which the books refuse when it is saved)."""
    pieces = []
    stream = iter(tokens)
    for _lineno, kind, value in stream:
        if kind == "block_begin":
            words = []
            for _line, word_kind, word in stream:
                if word_kind == "block_end":
                    break
                if word_kind != "whitespace" or words:
                    words.append(word)
            else:
                return None
            if words:
                pieces.append((words[0], "".join(words[1:]).strip()))
        elif kind in ("variable_begin", "raw_begin") or (
            kind == "data" and value.strip()
        ):
            pieces.append(("output", ""))
    return pieces
