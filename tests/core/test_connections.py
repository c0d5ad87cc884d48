"""A session's connection: streams, concurrent tasks, cancellation, failures, restarts."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import uuid

import psycopg
import pytest
from core_fixtures import DSN, Post, User, fetch, seed
from psycopg.conninfo import make_conninfo

from data_bridge_core import (
    DatabaseError,
    Engine,
    InvalidStateError,
    PreparedStatementError,
    Session,
)
from own_server import OwnServer

# -- streams (issue 8, defect 3) ----------------------------------------------------------


async def test_a_stream_left_early_never_touches_the_connection_once_another_session_has_it(
    schema: str, engine: Engine
) -> None:
    await seed(engine, users=3, posts=0)
    single = Engine(DSN, max_size=1, options=f"-c search_path={schema}")
    try:
        async with Session(single) as first:
            rows = first.find(User).order_by(User.id.asc()).stream()
            async for user in rows:
                assert user.name == "u0"
                break  # the stream's generator stays suspended, unfinished
        async with Session(single) as other:  # gets the very connection the stream ran on
            other.add(User(name="late", email="late@x.org"))
            await other.flush()
            del rows  # the event loop now finalizes the abandoned generator
            await asyncio.sleep(0.01)
            await other.commit()
    finally:
        await single.dispose()
    assert await fetch(schema, "SELECT name FROM users WHERE email = 'late@x.org'") == [("late",)]


async def test_a_stream_left_early_leaves_its_own_session_usable(
    schema: str, engine: Engine
) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        async for _user in session.find(User):
            break
        session.add(User(name="after", email="after@x.org"))
        assert await session.find(User).count() == 4
        await session.commit()
    assert await fetch(schema, "SELECT count(*) FROM users") == [(4,)]


async def test_a_stream_resumed_after_its_transaction_ended_raises_a_clear_error(
    engine: Engine,
) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        rows = session.find(User).order_by(User.id.asc()).stream(batch_size=1)
        first = await anext(rows)
        assert first.name == "u0"
        await session.commit()  # closes the stream's server-side cursor first
        with pytest.raises(InvalidStateError, match="the transaction of this stream ended"):
            await anext(rows)
        # The session goes on in a new transaction, and a new stream works.
        assert [u.name async for u in session.find(User).order_by(User.id.asc())] == [
            "u0",
            "u1",
            "u2",
        ]


async def test_a_stream_read_to_the_end_gives_every_row_and_frees_its_cursor(
    engine: Engine,
) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        names = [u.name async for u in session.find(User).order_by(User.id.asc()).stream(2)]
        assert names == ["u0", "u1", "u2"]
        cursors = await session.execute(
            "SELECT count(*) FROM pg_cursors WHERE name LIKE 'data_bridge%'"
        )
        assert cursors.rows == [(0,)]


# -- one session, several tasks (defect 4) -------------------------------------------------


async def test_counts_gathered_on_one_session_share_one_connection_and_give_it_back(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=3, posts=2)
    # A new pool holds no idle connection: every task asking for one has to wait.
    fresh = Engine(DSN, min_size=0, max_size=4, options=f"-c search_path={schema}")
    try:
        async with Session(fresh) as session:
            counts = await asyncio.gather(
                session.find(User).count(),
                session.find(Post).count(),
                session.find(User).filter(User.age > 15).count(),
            )
            assert counts == [3, 6, 2]
        assert fresh.pool is not None
        stats = fresh.pool.get_stats()
    finally:
        await fresh.dispose()
    assert stats["requests_num"] == 1  # one connection taken from the pool
    assert stats["pool_available"] == stats["pool_size"] == 1  # and given back


async def test_tasks_sharing_a_session_write_in_its_one_transaction(
    engine: Engine, schema: str
) -> None:
    async def add(session: Session, name: str) -> None:
        await session.execute(
            "INSERT INTO users (name, email, age, active, created_at) "
            "VALUES (%s, %s, 1, true, now())",
            (name, f"{name}@x.org"),
        )

    async with Session(engine) as session:
        await asyncio.gather(*(add(session, f"t{i}") for i in range(5)))
        assert await fetch(schema, "SELECT count(*) FROM users") == [(0,)]  # not committed yet
        await session.commit()
    assert await fetch(schema, "SELECT count(*) FROM users") == [(5,)]


async def test_a_commit_after_a_failed_statement_raises_instead_of_writing_nothing(
    engine: Engine, schema: str
) -> None:
    async with Session(engine) as session:
        await session.execute(
            "INSERT INTO users (name, email, age, active, created_at) "
            "VALUES ('kept?', 'k@x.org', 1, true, now())"
        )
        with pytest.raises(DatabaseError, match="division by zero"):
            await session.execute("SELECT 1 / 0")
        # The server would answer COMMIT with a silent ROLLBACK.
        with pytest.raises(DatabaseError, match="aborted by an earlier error") as caught:
            await session.commit()
        assert caught.value.sqlstate == "25P02"
        await session.rollback()
        assert not session.in_transaction
        await session.execute(
            "INSERT INTO users (name, email, age, active, created_at) "
            "VALUES ('kept', 'k@x.org', 1, true, now())"
        )
        await session.commit()
    assert await fetch(schema, "SELECT name FROM users") == [("kept",)]


# -- cancellation (defect 5) ----------------------------------------------------------------


# The statement waits on an advisory lock the test holds (its key unique to the run: advisory
# locks are database-wide), so the test sees it running for as long as it needs to, however
# loaded the machine; a fixed pg_sleep() left a window a slow poll could miss.
SLOW_FLUSH = """
CREATE FUNCTION slow_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared({key}); RETURN NEW; END $$;
CREATE TRIGGER slow_insert BEFORE INSERT ON users FOR EACH ROW EXECUTE FUNCTION slow_insert();
"""
SLOW_COMMIT = """
CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared({key}); RETURN NULL; END $$;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON users DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION slow_commit();
"""


async def _wait_until_blocked(
    watcher: psycopg.AsyncConnection[object], backend_pid: int, gate_pid: int, start: str
) -> None:
    """Poll the server until that backend runs the statement and waits on the gate's lock."""
    for _ in range(10_000):
        cur = await watcher.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND query LIKE %s "
            "AND %s = ANY(pg_blocking_pids(pid))",
            (backend_pid, start + "%", gate_pid),
        )
        row = await cur.fetchone()
        if row is not None and row[0] == 1:
            return
        await asyncio.sleep(0.002)
    raise AssertionError(f"backend {backend_pid} never waited in {start}")


