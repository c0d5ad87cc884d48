"""Metrics read back with InMemoryMetricReader after a known workload."""

from __future__ import annotations

from typing import Any

import pytest
from database_server import server
from instrumentation_models import Author
from opentelemetry.sdk.metrics.export import Histogram, HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


@pytest.mark.usefixtures("instrumented")
async def test_query_metrics_after_a_known_workload(
    blog_engine: Engine, metric_reader: InMemoryMetricReader
) -> None:
    async with Session(blog_engine) as session:
        for _ in range(3):
            assert len(await session.find(Author).to_list()) == 3
        assert await session.find(Author).count() == 3
        author = await session.get(Author, 1)  # identity map: no query
        assert author is not None
        author.age = 50
        await session.commit()
    got = points(metric_reader)

    counts = {
        (p.attributes["db.operation.name"], p.attributes["db.collection.name"]): p.value
        for p in got["db.query.count"]
    }
    assert counts == {("find", "authors"): 3, ("count", "authors"): 1}
    durations = {p.attributes["db.operation.name"]: p for p in got["db.query.duration"]}
    assert durations["find"].count == 3
    assert durations["find"].min > 0

    semconv = [p for p in got["db.client.operation.duration"]]
    # The queries, and the commit and the flush it ran (one sample per operation).
    timed = {p.attributes["db.operation.name"]: p.count for p in semconv}
    assert timed == {"find": 3, "count": 1, "commit": 1, "flush": 1}
    for point in semconv:
        assert isinstance(point, HistogramDataPoint)
        assert list(point.explicit_bounds) == [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0]
        assert point.attributes["db.system.name"] == "postgresql"
        assert point.attributes["db.namespace"] == server().database
        assert point.max < 10  # seconds, not milliseconds
    rows = {
        p.attributes["db.operation.name"]: p.sum for p in got["db.client.response.returned_rows"]
    }
    assert rows["find"] == 3 * 3
    assert rows["count"] == 1  # one row came back, holding the count

    transactions = got["db.session.transaction.duration"]
    assert [(p.attributes["db.session.outcome"], p.count) for p in transactions] == [("commit", 1)]


@pytest.mark.usefixtures("instrumented")
async def test_failed_operation_carries_error_type(
    blog_engine: Engine, metric_reader: InMemoryMetricReader
) -> None:
    async with Session(blog_engine) as session:
        with pytest.raises(Exception, match=r"does not exist"):
            await session.execute("SELECT * FROM no_such_table")
        await session.rollback()
        with pytest.raises(Exception, match="expects int"):
            await session.find(Author).filter(Author.age == "x").to_list()
    errors = {
        p.attributes["db.operation.name"]: (
            p.attributes.get("error.type"),
            p.attributes.get("db.response.status_code"),
        )
        for p in points(metric_reader)["db.client.operation.duration"]
    }
    assert errors == {
        # raw SQL (db.query.execute): the driver's class and the SQLSTATE
        "SELECT": ("psycopg.errors.UndefinedTable", "42P01"),
        "find": ("data_bridge_core.errors.ColumnTypeError", None),  # refused before SQL
        "rollback": (None, None),
    }


@pytest.mark.usefixtures("instrumented")
async def test_pool_metrics_are_observed_from_live_engines(
    blog_engine: Engine, metric_reader: InMemoryMetricReader
) -> None:
    async with Session(blog_engine) as session:
        await session.find(Author).to_list()
        got = points(metric_reader)
        name = blog_engine.pool_name
        maxima = {
            p.attributes["db.client.connection.pool.name"]: p.value
            for p in got["db.client.connection.max"]
        }
        assert maxima[name] == 4
        states = {
            p.attributes["db.client.connection.state"]: p.value
            for p in got["db.client.connection.count"]
            if p.attributes["db.client.connection.pool.name"] == name
        }
        assert states["used"] == 1  # the session holds its connection mid-transaction
        in_use = {
            p.attributes.get("db.client.connection.pool.name"): p.value
            for p in got["db.connection.pool.in_use"]
        }
        assert in_use[name] == 1
        pool_max = {
            p.attributes.get("db.client.connection.pool.name"): p.value
            for p in got["db.connection.pool.max"]
        }
        assert pool_max[name] == 4


def metric_named(reader: InMemoryMetricReader, name: str) -> Any:
    data = reader.get_metrics_data()
    assert data is not None
    found = [
        m
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
    ]
    assert len(found) == 1, name
    return found[0]


@pytest.mark.usefixtures("instrumented")
async def test_connection_wait_time_is_a_histogram_in_seconds(
    blog_engine: Engine, metric_reader: InMemoryMetricReader
) -> None:
    def wait_time() -> HistogramDataPoint:
        wait = metric_named(metric_reader, "db.client.connection.wait_time")
        assert wait.unit == "s"
        assert isinstance(wait.data, Histogram)
        (point,) = [
            p
            for p in wait.data.data_points
            if p.attributes["db.client.connection.pool.name"] == blog_engine.pool_name
        ]
        assert isinstance(point, HistogramDataPoint)
        return point

    before = wait_time().count  # the fixture's own connections (schema, rows)
    for _ in range(2):
        async with Session(blog_engine) as session:
            await session.find(Author).to_list()
    after = wait_time()
    assert after.count - before == 2  # one sample per connection handed out
    assert 0 <= after.min <= after.max < 10


@pytest.mark.usefixtures("instrumented")
async def test_a_builtin_exception_has_the_same_error_type_on_span_and_metric(
    blog_engine: Engine,
    metric_reader: InMemoryMetricReader,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken_loading(self: Session, *args: object, **kwargs: object) -> object:
        raise KeyError("column")

    async with Session(blog_engine) as session:
        monkeypatch.setattr(Session, "load_rows", broken_loading)
        with pytest.raises(KeyError):
            await session.find(Author).to_list()
    (span,) = [s for s in spans.get_finished_spans() if s.name == "db.query.find"]
    assert dict(span.attributes or {})["error.type"] == "KeyError"
    errors = {
        p.attributes.get("error.type")
        for p in points(metric_reader)["db.client.operation.duration"]
    }
    assert errors == {"KeyError"}
