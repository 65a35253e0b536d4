"""Rendering of Deployment Book step templates.

A template is Jinja2 source that renders to YAML holding one or more
Kubernetes-style documents. Rendering happens in an immutable sandbox with
``StrictUndefined`` so that a typo in a variable name fails the job instead of
silently producing an empty string, and templates only ever see plain data
(dicts, strings, numbers), never ORM records.
"""

import base64
import functools
import json

import yaml
from jinja2 import (
    StrictUndefined,
    TemplateError,
    TemplateRuntimeError,
    TemplateSyntaxError,
)
from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateRenderError(Exception):
    """A template could not be rendered or parsed for one deployment."""


def _b64encode(value):
    if value is None:
        # Never the text "None" as a password: a secret is missing.
        raise TemplateRuntimeError("b64encode got no value (a secret is missing)")
    return base64.b64encode(str(value).encode()).decode()


def _to_json(value):
    # Jinja's own ``tojson`` escapes HTML characters, which is noise in YAML.
    return json.dumps(value, sort_keys=True)


def _make_environment():
    environment = ImmutableSandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    environment.filters["b64encode"] = _b64encode
    environment.filters["to_json"] = _to_json
    return environment


_ENVIRONMENT = _make_environment()
# libyaml's safe loader parses large books several times faster.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@functools.lru_cache(maxsize=512)
def _compiled(source):
    # Compiling is most of a small step's rendering time; a book's templates
    # are few and change rarely. Templates are immutable once compiled.
    return _ENVIRONMENT.from_string(source)


def check_syntax(source):
    """Raise ``TemplateSyntaxError`` when ``source`` is not valid Jinja2."""
    _ENVIRONMENT.parse(source or "")


def syntax_error_message(error):
    """Human-readable description of a ``TemplateSyntaxError``."""
    return f"line {error.lineno}: {error.message}"


def render_documents(source, context):
    """Render ``source`` with ``context`` and return its YAML documents.

    Empty documents (a trailing ``---``) are dropped. Every remaining document
    must be a mapping. Raises ``TemplateRenderError`` with a message that names
    the cause (undefined variable, broken YAML, ...).
    """
    try:
        rendered = _compiled(source or "").render(context)
    except TemplateSyntaxError as error:
        raise TemplateRenderError(
            f"template syntax error at {syntax_error_message(error)}"
        ) from error
    except TemplateError as error:
        raise TemplateRenderError(f"template error: {error}") from error
    try:
        documents = [
            doc
            for doc in yaml.load_all(rendered, Loader=_SafeLoader)
            if doc is not None
        ]
    except yaml.YAMLError as error:
        raise TemplateRenderError(
            f"rendered template is not valid YAML: {_yaml_error_summary(error)}"
        ) from error
    for index, document in enumerate(documents, start=1):
        if not isinstance(document, dict):
            raise TemplateRenderError(
                f"document {index} of the rendered template is a "
                f"{type(document).__name__}, expected a mapping"
            )
    return documents


def _yaml_error_summary(error):
    # The full YAMLError quotes the rendered text, which may contain secrets.
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or "syntax error"
    if mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return problem