@pytest.mark.parametrize(
    ("slow_part", "statement_start"), [("flush", "INSERT"), ("commit", "COMMIT")]
)
async def test_a_committing_task_cancelled_twice_always_raises_cancelled_error(
    schema: str, engine: Engine, slow_part: str, statement_start: str
) -> None:
    await seed(engine, users=3, posts=0)
    key = uuid.uuid4().int >> 65  # fits a bigint
    async with await psycopg.AsyncConnection.connect(
        DSN, autocommit=True, options=f"-c search_path={schema}"
    ) as conn:
        await conn.execute((SLOW_FLUSH if slow_part == "flush" else SLOW_COMMIT).format(key=key))
    # One connection in all: a connection that leaks makes the next session fail.
    single = Engine(DSN, min_size=0, max_size=1, timeout=10, options=f"-c search_path={schema}")

    async def commit_one(n: int, backend: asyncio.Future[int]) -> None:
        async with Session(single) as session:
            pid = await session.execute("SELECT pg_backend_pid()")
            backend.set_result(pid.rows[0][0])
            session.add(User(name=f"c{n}", email=f"c{n}@x.org"))
            await session.commit()

    outcomes: list[str] = []
    gate = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
    gate_pid = gate.info.backend_pid
    watcher = await psycopg.AsyncConnection.connect(DSN, autocommit=True)
    try:
        for run in range(30):
            await gate.execute("SELECT pg_advisory_lock(%s)", (key,))
            backend: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            task = asyncio.create_task(commit_one(run, backend))
            await _wait_until_blocked(watcher, await backend, gate_pid, statement_start)
            task.cancel()
            for _ in range(run % 4):  # lands the second cancel at different points of the cleanup
                await asyncio.sleep(0)
            task.cancel()
            # Let the statement go: a cancel that did not stop it lets it finish, as before.
            await gate.execute("SELECT pg_advisory_unlock(%s)", (key,))
            try:
                await task
            except BaseException as exc:
                outcomes.append(type(exc).__name__)
            else:
                outcomes.append("returned")
            async with Session(single) as session:  # the pool's one connection is usable
                assert (await session.execute("SELECT 1")).rows == [(1,)]
        assert single.pool is not None
        stats = single.pool.get_stats()
        assert stats["pool_available"] == stats["pool_size"] == 1
    finally:
        await gate.close()
        await watcher.close()
        await single.dispose()
    assert outcomes == ["CancelledError"] * 30
    names = {name for (name,) in await fetch(schema, "SELECT name FROM users")}
    if slow_part == "flush":
        assert names == {"u0", "u1", "u2"}  # COMMIT was never sent
    else:
        # A COMMIT interrupted in flight may or may not have reached the server.
        assert {"u0", "u1", "u2"} <= names


