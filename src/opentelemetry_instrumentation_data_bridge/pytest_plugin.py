"""pytest plugin of opentelemetry-instrumentation-data-bridge (entry point ``data_bridge``).

- ``@pytest.mark.no_n_plus_one`` (or ``--data-bridge-no-n-plus-one`` / ini
  ``data_bridge_no_n_plus_one = true`` for the whole suite): the test fails
  with the recommendation when an N+1 pattern is detected in its body.
  Fixture set-up runs outside the detection scope;
  ``@pytest.mark.allow_n_plus_one("Post.author")`` allows a relationship.
  Eager loads the test body never read are reported as
  ``UnusedEagerLoadWarning`` (``-W error::...`` turns them into failures).
- ``db_spans``: an in-memory exporter wired to the instrumentation for one test.
- ``assert_max_queries(n)``: a context manager failing when the block runs more
  than ``n`` SQL statements (queries and lazy loads).
- ``--data-bridge-trace=console|otlp``: export the spans of the whole run.

Imports stay lazy so that loading the plugin costs nothing in projects that
do not use data_bridge_core: OpenTelemetry, wrapt and the ORM are imported when
a test uses a fixture, a marker or an option of the plugin. The fixtures, the
N+1 marker and the trace export need the OpenTelemetry SDK (extra ``sdk``).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest

_TRACE_PROVIDER = pytest.StashKey[Any]()
_SDK_EXTRA = "opentelemetry-instrumentation-data-bridge[sdk]"


def _sdk_missing(feature: str) -> str | None:
    """Why `feature` cannot run without the OpenTelemetry SDK, or None when it is installed."""
    try:
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        return (
            f"{feature} needs the OpenTelemetry SDK, which is not installed: "
            f"pip install '{_SDK_EXTRA}'"
        )
    return None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("data-bridge")
    group.addoption(
        "--data-bridge-trace",
        choices=("console", "otlp"),
        default=None,
        help="export the ORM spans of the test run: console (trace trees) or otlp (OTEL_* env)",
    )
    group.addoption(
        "--data-bridge-no-n-plus-one",
        action="store_true",
        default=False,
        help="fail every test in which an N+1 query pattern is detected",
    )
    parser.addini(
        "data_bridge_no_n_plus_one",
        type="bool",
        default=False,
        help="fail every test in which an N+1 query pattern is detected",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "no_n_plus_one: fail the test when an N+1 query pattern is detected"
    )
    config.addinivalue_line(
        "markers", "allow_n_plus_one(*relationships): relationships ('Post.author') to allow"
    )
    mode = config.getoption("--data-bridge-trace", default=None)
    if mode:
        problem = _sdk_missing(f"--data-bridge-trace={mode}")
        if problem is not None:
            raise pytest.UsageError(problem)
        config.stash[_TRACE_PROVIDER] = _start_run_tracing(mode)


def pytest_unconfigure(config: pytest.Config) -> None:
    provider = config.stash.get(_TRACE_PROVIDER, None)
    if provider is not None:
        from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

        DataBridgeInstrumentor().uninstrument()
        provider.shutdown()


def _start_run_tracing(mode: str) -> Any:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    exporter: SpanExporter
    if mode == "console":
        from opentelemetry_instrumentation_data_bridge.console import TreeConsoleExporter

        exporter = TreeConsoleExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "pytest"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    DataBridgeInstrumentor().instrument(tracer_provider=provider)
    return provider


def _detection_wanted(item: pytest.Item) -> bool:
    return bool(
        item.get_closest_marker("no_n_plus_one")
        or item.config.getoption("--data-bridge-no-n-plus-one", default=False)
        or item.config.getini("data_bridge_no_n_plus_one")
    )


@contextmanager
def _instrumented_for_detection() -> Iterator[None]:
    """Lazy loads are counted by the instrumentation: make sure it is on."""
    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    instrumentor = DataBridgeInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        yield
        return
    from opentelemetry.sdk.trace import TracerProvider

    instrumentor.instrument(tracer_provider=TracerProvider())
    try:
        yield
    finally:
        instrumentor.uninstrument()


# An old-style hook wrapper (``hookwrapper=True``): the new style (``wrapper=True``)
# needs pluggy 1.1, and pytest 7.3 ships with pluggy 1.0, where merely loading a
# plugin that uses it fails every test run (docs/pytest-plugin.md, "Supported pytest").
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    if not _detection_wanted(item):
        yield
        return
    problem = _sdk_missing("N+1 detection (no_n_plus_one)")
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    from opentelemetry_instrumentation_data_bridge.n_plus_one import n1_scope

    # Only the test body is in the scope: fixture set-up (factories) is not. The test's
    # own outcome (an exception included) is pluggy's to report, not raised here.
    with _instrumented_for_detection(), n1_scope() as scope:
        outcome = yield
    # Judged in the call phase, once the scope has ended: an N+1 fails the test itself
    # (one failure), not its teardown (which pytest counts as "passed" plus an error).
    # A test that failed by itself is not judged again.
    if outcome.excinfo is None:
        try:
            _judge(item, scope)
        except pytest.fail.Exception as failure:
            force = getattr(outcome, "force_exception", None)  # pluggy >= 1.1
            if force is None:  # pluggy 1.0: an exception from the wrapper fails the call
                raise
            force(failure)


def _judge(item: pytest.Item, scope: Any) -> None:
    allowed: set[str] = set()
    for marker in item.iter_markers("allow_n_plus_one"):
        allowed.update(str(a) for a in marker.args)
    for unused in scope.unused_eager_loads:
        # A warning at the query's line, not a failure:
        # ``-W error::...UnusedEagerLoadWarning`` makes it one.
        unused.warn()
    reported = [f for f in scope.findings if f"{f.model}.{f.relationship}" not in allowed]
    if reported:
        pytest.fail("\n".join(f.message() for f in reported), pytrace=False)


class SpanRecorder:
    """What the ``db_spans`` fixture returns: the finished spans of the test."""

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter

    @property
    def spans(self) -> list[Any]:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str) -> list[Any]:
        return [s for s in self.spans if s.name == name]

    def where(self, **attributes: Any) -> list[Any]:
        """Spans whose attributes include these (dots written as ``__``: db__system=...)."""
        wanted = {k.replace("__", "."): v for k, v in attributes.items()}
        return [
            s
            for s in self.spans
            if all((s.attributes or {}).get(k) == v for k, v in wanted.items())
        ]

    def clear(self) -> None:
        self.exporter.clear()


@pytest.fixture
def db_spans(request: pytest.FixtureRequest) -> Iterator[SpanRecorder]:
    """An in-memory exporter receiving the ORM spans of this test."""
    problem = _sdk_missing("db_spans")
    if problem is not None:
        pytest.fail(problem, pytrace=False)
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DataBridgeInstrumentor()
    was_instrumented = instrumentor.is_instrumented_by_opentelemetry
    if was_instrumented:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield SpanRecorder(exporter)
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
        if was_instrumented:  # give the run-wide tracing (--data-bridge-trace) back
            run_provider = request.config.stash.get(_TRACE_PROVIDER, None)
            instrumentor.instrument(tracer_provider=run_provider)


@pytest.fixture
def assert_max_queries() -> Callable[[int], AbstractContextManager[list[str]]]:
    """``with assert_max_queries(3): ...`` fails when the block runs more SQL statements."""
    from data_bridge_core import Session

    @contextmanager
    def limit(n: int) -> Iterator[list[str]]:
        statements: list[str] = []
        original = Session.__dict__["run_statement"]

        async def counting(self: Any, statement: str, *args: Any, **kwargs: Any) -> Any:
            statements.append(statement)
            # Bind explicitly: the original may be the instrumentation's wrapt wrapper.
            return await original.__get__(self, type(self))(statement, *args, **kwargs)

        Session.run_statement = counting  # type: ignore[method-assign]
        try:
            yield statements
        finally:
            Session.run_statement = original  # type: ignore[method-assign]
        if len(statements) > n:
            listing = "\n".join(f"  {i + 1}. {s[:160]}" for i, s in enumerate(statements))
            pytest.fail(
                f"expected at most {n} SQL statements, {len(statements)} ran:\n{listing}",
                pytrace=False,
            )

    return limit
