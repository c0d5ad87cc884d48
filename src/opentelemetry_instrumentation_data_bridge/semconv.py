"""Which database semantic conventions the spans and metrics follow (one mode per
process setting), read from ``OTEL_SEMCONV_STABILITY_OPT_IN`` as the spec's
migration guide says. Own code: contrib's ``_semconv`` helpers are private.

- default (no ``database`` value): the reference's documented keys (its users'
  contract: ``db.system``, ``db.statement``, ``db.result.count``...) and every
  applicable stable key (``db.system.name``, ``db.query.text``,
  ``db.response.returned_rows``...).
- ``database``: the stable keys only; the deprecated ``db.system``,
  ``db.statement`` and ``db.result.count`` are left out. The ORM's own keys
  (``db.query.limit``, ``db.session.*``, ``db.relationship.*``) stay: the
  conventions define nothing in their place.
- ``database/dup`` (wins over ``database``): both, as in the default mode.

docs/instrumentation.md has the table of every key and its modes.
"""

from __future__ import annotations

import enum
import os
from typing import Any

from opentelemetry_instrumentation_data_bridge.attributes import DB_SYSTEM_VALUE, SpanAttributes

OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"

# The semantic-conventions version whose database keys the stable attributes
# follow (db.system.name, db.query.summary, db.client.operation.duration...).
SCHEMA_URL = "https://opentelemetry.io/schemas/1.33.0"


class Mode(enum.Enum):
    DEFAULT = "default"
    DATABASE = "database"
    DATABASE_DUP = "database/dup"


def stability_mode(value: str | None = None) -> Mode:
    """The mode of ``OTEL_SEMCONV_STABILITY_OPT_IN`` (or ``value``): a comma-separated
    list; ``database/dup`` wins over ``database``; anything else is the default."""
    if value is None:
        value = os.environ.get(OTEL_SEMCONV_STABILITY_OPT_IN, "")
    options = {part.strip().lower() for part in value.split(",")}
    if "database/dup" in options:
        return Mode.DATABASE_DUP
    if "database" in options:
        return Mode.DATABASE
    return Mode.DEFAULT


def keeps_reference_keys(mode: Mode) -> bool:
    """Whether the reference's deprecated keys (db.system, db.statement,
    db.result.count) are emitted: every mode but ``database``."""
    return mode is not Mode.DATABASE


def system_attributes(mode: Mode) -> dict[str, Any]:
    """``db.system.name`` always, ``db.system`` too unless the mode is ``database``."""
    attrs: dict[str, Any] = {}
    if keeps_reference_keys(mode):
        attrs[SpanAttributes.DB_SYSTEM] = DB_SYSTEM_VALUE
    attrs[SpanAttributes.DB_SYSTEM_NAME] = DB_SYSTEM_VALUE
    return attrs


def set_statement(attributes: dict[str, Any], statement: str, mode: Mode) -> None:
    """``db.query.text`` always, ``db.statement`` too unless the mode is ``database``."""
    if keeps_reference_keys(mode):
        attributes[SpanAttributes.DB_STATEMENT] = statement
    attributes[SpanAttributes.DB_QUERY_TEXT] = statement


__all__ = [
    "OTEL_SEMCONV_STABILITY_OPT_IN",
    "SCHEMA_URL",
    "Mode",
    "keeps_reference_keys",
    "set_statement",
    "stability_mode",
    "system_attributes",
]
