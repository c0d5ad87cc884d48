"""compile_aggregate: the exact SQL of representative pipelines, every rejected
pipeline, and the results of compiled statements on a real PostgreSQL.

The database tests use raw psycopg (no session, no engine): each test gets a
fresh schema ``agg_<uuid>`` holding ``agg_users`` with 12 known rows, dropped
afterwards, so runs can repeat and run side by side.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
import pytest
from database_server import dsn
from psycopg import sql
from psycopg.rows import dict_row

from data_bridge_core.aggregate import compile_aggregate
from data_bridge_core.errors import ColumnTypeError, UnknownFieldError, UnsupportedOperationError
from data_bridge_core.schema.column import Column
from data_bridge_core.schema.expressions import compile_where
from data_bridge_core.schema.table import Table, table_info

DSN = dsn()


class AggUser(Table):
    id: int = Column(primary_key=True)
    name: str
    age: int = 0
    active: bool = True
    country: str | None = None
    score: float | None = None
    balance: Decimal = Decimal("0")

    class Settings:
        table_name = "agg_users"


class AggDoc(Table):
    id: int = Column(primary_key=True)
    ref: uuid.UUID
    data: dict[str, Any] = Column(default_factory=dict)

    class Settings:
        table_name = "agg_docs"


USERS = table_info(AggUser)
DOCS = table_info(AggDoc)

T = '"agg_users"'
ALL_COLUMNS = ", ".join(
    f'{T}."{c}"' for c in ("id", "name", "age", "active", "country", "score", "balance")
)

API_PIPELINE: list[dict[str, Any]] = [
    {"$match": {"active": True}},
    {"$group": {"_id": "$country", "count": {"$sum": 1}, "avg_age": {"$avg": "$age"}}},
    {"$sort": {"count": -1}},
    {"$limit": 5},
]


def compile_users(
    pipeline: Sequence[Mapping[str, Any]], where: str = "", params: Sequence[Any] = ()
) -> tuple[str, list[Any]]:
    return compile_aggregate(USERS, pipeline, where, params)


# -- exact SQL -----------------------------------------------------------------------


def test_api_example_with_query_filters() -> None:
    where_params: list[Any] = []
    where = compile_where((AggUser.age > 18,), where_params)
    statement, params = compile_users(API_PIPELINE, where, where_params)
    assert statement == (
        f'SELECT {T}."country" AS "_id", count(*) AS "count", '
        f'avg({T}."age")::float8 AS "avg_age" '
        f'FROM {T} WHERE ({T}."age" > %s) AND {T}."active" = %s '
        f'GROUP BY {T}."country" ORDER BY count(*) DESC LIMIT %s'
    )
    assert params == [18, True, 5]


def test_empty_pipeline_selects_the_model_columns() -> None:
    assert compile_users([], f' WHERE {T}."age" > %s', [3]) == (
        f'SELECT {ALL_COLUMNS} FROM {T} WHERE {T}."age" > %s',
        [3],
    )


def test_group_over_all_rows_and_typed_accumulators() -> None:
    statement, params = compile_users(
        [
            {
                "$group": {
                    "_id": None,
                    "n": {"$count": {}},
                    "total": {"$sum": "$age"},
                    "double": {"$sum": 2},
                    "half": {"$sum": 0.5},
                    "money": {"$sum": "$balance"},
                    "avg_money": {"$avg": "$balance"},
                    "all_active": {"$min": "$active"},
                    "any_active": {"$max": "$active"},
                    "last_name": {"$max": "$name"},
                }
            },
            {"$match": {"n": {"$gte": 2}}},
            {"$sort": {"_id": 1, "half": -1}},
        ]
    )
    assert statement == (
        'SELECT NULL AS "_id", count(*) AS "n", '
        f'coalesce(sum({T}."age"), 0)::bigint AS "total", '
        'count(*) * 2 AS "double", count(*) * %s AS "half", '
        f'coalesce(sum({T}."balance"), 0) AS "money", avg({T}."balance") AS "avg_money", '
        f'bool_and({T}."active") AS "all_active", bool_or({T}."active") AS "any_active", '
        f'max({T}."name") AS "last_name" '
        f"FROM {T} HAVING count(*) > 0 AND count(*) >= %s ORDER BY count(*) * %s DESC"
    )
    # The float constant is a parameter wherever its expression appears.
    assert params == [0.5, 2, 0.5]


def test_match_after_group_is_having_with_mongodb_null_rules() -> None:
    statement, params = compile_users(
        [
            {"$sort": {"age": 1}},  # no effect on a $group: dropped
            {"$group": {"_id": "$country", "n": {"$sum": 1}, "top": {"$max": "$score"}}},
            {"$match": {"_id": {"$in": [None, "FR"]}, "n": {"$gt": 1}}},
            {"$sort": {"_id": 1, "top": -1}},
        ]
    )
    assert statement == (
        f'SELECT {T}."country" AS "_id", count(*) AS "n", max({T}."score") AS "top" '
        f'FROM {T} GROUP BY {T}."country" '
        f'HAVING ({T}."country" = ANY(%s) OR {T}."country" IS NULL) AND count(*) > %s '
        f'ORDER BY {T}."country" ASC NULLS FIRST, max({T}."score") DESC NULLS LAST'
    )
    assert params == [["FR"], 1]


def test_match_operators_project_skip_limit() -> None:
    statement, params = compile_users(
        [
            {
                "$match": {
                    "country": {"$nin": ["FR", "DE"]},
                    "age": {"$nin": [1], "$gte": 18, "$lt": 65},
                    "name": {"$ne": "x"},
                    "score": {"$ne": 1.0},
                    "active": True,
                    "balance": {"$lte": Decimal("9.5")},
                }
            },
            {"$sort": {"age": -1, "country": 1}},
            {"$project": {"name": 1, "age": 1}},
            {"$limit": 10},
            {"$skip": 2},
            {"$limit": 20},
        ]
    )
    assert statement == (
        f'SELECT {T}."name", {T}."age" FROM {T} '
        f'WHERE ({T}."country" <> ALL(%s) OR {T}."country" IS NULL) '
        f'AND {T}."age" <> ALL(%s) AND {T}."age" >= %s AND {T}."age" < %s '
        f'AND {T}."name" <> %s AND {T}."score" IS DISTINCT FROM %s '
        f'AND {T}."active" = %s AND {T}."balance" <= %s '
        f'ORDER BY {T}."age" DESC, {T}."country" ASC NULLS FIRST LIMIT %s OFFSET %s'
    )
    assert params == [["FR", "DE"], [1], 18, 65, "x", 1.0, True, Decimal("9.5"), 8, 2]


def test_limit_before_group_and_two_groups_nest_subqueries() -> None:
    statement, params = compile_users(
        [
            {"$sort": {"age": -1}},
            {"$limit": 3},
            {"$group": {"_id": "$country", "c": {"$sum": 1}}},
            {"$group": {"_id": None, "groups": {"$sum": 1}, "biggest": {"$max": "$c"}}},
        ],
        f' WHERE {T}."active" = %s',
        [True],
    )
    inner = (
        f'SELECT {ALL_COLUMNS} FROM {T} WHERE {T}."active" = %s ORDER BY {T}."age" DESC LIMIT %s'
    )
    middle = (
        f'SELECT "_s1"."country" AS "_id", count(*) AS "c" FROM ({inner}) AS "_s1" '
        'GROUP BY "_s1"."country"'
    )
    assert statement == (
        'SELECT NULL AS "_id", count(*) AS "groups", max("_s2"."c") AS "biggest" '
        f'FROM ({middle}) AS "_s2" HAVING count(*) > 0'
    )
    assert params == [True, 3]


def test_match_after_limit_filters_a_subquery() -> None:
    statement, params = compile_users(
        [
            {"$project": {"id": 1, "country": 1}},
            {"$skip": 1},
            {"$match": {"country": "FR"}},
            {"$project": {"country": 0}},
        ]
    )
    assert statement == (
        f'SELECT "_s1"."id" FROM (SELECT {T}."id", {T}."country" FROM {T} OFFSET %s) AS "_s1" '
        'WHERE "_s1"."country" = %s'
    )
    assert params == [1, "FR"]


def test_count_stage() -> None:
    assert compile_users([{"$match": {"age": 3}}, {"$count": "total"}]) == (
        f'SELECT count(*) AS "total" FROM {T} WHERE {T}."age" = %s HAVING count(*) > 0',
        [3],
    )


def test_output_names_are_quoted_identifiers() -> None:
    statement, _ = compile_users([{"$group": {"_id": None, 'a "b" 100%': {"$sum": 1}}}])
    # Quoted by psycopg.sql; "%" doubled for the %s paramstyle.
    assert statement == (
        f'SELECT NULL AS "_id", count(*) AS "a ""b"" 100%%" FROM {T} HAVING count(*) > 0'
    )


# -- rejected pipelines (nothing is compiled) ---------------------------------------------

UNSUPPORTED = UnsupportedOperationError

REJECTED: list[tuple[Any, type[Exception], str]] = [
    ({"$match": {}}, UNSUPPORTED, r"takes a list of stages, got dict"),
    ("$match", UNSUPPORTED, r"takes a list of stages, got str"),
    ([{"$lookup": {"from": "x"}}], UNSUPPORTED, r"unsupported aggregate stage '\$lookup'"),
    ([{"$match": {}}, {"$out": "x"}], UNSUPPORTED, r"unsupported aggregate stage '\$out'"),
    ([["$match", {}]], UNSUPPORTED, r"pipeline\[0\] must be a dict with one key"),
    (
        [{"$match": {}, "$limit": 1}],
        UNSUPPORTED,
        r"pipeline\[0\] must have exactly one key .*'\$match', '\$limit'",
    ),
    ([{}], UNSUPPORTED, r"pipeline\[0\] must have exactly one key"),
    (
        [{"$match": {"name": {"$regex": "^a"}}}],
        UNSUPPORTED,
        r"unsupported \$match operator '\$regex' on field 'name'",
    ),
    ([{"$match": {"$or": [{"age": 1}]}}], UNSUPPORTED, r"unsupported \$match operator '\$or'"),
    ([{"$match": ["age"]}], UNSUPPORTED, r"\$match takes a dict, got list"),
    (
        [{"$match": {"age": {"$gt": 1, "x": 2}}}],
        UNSUPPORTED,
        r"\$match on field 'age' mixes operators and plain keys",
    ),
    (
        [{"$match": {"age": {"$gt": None}}}],
        UNSUPPORTED,
        r"'\$gt' on field 'age' needs a value, not None",
    ),
    ([{"$match": {"age": {"$in": 3}}}], UNSUPPORTED, r"'\$in' on field 'age' takes a list"),
    ([{"$match": {"name": {"$nin": "ab"}}}], UNSUPPORTED, r"'\$nin' on field 'name' takes a list"),
    (
        [{"$match": {"nope": 1}}],
        UnknownFieldError,
        r"AggUser has no field 'nope' in aggregate \$match",
    ),
    ([{"$match": {"age": "old"}}], ColumnTypeError, r"AggUser\.age expects int, got str"),
    ([{"$match": {"age": {"$in": [1, "x"]}}}], ColumnTypeError, r"AggUser\.age expects int"),
    ([{"$match": {"active": 1}}], ColumnTypeError, r"AggUser\.active expects bool, got int"),
    (
        [{"$group": {"_id": "$country", "n": {"$sum": 1}}}, {"$match": {"n": "3"}}],
        ColumnTypeError,
        r"\$group\.n expects a number, got str",
    ),
    (
        [{"$group": {"_id": None, "n": {"$sum": 1}}}, {"$match": {"_id": "FR"}}],
        ColumnTypeError,
        r"\$group\._id expects None",
    ),
    (
        [{"$group": {"_id": "$nope", "n": {"$sum": 1}}}],
        UnknownFieldError,
        r"AggUser has no field 'nope' in aggregate \$group",
    ),
    (
        [{"$group": {"_id": None, "m": {"$max": "$nope"}}}],
        UnknownFieldError,
        r"AggUser has no field 'nope' in aggregate \$group",
    ),
    (
        [{"$group": {"_id": "country"}}],
        UNSUPPORTED,
        r"\$group _id must be a field reference such as '\$age' \(with '\$'\), got 'country'",
    ),
    (
        [{"$group": {"_id": None, "a": {"$avg": "age"}}}],
        UNSUPPORTED,
        r"\$avg for 'a' must be a field reference .* got 'age'",
    ),
    (
        [{"$group": {"_id": None, "a": {"$min": "$$ROOT"}}}],
        UNSUPPORTED,
        r"variables such as '\$\$ROOT' are not supported",
    ),
    ([{"$group": {"_id": 5}}], UNSUPPORTED, r"_id must be a '\$field' reference or None, got 5"),
    (
        [{"$group": {"_id": {"c": "$country", "a": "$active"}}}],
        UNSUPPORTED,
        r"compound \$group _id .* is not supported",
    ),
    ([{"$group": {"n": {"$sum": 1}}}], UNSUPPORTED, r"\$group needs an '_id'"),
    ([{"$group": "$country"}], UNSUPPORTED, r"\$group takes a dict, got str"),
    (
        [{"$group": {"_id": None, "names": {"$push": "$name"}}}],
        UNSUPPORTED,
        r"unsupported \$group accumulator '\$push' for 'names'",
    ),
    (
        [{"$group": {"_id": None, "n": {"$sum": 1, "$avg": "$age"}}}],
        UNSUPPORTED,
        r"\$group output 'n' must be one accumulator",
    ),
    ([{"$group": {"_id": None, "n": 1}}], UNSUPPORTED, r"'n' must be one accumulator"),
    (
        [{"$group": {"_id": None, "n": {"$count": {"x": 1}}}}],
        UNSUPPORTED,
        r"\$count for 'n' takes an empty dict",
    ),
    (
        [{"$group": {"_id": None, "n": {"$sum": True}}}],
        UNSUPPORTED,
        r"\$sum for 'n' takes a number or a '\$field' reference, got True",
    ),
    (
        [{"$group": {"_id": None, "n": {"$sum": [1]}}}],
        UNSUPPORTED,
        r"\$sum for 'n' takes a number",
    ),
    (
        [{"$group": {"_id": None, "n": {"$sum": "1"}}}],
        UNSUPPORTED,
        r"\$sum for 'n' must be a field reference",
    ),
    (
        [{"$group": {"_id": None, "a": {"$avg": "$name"}}}],
        UNSUPPORTED,
        r"\$avg for 'a' needs a numeric field, '\$name' is str",
    ),
    (
        [{"$group": {"_id": None, "s": {"$sum": "$active"}}}],
        UNSUPPORTED,
        r"\$sum for 's' needs a numeric field, '\$active' is bool",
    ),
    ([{"$group": {"_id": None, "$n": {"$sum": 1}}}], UNSUPPORTED, r"got '\$n'"),
    ([{"$group": {"_id": None, "": {"$sum": 1}}}], UNSUPPORTED, r"non-empty str"),
    ([{"$group": {"_id": None, "a.b": {"$sum": 1}}}], UNSUPPORTED, r"got 'a\.b'"),
    ([{"$group": {"_id": None, 1: {"$sum": 1}}}], UNSUPPORTED, r"output name .* got 1"),
    ([{"$group": {"_id": None, "x" * 64: {"$sum": 1}}}], UNSUPPORTED, r"at most 63 bytes"),
    (
        [{"$group": {"_id": "$country", "n": {"$sum": 1}}}, {"$sort": {"age": 1}}],
        UnknownFieldError,
        r"\$group output has no field 'age' in aggregate \$sort",
    ),
    ([{"$sort": {"age": 2}}], UNSUPPORTED, r"\$sort direction for 'age' must be 1 or -1, got 2"),
    ([{"$sort": {"age": True}}], UNSUPPORTED, r"must be 1 or -1, got True"),
    ([{"$sort": {}}], UNSUPPORTED, r"\$sort takes a non-empty dict"),
    ([{"$sort": {"nope": 1}}], UnknownFieldError, r"no field 'nope' in aggregate \$sort"),
    ([{"$limit": -1}], UNSUPPORTED, r"\$limit takes an int from 0 to \d+; this one is out of"),
    ([{"$limit": 1.5}], UNSUPPORTED, r"\$limit takes an int from 0 to \d+, got float"),
    ([{"$limit": True}], UNSUPPORTED, r"\$limit takes an int from 0 to \d+, got bool"),
    ([{"$skip": -2}], UNSUPPORTED, r"\$skip takes an int from 0 to \d+; this one is out of range"),
    ([{"$skip": "1"}], UNSUPPORTED, r"\$skip takes an int from 0 to \d+, got str"),
    ([{"$project": {}}], UNSUPPORTED, r"\$project takes a non-empty dict"),
    ([{"$project": {"name": "$name"}}], UNSUPPORTED, r"only 1 \(include\) or 0 \(exclude\)"),
    ([{"$project": {"name": 2}}], UNSUPPORTED, r"'name': 2 is not supported"),
    ([{"$project": {"name": 1, "age": 0}}], UNSUPPORTED, r"cannot mix inclusion"),
    (
        [{"$project": {"nope": 1}}],
        UnknownFieldError,
        r"AggUser has no field 'nope' in aggregate \$project",
    ),
    ([{"$project": {"_id": 1}}], UnknownFieldError, r"no field '_id' in aggregate \$project"),
    (
        [{"$project": {"name": 1}}, {"$match": {"age": 3}}],
        UnknownFieldError,
        r"\$project output has no field 'age' in aggregate \$match",
    ),
    ([{"$count": ""}], UNSUPPORTED, r"\$count output name must be a non-empty str"),
    ([{"$count": "$n"}], UNSUPPORTED, r"\$count output name"),
]


@pytest.mark.parametrize(("pipeline", "error", "message"), REJECTED)
def test_rejected_pipelines(pipeline: Any, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        compile_users(pipeline)


def test_unsupported_operation_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"unsupported aggregate stage '\$facet'"):
        compile_users([{"$facet": {}}])


def test_stage_names_are_checked_before_any_stage_is_compiled() -> None:
    # The unknown stage is reported even though an earlier stage is also wrong.
    with pytest.raises(UnsupportedOperationError, match=r"stage '\$unwind'"):
        compile_users([{"$limit": -1}, {"$unwind": "$x"}])


@pytest.mark.parametrize(
    ("accumulator", "field", "type_name"), [("$min", "ref", "UUID"), ("$max", "data", "dict")]
)
def test_min_max_rejected_on_types_postgres_cannot_order(
    accumulator: str, field: str, type_name: str
) -> None:
    pipeline = [{"$group": {"_id": None, "x": {accumulator: f"${field}"}}}]
    expected = f"{accumulator} for 'x' is not supported on {type_name} field '${field}'"
    with pytest.raises(UnsupportedOperationError, match=re.escape(expected)):
        compile_aggregate(DOCS, pipeline, "", [])


def test_where_sql_must_be_a_where_clause() -> None:
    with pytest.raises(ValueError, match="where_sql must be empty or start with ' WHERE '"):
        compile_users([], "AND 1 = 1")


# -- real PostgreSQL -------------------------------------------------------------------

DDL = """
CREATE TABLE agg_users (
    id bigint PRIMARY KEY,
    name text NOT NULL,
    age bigint NOT NULL,
    active boolean NOT NULL,
    country text,
    score double precision,
    balance numeric NOT NULL
)
"""

# id, name, age, active, country, score, balance
ROWS: list[tuple[Any, ...]] = [
    (1, "ann", 30, True, "FR", 1.5, Decimal("10.50")),
    (2, "bob", 25, True, "FR", None, Decimal("20.25")),
    (3, "cid", 41, True, "FR", 3.0, Decimal("0")),
    (4, "dee", 22, True, "FR", 2.5, Decimal("5.00")),
    (5, "dan", 35, True, "DE", None, Decimal("100.10")),
    (6, "eve", 20, True, "DE", 4.0, Decimal("1.10")),
    (7, "fin", 44, True, "DE", 1.0, Decimal("2.00")),
    (8, "hal", 33, True, None, 2.0, Decimal("3.30")),
    (9, "ivy", 27, True, None, None, Decimal("4.40")),
    (10, "fay", 50, True, "US", 5.0, Decimal("7.70")),
    (11, "gus", 45, False, "US", None, Decimal("8.80")),
    (12, "joe", 60, False, "US", 0.5, Decimal("9.90")),
]


@pytest.fixture
async def conn() -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    schema = sql.Identifier(f"agg_{uuid.uuid4().hex}")
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as connection:
        await connection.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        try:
            await connection.execute(sql.SQL("SET search_path TO {}").format(schema))
            await connection.execute(DDL)
            async with connection.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO agg_users VALUES (%s, %s, %s, %s, %s, %s, %s)", ROWS
                )
            yield connection
        finally:
            await connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(schema))


async def run(
    connection: psycopg.AsyncConnection[Any],
    pipeline: Sequence[Mapping[str, Any]],
    where: str = "",
    params: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    statement, all_params = compile_users(pipeline, where, params)
    async with connection.cursor(row_factory=dict_row) as cur:
        await cur.execute(statement, all_params)
        return await cur.fetchall()


async def test_db_api_example(conn: psycopg.AsyncConnection[Any]) -> None:
    rows = await run(conn, API_PIPELINE)
    assert rows == [
        {"_id": "FR", "count": 4, "avg_age": 29.5},
        {"_id": "DE", "count": 3, "avg_age": 33.0},
        {"_id": None, "count": 2, "avg_age": 30.0},
        {"_id": "US", "count": 1, "avg_age": 50.0},
    ]
    assert all(type(r["count"]) is int and type(r["avg_age"]) is float for r in rows)
    assert await run(conn, [*API_PIPELINE[:3], {"$limit": 2}]) == rows[:2]


async def test_db_query_filters_and_match_are_and_ed(conn: psycopg.AsyncConnection[Any]) -> None:
    where_params: list[Any] = []
    where = compile_where((AggUser.age > 40,), where_params)
    rows = await run(conn, API_PIPELINE, where, where_params)
    assert sorted(rows, key=lambda r: r["_id"]) == [
        {"_id": "DE", "count": 1, "avg_age": 44.0},
        {"_id": "FR", "count": 1, "avg_age": 41.0},
        {"_id": "US", "count": 1, "avg_age": 50.0},
    ]


async def test_db_group_over_all_rows(conn: psycopg.AsyncConnection[Any]) -> None:
    rows = await run(
        conn,
        [
            {
                "$group": {
                    "_id": None,
                    "n": {"$count": {}},
                    "rows": {"$sum": 1},
                    "double": {"$sum": 2},
                    "half": {"$sum": 0.5},
                    "total_age": {"$sum": "$age"},
                    "avg_age": {"$avg": "$age"},
                    "youngest": {"$min": "$age"},
                    "oldest": {"$max": "$age"},
                    "first_name": {"$min": "$name"},
                    "all_active": {"$min": "$active"},
                    "any_active": {"$max": "$active"},
                    "money": {"$sum": "$balance"},
                    "avg_money": {"$avg": "$balance"},
                }
            }
        ],
    )
    assert rows == [
        {
            "_id": None,
            "n": 12,
            "rows": 12,
            "double": 24,
            "half": 6.0,
            "total_age": 432,
            "avg_age": 36.0,
            "youngest": 20,
            "oldest": 60,
            "first_name": "ann",
            "all_active": False,
            "any_active": True,
            "money": Decimal("173.05"),
            "avg_money": rows[0]["avg_money"],
        }
    ]
    row = rows[0]
    assert row["avg_money"].quantize(Decimal("0.000001")) == Decimal("14.420833")
    assert type(row["total_age"]) is int
    assert type(row["avg_age"]) is float
    assert type(row["half"]) is float
    assert type(row["avg_money"]) is Decimal
    assert await run(conn, [{"$count": "total"}]) == [{"total": 12}]


async def test_db_no_matching_row_gives_no_group(conn: psycopg.AsyncConnection[Any]) -> None:
    # As in MongoDB: no input document, no group (PostgreSQL alone would return one row).
    nothing = {"$match": {"age": {"$gt": 100}}}
    assert await run(conn, [nothing, {"$group": {"_id": None, "n": {"$sum": 1}}}]) == []
    assert await run(conn, [nothing, {"$count": "n"}]) == []
    assert await run(conn, [nothing, {"$group": {"_id": "$country", "n": {"$sum": 1}}}]) == []


async def test_db_min_max_per_group_with_null_group_first(
    conn: psycopg.AsyncConnection[Any],
) -> None:
    rows = await run(
        conn,
        [
            {
                "$group": {
                    "_id": "$country",
                    "youngest": {"$min": "$age"},
                    "oldest": {"$max": "$age"},
                    "first": {"$min": "$name"},
                    "last": {"$max": "$name"},
                    "all_active": {"$min": "$active"},
                    "any_active": {"$max": "$active"},
                    "low": {"$min": "$score"},
                    "high": {"$max": "$score"},
                }
            },
            {"$sort": {"_id": 1}},
        ],
    )
    assert rows == [
        {"_id": None, "youngest": 27, "oldest": 33, "first": "hal", "last": "ivy",
         "all_active": True, "any_active": True, "low": 2.0, "high": 2.0},
        {"_id": "DE", "youngest": 20, "oldest": 44, "first": "dan", "last": "fin",
         "all_active": True, "any_active": True, "low": 1.0, "high": 4.0},
        {"_id": "FR", "youngest": 22, "oldest": 41, "first": "ann", "last": "dee",
         "all_active": True, "any_active": True, "low": 1.5, "high": 3.0},
        {"_id": "US", "youngest": 45, "oldest": 60, "first": "fay", "last": "joe",
         "all_active": False, "any_active": True, "low": 0.5, "high": 5.0},
    ]  # fmt: skip
    descending = await run(conn, [{"$group": {"_id": "$country"}}, {"$sort": {"_id": -1}}])
    assert descending == [{"_id": "US"}, {"_id": "FR"}, {"_id": "DE"}, {"_id": None}]


async def test_db_sum_of_a_field(conn: psycopg.AsyncConnection[Any]) -> None:
    rows = await run(
        conn,
        [
            {
                "$group": {
                    "_id": "$country",
                    "ages": {"$sum": "$age"},
                    "scores": {"$sum": "$score"},
                    "avg_score": {"$avg": "$score"},
                }
            },
            {"$sort": {"ages": -1}},
        ],
    )
    assert rows == [
        {"_id": "US", "ages": 155, "scores": 5.5, "avg_score": 2.75},
        {"_id": "FR", "ages": 118, "scores": 7.0, "avg_score": 7.0 / 3},
        {"_id": "DE", "ages": 99, "scores": 5.0, "avg_score": 2.5},
        {"_id": None, "ages": 60, "scores": 2.0, "avg_score": 2.0},
    ]
    # A group whose values are all NULL: $sum is 0 (MongoDB), $avg is None.
    only_nulls = await run(
        conn,
        [
            {"$match": {"score": None}},
            {"$group": {"_id": None, "s": {"$sum": "$score"}, "a": {"$avg": "$score"}}},
        ],
    )
    assert only_nulls == [{"_id": None, "s": 0.0, "a": None}]


async def test_db_match_after_group(conn: psycopg.AsyncConnection[Any]) -> None:
    group = {"$group": {"_id": "$country", "count": {"$sum": 1}, "avg_age": {"$avg": "$age"}}}
    rows = await run(conn, [group, {"$match": {"count": {"$gte": 3}}}, {"$sort": {"_id": 1}}])
    assert rows == [
        {"_id": "DE", "count": 3, "avg_age": 33.0},
        {"_id": "FR", "count": 4, "avg_age": 29.5},
        {"_id": "US", "count": 3, "avg_age": 155 / 3},
    ]
    rows = await run(
        conn,
        [
            group,
            {"$match": {"_id": {"$in": [None, "FR"]}, "avg_age": {"$lt": 40}}},
            {"$sort": {"count": 1}},
            {"$project": {"avg_age": 0}},
        ],
    )
    assert rows == [{"_id": None, "count": 2}, {"_id": "FR", "count": 4}]


async def test_db_nin_ne_and_null_country(conn: psycopg.AsyncConnection[Any]) -> None:
    async def ids(match: dict[str, Any]) -> list[int]:
        rows = await run(conn, [{"$match": match}, {"$sort": {"id": 1}}, {"$project": {"id": 1}}])
        return [r["id"] for r in rows]

    # MongoDB semantics: $nin and $ne also match a NULL country.
    assert await ids({"country": {"$nin": ["FR", "DE"]}}) == [8, 9, 10, 11, 12]
    assert await ids({"country": {"$nin": ["FR", "DE", None]}}) == [10, 11, 12]
    assert await ids({"country": {"$ne": "FR"}}) == [5, 6, 7, 8, 9, 10, 11, 12]
    assert await ids({"country": None}) == [8, 9]
    assert await ids({"country": {"$ne": None}, "age": {"$gte": 44}}) == [7, 10, 11, 12]
    assert await ids({"country": {"$in": ["US", None]}}) == [8, 9, 10, 11, 12]
    assert await ids({"country": {"$in": []}}) == []
    assert await ids({"age": {"$nin": []}, "active": False}) == [11, 12]
    assert await ids({"age": {"$gt": 30, "$lte": 41}, "name": {"$ne": "dan"}}) == [3, 8]


async def test_db_rows_without_group(conn: psycopg.AsyncConnection[Any]) -> None:
    rows = await run(
        conn,
        [
            {"$match": {"active": True}},
            {"$sort": {"age": -1}},
            {"$skip": 1},
            {"$limit": 2},
            {"$project": {"name": 1, "age": 1}},
        ],
    )
    assert rows == [{"name": "fin", "age": 44}, {"name": "cid", "age": 41}]
    full = await run(conn, [{"$match": {"id": 1}}])
    assert full == [
        {"id": 1, "name": "ann", "age": 30, "active": True, "country": "FR",
         "score": 1.5, "balance": Decimal("10.50")}
    ]  # fmt: skip


async def test_db_nested_subqueries(conn: psycopg.AsyncConnection[Any]) -> None:
    # $limit before $group: the three oldest, then grouped.
    rows = await run(
        conn,
        [
            {"$sort": {"age": -1}},
            {"$limit": 3},
            {"$group": {"_id": None, "n": {"$sum": 1}, "ages": {"$sum": "$age"}}},
        ],
    )
    assert rows == [{"_id": None, "n": 3, "ages": 155}]
    # Two $groups: the group sizes, then their count and maximum.
    rows = await run(
        conn,
        [
            {"$group": {"_id": "$country", "c": {"$sum": 1}}},
            {"$group": {"_id": None, "groups": {"$sum": 1}, "biggest": {"$max": "$c"}}},
        ],
    )
    assert rows == [{"_id": None, "groups": 4, "biggest": 4}]
    # $match after $skip filters what the skip kept.
    rows = await run(
        conn,
        [
            {"$sort": {"id": 1}},
            {"$skip": 9},
            {"$match": {"active": False}},
            {"$project": {"id": 1}},
        ],
    )
    assert rows == [{"id": 11}, {"id": 12}]
