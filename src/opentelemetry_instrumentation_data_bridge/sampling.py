"""Sampling by span attributes (the reference's Future Enhancement 5). Needs the SDK.

``AttributeBasedSampler(rules=[...])`` decides per span, from what the span
shows at start (its name and start attributes: ``db.operation.name``,
``db.collection.name``, ``db.system`` ...). Rules are tried in order and the
first that matches gives the sampling ratio; ``{"default": r}`` comes last.
The decision is TraceIdRatio's: deterministic on the trace id, so a trace
keeps every span whose ratio is above its trace id's fraction, and a span
with a higher ratio than its parent's is sometimes kept without it.

A rule is a dict with ``"sample": ratio`` and conditions, all of which must
hold: an attribute name with a value (or a list of accepted values),
``"name_prefix": "db.query."`` on the span name, and
``"duration_ms": {">": 100}`` (also ``">="``).

A head sampler decides before the operation runs, so it cannot know a
duration. A duration rule therefore works in two halves: at start, a span
that a duration rule might keep and that the following rules do not sample
is RECORD_ONLY (built and recorded, not marked sampled: the SDK's export
processors skip it); at its end, `DurationRuleProcessor` (made by
``sampler.duration_processor(BatchSpanProcessor(exporter))`` and added in
place of the usual processor) passes the sampled spans on unchanged, and
also the recorded ones whose duration the rule accepts, marked sampled.
The cost: every span such a rule could keep is built in full, as if
sampled (docs/sampling.md has the figures); without a duration rule,
nothing is recorded that is not sampled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.trace.sampling import (
    Decision,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    TraceFlags,
    TraceState,
    get_current_span,
)
from opentelemetry.util.types import Attributes

_RATIO_MASK = TraceIdRatioBased.TRACE_ID_LIMIT
_DURATION_OPERATORS = (">", ">=")


@dataclass(frozen=True)
class _Rule:
    bound: int  # sampled when the trace id's low 64 bits are below it
    conditions: tuple[tuple[str, frozenset[Any]], ...] = ()
    name_prefix: str | None = None
    duration: tuple[str, float] | None = None  # (operator, milliseconds)

    def matches(self, name: str, attributes: Mapping[str, Any]) -> bool:
        if self.name_prefix is not None and not name.startswith(self.name_prefix):
            return False
        for key, accepted in self.conditions:
            value = attributes.get(key)
            if value is None or value not in accepted:
                return False
        return True

    def accepts_duration(self, duration_ms: float) -> bool:
        assert self.duration is not None
        operator, threshold = self.duration
        return duration_ms > threshold if operator == ">" else duration_ms >= threshold


def _ratio(rule: Mapping[str, Any], key: str, index: int) -> int:
    ratio = rule[key]
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 <= ratio <= 1.0:
        raise ValueError(f"rule {index}: {key!r} must be a ratio from 0.0 to 1.0, got {ratio!r}")
    return TraceIdRatioBased.get_bound_for_rate(float(ratio))


def _parse_rule(rule: Any, index: int, last: bool) -> _Rule:
    if not isinstance(rule, Mapping):
        raise TypeError(f"rule {index} must be a dict, got {rule!r}")
    if "default" in rule:
        if len(rule) != 1:
            raise ValueError(f"rule {index}: the default rule is {{'default': ratio}} alone")
        if not last:
            raise ValueError(f"rule {index}: {{'default': ...}} must be the last rule")
        return _Rule(_ratio(rule, "default", index))
    if "sample" not in rule:
        raise ValueError(f"rule {index} has no 'sample' ratio: {dict(rule)!r}")
    conditions: list[tuple[str, frozenset[Any]]] = []
    name_prefix: str | None = None
    duration: tuple[str, float] | None = None
    for key, value in rule.items():
        if key == "sample":
            continue
        if key == "name_prefix":
            if not isinstance(value, str):
                raise TypeError(f"rule {index}: name_prefix must be a string, got {value!r}")
            name_prefix = value
        elif key == "duration_ms":
            duration = _parse_duration(value, index)
        elif isinstance(value, list | tuple | set | frozenset):
            conditions.append((key, frozenset(value)))
        else:
            conditions.append((key, frozenset([value])))
    if not conditions and name_prefix is None and duration is None:
        raise ValueError(f"rule {index} has a ratio but no condition: {dict(rule)!r}")
    return _Rule(_ratio(rule, "sample", index), tuple(conditions), name_prefix, duration)


def _parse_duration(value: Any, index: int) -> tuple[str, float]:
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ValueError(f"rule {index}: duration_ms must look like {{'>': 100}}, got {value!r}")
    ((operator, threshold),) = value.items()
    if operator not in _DURATION_OPERATORS:
        raise ValueError(f"rule {index}: duration_ms compares with '>' or '>=', got {operator!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise ValueError(f"rule {index}: duration_ms needs a number, got {threshold!r}")
    return operator, float(threshold)


class AttributeBasedSampler(Sampler):
    """First matching rule on the span's name and start attributes decides the ratio."""

    def __init__(self, rules: Sequence[Mapping[str, Any]]) -> None:
        if isinstance(rules, str | bytes | Mapping) or not isinstance(rules, Sequence):
            raise TypeError(f"rules must be a list of dicts, got {rules!r}")
        if not rules or not isinstance(rules[-1], Mapping) or "default" not in rules[-1]:
            raise ValueError("rules must end with {'default': ratio} (what no rule matches)")
        last = len(rules) - 1
        self._rules = tuple(_parse_rule(rule, i, i == last) for i, rule in enumerate(rules))
        self.has_duration_rules = any(rule.duration is not None for rule in self._rules)

    def _decide(self, name: str, attributes: Mapping[str, Any]) -> tuple[_Rule, bool]:
        """(the first attribute rule that matches, whether a duration rule came before it)."""
        duration_pending = False
        for rule in self._rules:
            if not rule.matches(name, attributes):
                continue
            if rule.duration is not None:
                duration_pending = True
                continue
            return rule, duration_pending
        raise AssertionError("the default rule matches every span")  # pragma: no cover

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        rule, duration_pending = self._decide(name, attributes or {})
        if trace_id & _RATIO_MASK < rule.bound:
            decision = Decision.RECORD_AND_SAMPLE
        elif duration_pending:
            decision = Decision.RECORD_ONLY  # its duration decides, at the end
        else:
            decision = Decision.DROP
        parent_state = get_current_span(parent_context).get_span_context().trace_state
        # The SDK starts a recorded span with the attributes the sampler returns.
        kept = attributes if decision is not Decision.DROP else None
        return SamplingResult(decision, kept, parent_state)

    def duration_rule_keeps(self, span: ReadableSpan) -> bool:
        """At the end of a recorded, unsampled span: does a duration rule keep it?"""
        if span.start_time is None or span.end_time is None or span.context is None:
            return False
        duration_ms = (span.end_time - span.start_time) / 1e6
        attributes = span.attributes or {}
        low_bits = span.context.trace_id & _RATIO_MASK
        for rule in self._rules:
            if not rule.matches(span.name, attributes):
                continue
            if rule.duration is None:
                return False  # an attribute rule decided first, at the start
            if rule.accepts_duration(duration_ms) and low_bits < rule.bound:
                return True
        return False

    def duration_processor(self, processor: SpanProcessor) -> DurationRuleProcessor:
        """Wrap the export processor: it then also gets the spans a duration rule keeps."""
        return DurationRuleProcessor(self, processor)

    def get_description(self) -> str:
        return f"AttributeBasedSampler{{rules={len(self._rules)}}}"


