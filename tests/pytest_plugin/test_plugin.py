"""The pytest plugin, exercised with pytester against PostgreSQL."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from database_server import dsn
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

DSN = dsn()

CONFTEST = f"""
from __future__ import annotations
import asyncio, uuid
import psycopg, pytest
from data_bridge_core import Column, Engine, Session, Table, relationship

DSN = {DSN!r}

class Owner(Table):
    id: int = Column(primary_key=True)
    name: str
    pets: list["Pet"] = relationship(back_populates="owner")
    class Settings:
        table_name = "owners"

class Pet(Table):
    id: int = Column(primary_key=True)
    owner_id: int = Column(foreign_key="owners.id")
    name: str
    owner: Owner = relationship(back_populates="pets")
    class Settings:
        table_name = "pets"

@pytest.fixture
def engine():
    schema = "plg_" + uuid.uuid4().hex[:10]
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{{schema}}"')
    async def setup():
        eng = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={{schema}}")
        await eng.create_all(Owner, Pet)
        async with Session(eng) as s:
            for i in range(6):
                owner = Owner(name=f"o{{i}}")
                s.add_all([Pet(name="a", owner=owner), Pet(name="b", owner=owner)])
            await s.commit()
        await eng.dispose()
    asyncio.run(setup())
    yield lambda: Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={{schema}}")
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{{schema}}" CASCADE')

async def n_plus_one_page(engine):
    async with Session(engine) as s:
        for owner in await s.find(Owner).to_list():
            await owner.pets

async def eager_page(engine):
    from data_bridge_core import selectinload
    async with Session(engine) as s:
        for owner in await s.find(Owner).options(selectinload(Owner.pets)).to_list():
            await owner.pets
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    return pytester


def test_no_n_plus_one_marker_fails_with_the_recommendation(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio, pytest
        from conftest import n_plus_one_page, eager_page

        @pytest.mark.no_n_plus_one
        def test_n1(engine):
            try:
                asyncio.run(n_plus_one_page(engine()))
            except Exception:
                pass  # application code swallowing errors cannot hide the finding

        @pytest.mark.no_n_plus_one
        def test_eager(engine):
            asyncio.run(eager_page(engine()))

        @pytest.mark.no_n_plus_one
        @pytest.mark.allow_n_plus_one("Owner.pets")
        def test_allowed(engine):
            asyncio.run(n_plus_one_page(engine()))

        def test_unmarked(engine):
            asyncio.run(n_plus_one_page(engine()))
        """
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    # The test itself fails, once: not "passed" plus an error at teardown.
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*N+1 query: Owner.pets lazy-loaded 6 times*Use selectinload(Owner.pets)*"]
    )
    # (pytest 8 adds " - <message>" to the summary line; pytest 7.3 does not)
    result.stdout.fnmatch_lines(["FAILED test_no_n_plus_one_marker_fails*::test_n1*"])
    assert "ERROR" not in result.stdout.str()  # no teardown error beside the failure


def test_suite_wide_switch(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio
        from conftest import n_plus_one_page

        def test_n1(engine):
            asyncio.run(n_plus_one_page(engine()))
        """
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--data-bridge-no-n-plus-one")
    result.assert_outcomes(failed=1)


def test_assert_max_queries_and_db_spans(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio, pytest
        from conftest import n_plus_one_page, eager_page

        def test_eager_within_budget(engine, assert_max_queries, db_spans):
            with assert_max_queries(2) as statements:
                asyncio.run(eager_page(engine()))
            assert len(statements) == 2
            assert len(db_spans.named("db.relationship.selectinload")) == 1
            assert len(db_spans.where(db__collection__name="owners")) == 1

        def test_n1_over_budget(engine, assert_max_queries):
            with assert_max_queries(3):
                asyncio.run(n_plus_one_page(engine()))
        """
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*expected at most 3 SQL statements, 7 ran*"])


def test_console_trace_export(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        """
        import asyncio
        from conftest import eager_page

        def test_page(engine):
            asyncio.run(eager_page(engine()))
        """
    )
    result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--data-bridge-trace=console")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["*db.query.find*table=owners*", "*db.relationship.selectinload*rel=pets*"]
    )


UNUSED_EAGER = """
import asyncio, pytest
from data_bridge_core import Session, selectinload
from conftest import Owner

async def names_only(engine):
    async with Session(engine) as s:
        owners = await s.find(Owner).options(selectinload(Owner.pets)).to_list()
        return [o.name for o in owners]  # the pets are never read

@pytest.mark.no_n_plus_one
def test_names(engine):
    assert len(asyncio.run(names_only(engine()))) == 6
"""


def test_unused_eager_load_is_a_warning_that_can_fail_the_test(suite: pytest.Pytester) -> None:
    suite.makepyfile(UNUSED_EAGER)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    # Attributed to the query's line in the test file, not to the plugin.
    result.stdout.fnmatch_lines(
        [
            "*test_unused_eager_load_is_a_warning_that_can_fail_the_test.py:*: "
            "UnusedEagerLoadWarning: Unused eager load: selectinload(Owner.pets)*never used"
        ]
    )
    strict = suite.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "-W",
        "error::opentelemetry_instrumentation_data_bridge.n_plus_one.UnusedEagerLoadWarning",
    )
    strict.assert_outcomes(failed=1)


class _OtlpReceiver(BaseHTTPRequestHandler):
    """A real OTLP/HTTP endpoint: decodes each export request with the official protobufs."""

    received: ClassVar[list[ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()
        self.wfile.write(ExportTraceServiceResponse().SerializeToString())

    def log_message(self, *args: object) -> None:
        pass


def test_otlp_trace_export(suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtlpReceiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _OtlpReceiver.received = []
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{server.server_port}")
        suite.makepyfile(
            """
            import asyncio
            from conftest import eager_page

            def test_page(engine):
                asyncio.run(eager_page(engine()))
            """
        )
        result = suite.runpytest_subprocess("-p", "no:cacheprovider", "--data-bridge-trace=otlp")
        result.assert_outcomes(passed=1)
    finally:
        server.shutdown()
        server.server_close()
    spans = [
        span
        for request in _OtlpReceiver.received
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]
    # The fixture's seeding (flush, commit) is traced too; the page is one find + one load.
    finds = [s for s in spans if s.name == "db.query.find"]
    loads = [s for s in spans if s.name == "db.relationship.selectinload"]
    assert len(finds) == 1
    assert len(loads) == 1
    assert loads[0].parent_span_id == finds[0].span_id
    assert "db.session.commit" in {s.name for s in spans}
    service = {
        a.key: a.value.string_value
        for a in _OtlpReceiver.received[0].resource_spans[0].resource.attributes
    }
    assert service["service.name"] == "pytest"
