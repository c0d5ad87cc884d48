"""Readable trace trees for a terminal.

`format_span_tree` renders finished SDK spans as one indented tree per trace,
with durations and the attributes that matter for an ORM operation.
`TreeConsoleExporter` collects spans and prints the trees when flushed or
shut down (the demo and the pytest plugin's ``--data-bridge-trace=console``
use it). Needs opentelemetry-sdk.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import StatusCode

# Shown after the span name, in this order, when present.
KEY_ATTRIBUTES = (
    "db.collection.name",
    "db.query.filters_count",
    "db.query.limit",
    "db.query.order_by",
    "db.result.count",
    "db.result.affected_rows",
    "db.session.pending_count",
    "db.session.dirty_count",
    "db.session.deleted_count",
    "db.relationship.name",
    "db.relationship.cache_hit",
    "db.relationship.batch_count",
    "db.relationship.depth",
    "db.operation.batch.size",
    "db.n1.query_count",
    "db.n1.recommendation",
    "error.type",
    "http.route",
)

_SHORT = {
    "db.collection.name": "table",
    "db.query.filters_count": "filters",
    "db.query.limit": "limit",
    "db.query.order_by": "order",
    "db.result.count": "rows",
    "db.result.affected_rows": "affected",
    "db.session.pending_count": "pending",
    "db.session.dirty_count": "dirty",
    "db.session.deleted_count": "deleted",
    "db.relationship.name": "rel",
    "db.relationship.cache_hit": "cache_hit",
    "db.relationship.batch_count": "batch",
    "db.relationship.depth": "depth",
    "db.operation.batch.size": "batch_size",
    "db.n1.query_count": "n1_queries",
    "db.n1.recommendation": "fix",
    "error.type": "error",
}


def _describe(span: ReadableSpan, keys: Sequence[str]) -> str:
    duration = ""
    if span.start_time is not None and span.end_time is not None:
        duration = f" {(span.end_time - span.start_time) / 1e6:.2f} ms"
    attrs = span.attributes or {}
    shown = [f"{_SHORT.get(k, k)}={attrs[k]!s}" for k in keys if k in attrs]
    status = " ERROR" if span.status.status_code is StatusCode.ERROR else ""
    details = f"  [{', '.join(shown)}]" if shown else ""
    return f"{span.name}{duration}{status}{details}"


def _notes(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    """Lines under a span: its links (by the linked span's name when collected) and
    the first line of each query plan event."""
    notes = []
    for link in span.links:
        target = by_id.get(link.context.span_id)
        name = target.name if target is not None else f"span {link.context.span_id:016x}"
        notes.append(f"↪ linked from {name} (trace {link.context.trace_id:032x})")
    for event in span.events:
        if event.name == "query_plan":
            plan = str((event.attributes or {}).get("plan", ""))
            notes.append(f"⋯ query_plan: {plan.splitlines()[0] if plan else ''}")
    return notes


def format_span_tree(spans: Sequence[ReadableSpan], keys: Sequence[str] = KEY_ATTRIBUTES) -> str:
    """One tree per trace, children in start order under their parent; links and
    query plans on the lines under their span."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    children: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        if parent not in by_id:
            parent = None  # the parent was not collected: show the span as a root
        children.setdefault(parent, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: s.start_time or 0)
    lines: list[str] = []

    def walk(span: ReadableSpan, prefix: str, last: bool, root: bool) -> None:
        branch = "" if root else ("└─ " if last else "├─ ")
        lines.append(prefix + branch + _describe(span, keys))
        kids = children.get(span.context.span_id if span.context else None, [])
        extension = "" if root else ("   " if last else "│  ")
        for note in _notes(span, by_id):
            lines.append(prefix + extension + ("│  " if kids else "   ") + note)
        for index, kid in enumerate(kids):
            walk(kid, prefix + extension, index == len(kids) - 1, False)

    for root in children.get(None, []):
        walk(root, "", True, True)
    return "\n".join(lines)


class TreeConsoleExporter(SpanExporter):
    """Collects spans; prints them as trees on force_flush() and shutdown()."""

    def __init__(self, out: TextIO | None = None, keys: Sequence[str] = KEY_ATTRIBUTES) -> None:
        self._out = out
        self._keys = keys
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            self._spans.extend(spans)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        with self._lock:
            spans, self._spans = self._spans, []
        if spans:
            out = self._out or sys.stdout
            out.write(format_span_tree(spans, self._keys) + "\n")
            out.flush()
        return True

    def shutdown(self) -> None:
        self.force_flush()