def _marked_sampled(span: ReadableSpan) -> ReadableSpan:
    """A copy of a finished span whose context says sampled (it is being exported)."""
    context = span.context
    assert context is not None
    sampled = SpanContext(
        context.trace_id,
        context.span_id,
        is_remote=False,
        trace_flags=TraceFlags(context.trace_flags | TraceFlags.SAMPLED),
        trace_state=context.trace_state,
    )
    return ReadableSpan(
        name=span.name,
        context=sampled,
        parent=span.parent,
        resource=span.resource,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class DurationRuleProcessor(SpanProcessor):
    """In place of the export processor: sampled spans pass through unchanged; a
    recorded, unsampled span passes (marked sampled) when a duration rule keeps it."""

    def __init__(self, sampler: AttributeBasedSampler, processor: SpanProcessor) -> None:
        self._sampler = sampler
        self._processor = processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._processor.on_start(span, parent_context)

    def _on_ending(self, span: Span) -> None:
        self._processor._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is not None and context.trace_flags.sampled:
            self._processor.on_end(span)
        elif self._sampler.duration_rule_keeps(span):
            self._processor.on_end(_marked_sampled(span))

    def shutdown(self) -> None:
        self._processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._processor.force_flush(timeout_millis)


__all__ = ["AttributeBasedSampler", "DurationRuleProcessor"]
