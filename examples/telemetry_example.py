"""The reference's standalone script: console-exported spans for a few ORM calls.

python examples/telemetry_example.py: against DATA_BRIDGE_DSN, else a throwaway embedded
PostgreSQL (examples/example_database.py).
"""

from __future__ import annotations

import asyncio

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from data_bridge_core import Column, Engine, Session, Table
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)
DataBridgeInstrumentor().instrument()


class Guest(Table):
    id: int = Column(primary_key=True)
    name: str

    class Settings:
        table_name = "telemetry_example_guests"


async def main(dsn: str) -> None:
    engine = Engine(dsn)
    await engine.create_all(Guest)
    try:
        async with Session(engine) as session:
            session.add(Guest(name="Ann"))
            await session.commit()
            guests = await session.find(Guest).to_list()
            print(f"Found {len(guests)} guests")
    finally:
        await engine.drop_all(Guest)
        await engine.dispose()


if __name__ == "__main__":
    from example_database import example_database  # DATA_BRIDGE_DSN, else an embedded server

    with example_database() as dsn:
        asyncio.run(main(dsn))
