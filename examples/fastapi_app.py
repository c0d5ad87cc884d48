"""A FastAPI service on data_bridge_core, traced end to end.

HTTP server spans come from opentelemetry-instrumentation-fastapi, ORM spans
from DataBridgeInstrumentor; the ORM spans are children of the request span.

    pip install uvicorn && python examples/fastapi_app.py

against ``DATA_BRIDGE_DSN``, else a throwaway embedded PostgreSQL (examples/example_database.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException

from data_bridge_core import Column, Engine, Session, Table


class Member(Table):
    id: int = Column(primary_key=True)
    name: str
    email: str = Column(unique=True)

    class Settings:
        table_name = "members"


def create_app(engine: Engine) -> FastAPI:
    """The application, given the engine it uses (tests pass their own)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await engine.create_all(Member)
        yield
        await engine.dispose()

    app = FastAPI(lifespan=lifespan)

    @app.get("/members/{member_id}")
    async def get_member(member_id: int) -> dict[str, Any]:
        async with Session(engine):
            member = await Member.get(member_id)
            if member is None:
                raise HTTPException(status_code=404, detail="no such member")
            return {"id": member.id, "name": member.name}

    @app.post("/members")
    async def add_member(payload: dict[str, str]) -> dict[str, Any]:
        async with Session(engine) as session:
            member = Member(name=payload["name"], email=payload["email"])
            session.add(member)
            await session.commit()
            return {"id": member.id}

    @app.get("/members")
    async def list_members() -> list[dict[str, Any]]:
        async with Session(engine) as session:
            members = await session.find(Member).order_by(Member.id.asc()).limit(50).to_list()
            return [{"id": m.id, "name": m.name} for m in members]

    return app


def build_traced_app(dsn: str) -> FastAPI:
    """The app with console tracing, as a service would set it up at start-up."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)
    DataBridgeInstrumentor().instrument()
    application = create_app(Engine(dsn))
    FastAPIInstrumentor.instrument_app(application)
    return application


if __name__ == "__main__":
    import uvicorn  # type: ignore[import-not-found]

    from example_database import example_database  # DATA_BRIDGE_DSN, else an embedded server

    with example_database() as dsn:
        uvicorn.run(build_traced_app(dsn), host="127.0.0.1", port=8000)
