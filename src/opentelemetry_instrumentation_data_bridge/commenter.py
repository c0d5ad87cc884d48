"""sqlcommenter: the statement's span in a SQL comment, for the database's own views.

With ``instrument(enable_commenter=True)`` each statement reaching the driver
ends with ``/*traceparent='00-<trace id>-<span id>-<flags>'*/`` of the span
current when it is sent (the ORM operation's span), so ``pg_stat_activity``,
the server log and ``auto_explain`` output can be joined to traces. The trace
pairs are what the global propagator injects for that span (W3C
``traceparent``, ``tracestate`` when the span has one, and any other
propagator's fields), except ``baggage``: its values are the application's
data. Format of https://google.github.io/sqlcommenter/spec/: keys and values
URL-encoded, values in single quotes, pairs sorted by key and joined by
commas, and a statement that already holds a comment (``--`` or ``/*``
outside string literals, quoted identifiers and dollar quotes) is left alone.

``commenter_options`` adds pairs: a string value is sent as is, a callable is
called for each statement (``None`` leaves the key out, e.g. a route read
from a context variable); ``"db_driver": True`` and ``"framework": True`` add
the driver's and the ORM's name and version; ``"traceparent": False`` leaves
the trace context out. Values end up in the SQL text: never put a secret or
a user's data in them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

from opentelemetry import propagate, trace
from opentelemetry.trace import NonRecordingSpan, SpanContext

_FLAGS = ("db_driver", "framework", "traceparent")


def _encode(text: str) -> str:
    return quote(text, safe="")


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


# Propagated fields never written into SQL: baggage values are the application's data.
_NOT_IN_SQL = frozenset({"baggage"})


def _dollar_tag(statement: str, at: int) -> str | None:
    """The ``$tag$`` (or ``$$``) opening a dollar-quoted string at ``at``, if one does
    (``$1`` is a parameter, and a ``$`` inside an identifier is part of it)."""
    if at > 0 and (statement[at - 1].isalnum() or statement[at - 1] == "_"):
        return None
    end = at + 1
    while end < len(statement) and (statement[end].isalnum() or statement[end] == "_"):
        end += 1
    if end >= len(statement) or statement[end] != "$":
        return None
    tag = statement[at : end + 1]
    return None if len(tag) > 2 and tag[1].isdigit() else tag


def has_comment(statement: str) -> bool:
    """The spec's rule: a statement that already has a comment is not commented.

    ``--`` and ``/*`` count only outside string literals (``'...'`` with ``''``,
    ``E'...'`` with backslash escapes), quoted identifiers and dollar quotes; a
    statement whose quoting does not end is taken as commented (left alone).
    """
    if "--" not in statement and "/*" not in statement:
        return False  # the common case, without reading the statement
    at, size = 0, len(statement)
    while at < size:
        char = statement[at]
        if char == "'":
            escapes = at > 0 and statement[at - 1] in "eE"
            at += 1
            while True:
                if at >= size:
                    return True
                if escapes and statement[at] == "\\":
                    at += 2
                    continue
                if statement[at] == "'":
                    if statement.startswith("''", at):
                        at += 2
                        continue
                    break
                at += 1
        elif char == '"':
            end = statement.find('"', at + 1)
            if end < 0:
                return True
            at = end
        elif char == "$" and (tag := _dollar_tag(statement, at)) is not None:
            end = statement.find(tag, at + len(tag))
            if end < 0:
                return True
            at = end + len(tag) - 1
        elif statement.startswith(("--", "/*"), at):
            return True
        at += 1
    return False


def _propagated(context: SpanContext) -> dict[str, str]:
    """What the global propagator injects for a span with ``context``, baggage left out."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, trace.set_span_in_context(NonRecordingSpan(context)))
    return {key: value for key, value in carrier.items() if key not in _NOT_IN_SQL}


class Commenter:
    """Appends the sqlcommenter comment of a span (and the options' pairs) to SQL."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        self.traceparent = True
        static: dict[str, str] = {}
        dynamic: dict[str, Callable[[], Any]] = {}
        for key, value in options.items():
            if not isinstance(key, str) or not key:
                raise TypeError(f"commenter_options keys must be non-empty strings, got {key!r}")
            if key in _FLAGS:
                if not isinstance(value, bool):
                    raise TypeError(f"commenter_options[{key!r}] must be True or False")
                if key == "traceparent":
                    self.traceparent = value
                elif value and key == "db_driver":
                    static[key] = f"psycopg:{_package_version('psycopg')}"
                elif value:
                    static[key] = f"data_bridge:{_package_version('data-bridge-core')}"
            elif isinstance(value, str):
                static[key] = value
            elif callable(value):
                dynamic[key] = value
            else:
                raise TypeError(
                    f"commenter_options[{key!r}] must be a string, a callable or (for "
                    f"{', '.join(_FLAGS)}) a bool, got {value!r}"
                )
        self._static = static
        self._dynamic = dynamic

    def comment(
        self, statement: str, context: SpanContext | None, *, placeholders: bool = True
    ) -> str:
        """``statement`` with its comment; unchanged when it has one or there is nothing to say.

        With ``placeholders`` (the statement has parameters), ``%`` is doubled:
        the driver reads the text for ``%s`` placeholders and turns ``%%`` back
        into ``%``, so the server sees the spec's encoding. A statement without
        parameters is sent as written, so its comment is too.
        """
        if has_comment(statement):
            return statement
        pairs = dict(self._static)
        for key, produce in self._dynamic.items():
            value = produce()
            if value is not None:
                pairs[key] = str(value)
        if self.traceparent and context is not None and context.is_valid:
            pairs.update(_propagated(context))
        if not pairs:
            return statement
        body = ",".join(
            f"{_encode(key)}='{_encode(value)}'" for key, value in sorted(pairs.items())
        )
        if placeholders:
            body = body.replace("%", "%%")
        text = statement.rstrip()
        if text.endswith(";"):
            return f"{text[:-1]} /*{body}*/;"
        return f"{text} /*{body}*/"


__all__ = ["Commenter", "has_comment"]