# -- the DSN form's engine and asyncio.run (defect 6) --------------------------------------


ASYNCIO_RUN_SCRIPT = """
import asyncio
from data_bridge_core import Engine, Session

async def main(dsn):
    async def one():
        async with Session(dsn) as session:
            await session.execute("SELECT 1")
    await asyncio.gather(one(), one(), one())  # the pool grows while the loop ends
    return Engine.live_engines()

for run in range(25):
    engines = asyncio.run(main({dsn!r}))
    disposed = [e for e in engines if e.pool is None]
    print("returned", run, len(engines), len(disposed), len(Engine.live_engines()), flush=True)
"""


@pytest.mark.slow
def test_asyncio_run_returns_after_sessions_on_a_connection_string() -> None:
    script = textwrap.dedent(ASYNCIO_RUN_SCRIPT).format(dsn=DSN)
    # The timeout only detects a hang (25 runs take about a second).
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # Each run: one shared engine, closed with its loop, none left alive.
    assert lines == [f"returned {run} 1 1 0" for run in range(25)]


# -- servers that cannot be reached (defect 8) ---------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_missing_database_fails_with_the_servers_reason() -> None:
    name = f"no_such_db_{uuid.uuid4().hex[:8]}"
    engine = Engine(make_conninfo(DSN, dbname=name))  # the default 30 s pool timeout
    try:
        with pytest.raises(DatabaseError) as caught:
            async with asyncio.timeout(60), Session(engine) as session:
                await session.execute("SELECT 1")
    finally:
        await engine.dispose()
    assert f'database "{name}" does not exist' in str(caught.value)
    assert str(caught.value).startswith(f"cannot connect to {engine.pool_name}: ")
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)


async def test_a_closed_port_fails_with_connection_refused() -> None:
    port = _closed_port()
    engine = Engine(f"postgresql://postgres@127.0.0.1:{port}/test", min_size=2)
    try:
        with pytest.raises(DatabaseError) as caught:
            async with Session(engine) as session:
                await session.execute("SELECT 1")
        # Asking again while the pool keeps failing gives the same reason.
        with pytest.raises(DatabaseError) as again:
            async with Session(engine) as session:
                await session.execute("SELECT 1")
    finally:
        await engine.dispose()
    for error in (caught.value, again.value):
        assert "Connection refused" in str(error)
        assert f"127.0.0.1:{port}" in str(error)
        assert isinstance(error.__cause__, psycopg.OperationalError)


