"""An unmodified program: no OpenTelemetry import, no instrumentation call.

Run it under auto-instrumentation and every ORM operation is traced::

    OTEL_TRACES_EXPORTER=console OTEL_METRICS_EXPORTER=none \\
        opentelemetry-instrument python examples/auto_instrumented_app.py

against ``DATA_BRIDGE_DSN``, else a throwaway embedded PostgreSQL (examples/example_database.py).
"""

from __future__ import annotations

import asyncio
import uuid

from data_bridge_core import Column, Engine, Session, Table


class Visitor(Table):
    id: int = Column(primary_key=True)
    name: str

    class Settings:
        table_name = "visitors"


async def main(dsn: str) -> None:
    schema = f"auto_{uuid.uuid4().hex[:10]}"
    admin = Engine(dsn, min_size=0, max_size=1)
    async with Session(admin) as session:
        await session.execute(f'CREATE SCHEMA "{schema}"')
        await session.commit()
    engine = Engine(dsn, min_size=0, max_size=2, options=f"-c search_path={schema}")
    try:
        await engine.create_all(Visitor)
        async with Session(engine) as session:
            session.add_all([Visitor(name="ann"), Visitor(name="bob")])
            await session.commit()
            visitors = await session.find(Visitor).order_by(Visitor.name.asc()).to_list()
            print("visitors:", [v.name for v in visitors])
    finally:
        await engine.dispose()
        async with Session(admin) as session:
            await session.execute(f'DROP SCHEMA "{schema}" CASCADE')
            await session.commit()
        await admin.dispose()


if __name__ == "__main__":
    from example_database import example_database  # DATA_BRIDGE_DSN, else an embedded server

    with example_database() as dsn:
        asyncio.run(main(dsn))