async def test_a_failed_connect_does_not_fail_a_session_while_a_connection_can_come_back(
    schema: str,
) -> None:
    role = f"dbt_limited_{uuid.uuid4().hex[:8]}"
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as admin:
        await admin.execute(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 1')
        await admin.execute(f'GRANT ALL ON SCHEMA "{schema}" TO "{role}"')
    limited = make_conninfo(DSN, user=role)
    engine = Engine(limited, min_size=0, max_size=2, options=f"-c search_path={schema}")
    try:
        async with asyncio.timeout(60):
            async with Session(engine) as holder:
                # the role's one connection
                assert (await holder.execute("SELECT current_user")).rows == [(role,)]
                first = asyncio.create_task(_select_one(engine))
                # The pool's attempt at a second connection fails (connection limit)...
                await _connect_errors(engine, 1)
                second = asyncio.create_task(_select_one(engine))  # asks after a failure
                await _connect_errors(engine, 2)  # the pool's next attempt fails too
                # ...and both sessions keep waiting: the holder's connection will come back.
                assert not first.done()
                assert not second.done()
            assert await first == [(1,)]
            assert await second == [(1,)]
    finally:
        await engine.dispose()
        async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as admin:
            await admin.execute(f'DROP OWNED BY "{role}"')
            await admin.execute(f'DROP ROLE "{role}"')


async def _connect_errors(engine: Engine, count: int) -> None:
    """Wait until the engine's pool has failed that many attempts to connect (the caller
    bounds the wait)."""
    while True:
        stats = engine.pool.get_stats() if engine.pool is not None else {}
        if stats.get("connections_errors", 0) >= count:
            return
        await asyncio.sleep(0.005)


async def _select_one(engine: Engine) -> list[tuple[int]]:
    async with Session(engine) as session:
        return (await session.execute("SELECT 1")).rows


async def test_a_reachable_server_gives_connections_after_the_checks(engine: Engine) -> None:
    async with Session(engine) as session:
        assert (await session.execute("SELECT 41 + 1")).rows == [(42,)]


# -- prepared statements behind a transaction-mode pooler (issue 14) -----------------------

REPEATED = "SELECT count(*) FROM users WHERE age >= %s"


async def test_a_prepared_statement_gone_from_the_server_raises_prepared_statement_error(
    engine: Engine,
) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        for _ in range(6):  # psycopg prepares it as _pg3_0 at the 6th run (threshold 5)
            await session.execute(REPEATED, (0,))
        # What PgBouncer does in transaction mode: the next statement lands on a
        # server connection that never saw this PREPARE.
        await session.execute("DEALLOCATE _pg3_0")
        with pytest.raises(PreparedStatementError) as caught:
            await session.execute(REPEATED, (0,))
    assert caught.value.sqlstate == "26000"
    assert isinstance(caught.value, DatabaseError)
    message = str(caught.value)
    assert 'prepared statement "_pg3_0" does not exist' in message
    assert "transaction mode (PgBouncer)" in message
    assert "Engine(dsn, prepare_threshold=None)" in message


async def test_a_prepared_statement_name_taken_on_the_server_raises_prepared_statement_error(
    engine: Engine,
) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        # Another client's statements on the same server connection, as PgBouncer allows.
        for n in range(3):
            await session.execute(f"PREPARE _pg3_{n} AS SELECT {n}")
        for _ in range(5):
            await session.execute(REPEATED, (0,))
        with pytest.raises(PreparedStatementError) as caught:
            await session.execute(REPEATED, (0,))
    assert caught.value.sqlstate == "42P05"
    assert 'prepared statement "_pg3_0" already exists' in str(caught.value)
    assert "prepare_threshold=None" in str(caught.value)


async def test_the_users_own_prepared_statements_keep_the_plain_database_error(
    engine: Engine,
) -> None:
    async with Session(engine) as session:
        await session.execute("PREPARE mine AS SELECT 1")
        with pytest.raises(DatabaseError) as caught:
            await session.execute("PREPARE mine AS SELECT 2")
    assert caught.value.sqlstate == "42P05"
    assert type(caught.value) is DatabaseError
    assert "PgBouncer" not in str(caught.value)


async def test_without_prepared_statements_the_same_workload_passes(schema: str) -> None:
    engine = Engine(DSN, prepare_threshold=None, options=f"-c search_path={schema}")
    try:
        await engine.create_all(User)
        await seed(engine, users=3, posts=0)
        async with Session(engine) as session:
            for n in range(3):
                await session.execute(f"PREPARE _pg3_{n} AS SELECT {n}")
            for _ in range(6):
                assert (await session.execute(REPEATED, (0,))).rows == [(3,)]
    finally:
        await engine.dispose()


# -- a server restart behind pooled connections (defect 9) ---------------------------------


@pytest.mark.slow
async def test_pooled_connections_left_stale_by_a_server_restart_are_replaced_unseen(
    own_server: OwnServer,
) -> None:
    engine = Engine(own_server.dsn, min_size=3, max_size=3)
    try:
        await engine.create_all(User)
        sessions = [Session(engine) for _ in range(3)]
        for session in sessions:  # three connections out of the pool at once, then back
            await session.execute("SELECT 1")
        pids_before = set()
        for session in sessions:
            pids_before.add((await session.execute("SELECT pg_backend_pid()")).rows[0][0])
            await session.close()
        assert len(pids_before) == 3
        await asyncio.to_thread(own_server.restart)
        for n in range(4):  # each stale connection is met once, and more requests follow
            async with Session(engine) as session:
                session.add(User(name=f"r{n}", email=f"r{n}@x.org"))
                await session.commit()
        async with Session(engine) as session:
            names = [u.name for u in await session.find(User).order_by(User.id.asc()).to_list()]
            pid = (await session.execute("SELECT pg_backend_pid()")).rows[0][0]
        assert names == ["r0", "r1", "r2", "r3"]
        assert pid not in pids_before
    finally:
        await engine.dispose()
