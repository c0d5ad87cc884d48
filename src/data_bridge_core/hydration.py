"""Hydration: rows of a SELECT turned into the identity map's objects.

This is the hot path of every query. A query of one table fetches psycopg's
tuples and one generated loop turns the list into objects in place
(`hydrate_rows`); streams, joins and the user's own SQL have psycopg call a
generated row maker once per row. Both are generated once per model and
store kind (the column-to-attribute mapping written out, one store per
column), and every row of a result shares one `ResultInfo` as its state
until it needs its own.

Two kinds of store, chosen per result by its size:

- A page (fewer than `COMPACT_FROM_ROWS` rows) stores into the instance's
  ``__dict__``: the fastest store CPython has for a class with its own
  ``__setattr__`` (about 0.5 µs a row of six columns here), at the price of
  the dict object (about 64 bytes a row).
- A large result (and every stream, whose size is not known) stores through
  ``object.__setattr__``: CPython then keeps the values in the object's own
  compact array and builds no dict until something asks for ``__dict__``
  (a change, an own state). That saves the 64 bytes a row, which is what
  counts when thousands of rows are held, but each store is a slot-wrapper
  call (about 1.4 µs a row of six columns). bench/README.md has the figures.

Both give the same objects; only their memory layout differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from data_bridge_core.errors import UnsupportedOperationError
from data_bridge_core.identity import IdentityMap
from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.state import STATE_KEY, ResultInfo, state_of

M = TypeVar("M", bound=Table)

RowMaker = Callable[[Sequence[Any]], Any]
# (model, held, result, pending, index, append) -> (row maker looking up the map
# first, row maker for rows the map cannot hold yet: it appends them to a batch
# the map indexes when it is next looked into; see identity.py)
RowMakerFactory = Callable[
    [
        type[Table],
        dict[Any, Table],
        ResultInfo,
        list[Any],
        Callable[[], None],
        Callable[[Any], None],
    ],
    tuple[RowMaker, RowMaker],
]

# A list of row tuples turned into the objects in place (see `hydrate_rows`):
# load(rows, model, result, held, pending, index) looks each up in the map
# first, load_new(rows, model, result) does not.
RowsLoader = Callable[..., list[Any]]

# Results of at least this many rows keep their objects compact (see above).
COMPACT_FROM_ROWS = 1000


def _build(info: TableInfo, compact: bool) -> tuple[RowMakerFactory, RowsLoader, RowsLoader]:
    # Only column positions (ints) and field names (Python identifiers, written
    # with repr) go into the source. Loading stores past the model's own
    # __setattr__ (which checks and records user changes, which loading is not):
    # into the instance's __dict__, or through object.__setattr__ bound to the
    # object once (`bind`): a bound slot wrapper is called without the argument
    # tuple slicing and type check an unbound one costs per call (bench/README.md,
    # round 3, session 2).
    # A column whose read value is converted (an int field over numeric, see
    # `TableInfo.loaders`) is stored through its loader; other models' source is
    # unchanged and pays nothing.
    read = {index: f"load{index}(values[{index}])" for index, _, _ in info.loaders}
    pairs = [
        (name, read.get(index, f"values[{index}]")) for index, name in enumerate(info.field_names)
    ]
    pairs.append((STATE_KEY, "result"))

    def stores(indent: str) -> str:
        if compact:
            lines = [f"{indent}s = bind(obj)\n"]
            lines += [f"{indent}s({n!r}, {v})\n" for n, v in pairs]
        else:
            lines = [f"{indent}d = obj.__dict__\n"]
            lines += [f"{indent}d[{n!r}] = {v}\n" for n, v in pairs]
        return "".join(lines)

    # The identity key: one column's value, or a tuple of the composite key's.
    if info.composite:
        key = "(" + "".join(read.get(i, f"values[{i}]") + ", " for i in info.key_indexes) + ")"
    else:
        key = read.get(info.pk_index, f"values[{info.pk_index}]")
    source = (
        "def factory(model, held, result, pending, index, append):\n"
        "    def hydrate(values):\n"
        f"        pk = {key}\n"
        "        obj = held.get(pk)\n"
        # A batch another result left unindexed may hold the row (a stream
        # resumed after a query of the same model).
        "        if obj is None and pending:\n"
        "            index()\n"
        "            obj = held.get(pk)\n"
        "        if obj is not None:\n"
        # Now part of this result too (`inspect(obj).result_size` tells N+1
        # detection whether it came from a multi-row result); a row the same
        # result returns again (a joined to-one's repeated target) is already.
        "            if getattr(obj, STATE_KEY) is not result:\n"
        "                state_of(obj).result = result\n"
        "            return obj\n"
        "        obj = new(model)\n"
        f"{stores('        ')}"
        "        held[pk] = obj\n"
        "        return obj\n"
        "    def hydrate_new(values):\n"
        "        obj = new(model)\n"
        f"{stores('        ')}"
        "        append(obj)\n"
        "        return obj\n"
        "    return hydrate, hydrate_new\n"
        # The same two, as one loop over a fetched list of rows (`hydrate_rows`):
        # no Python call per row, each row's tuple replaced by its object.
        "def load(rows, model, result, held, pending, index):\n"
        "    for i, values in enumerate(rows):\n"
        f"        pk = {key}\n"
        "        obj = held.get(pk)\n"
        "        if obj is None and pending:\n"
        "            index()\n"
        "            obj = held.get(pk)\n"
        "        if obj is None:\n"
        "            obj = new(model)\n"
        f"{stores('            ')}"
        "            held[pk] = obj\n"
        "        elif getattr(obj, STATE_KEY) is not result:\n"
        "            state_of(obj).result = result\n"
        "        rows[i] = obj\n"
        "    return rows\n"
        "def load_new(rows, model, result):\n"
        "    for i, values in enumerate(rows):\n"
        "        obj = new(model)\n"
        f"{stores('        ')}"
        "        rows[i] = obj\n"
        "    return rows\n"
    )
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "STATE_KEY": STATE_KEY,
        "state_of": state_of,
        "bind": object.__setattr__.__get__,
    }
    namespace.update({f"load{index}": load for index, _, load in info.loaders})
    kind = "compact" if compact else "dict"
    exec(compile(source, f"<data_bridge row maker {info.name} {kind}>", "exec"), namespace)
    return namespace["factory"], namespace["load"], namespace["load_new"]


def _built(info: TableInfo, compact: bool) -> tuple[RowMakerFactory, RowsLoader, RowsLoader]:
    # The generated functions of one mapping and store kind (built on first use).
    built: dict[bool, tuple[RowMakerFactory, RowsLoader, RowsLoader]] | None
    built = info.row_maker_factories
    if built is None:
        built = info.row_maker_factories = {}
    found = built.get(compact)
    if found is None:
        found = built[compact] = _build(info, compact)
    return found


def row_maker_factory(info: TableInfo, *, compact: bool = True) -> RowMakerFactory:
    """The generated row-maker factory of one mapping and store kind (built on first use)."""
    return _built(info, compact)[0]


def _new_result(identity: IdentityMap, size: int) -> ResultInfo:
    # Every row shares this object as its state until it needs its own.
    result = ResultInfo(size, identity)
    identity.add_result(result)
    return result


def _pick(
    identity: IdentityMap, model: type[M], result: ResultInfo, compact: bool, unique_rows: bool
) -> RowMaker:
    # The model's mapping, with any batch left unindexed put into it first.
    held = identity.model_map(model)
    # A result that cannot hold a key twice, while the map holds nothing of the
    # model: no row can be in the map already, so the lookup per row is skipped,
    # and the rows go to a batch the map indexes only when it is next looked into.
    fresh = unique_rows and not held
    batch: list[Table] = identity.new_batch(model) if fresh else []
    hydrate, hydrate_new = row_maker_factory(table_info(model), compact=compact)(
        model, held, result, identity.pending, identity.index_pending, batch.append
    )
    return hydrate_new if fresh else hydrate


def make_hydrator(
    identity: IdentityMap,
    model: type[M],
    result_size: int,
    *,
    unique_rows: bool = False,
    compact: bool | None = None,
) -> Callable[[Sequence[Any]], M]:
    """A function turning one row (in column order) into the session's instance.

    A row whose key the map already holds gives the object held (its values
    are not overwritten). ``result_size`` is the number of rows to hydrate;
    unless ``compact`` says otherwise, it chooses the store (see the module's
    docstring). ``unique_rows``: the result cannot hold a key twice (a SELECT
    of one table). The function's ``result`` is the rows' shared state.
    """
    result = _new_result(identity, result_size)
    if compact is None:
        compact = result_size >= COMPACT_FROM_ROWS
    chosen = _pick(identity, model, result, compact, unique_rows)
    chosen.result = result  # type: ignore[attr-defined]
    return chosen


def hydrate_rows(
    identity: IdentityMap, model: type[M], rows: list[Any], *, unique_rows: bool = False
) -> list[M]:
    """``rows`` (a fetched list of row tuples in column order) turned into the
    session's instances in place, as `make_hydrator`'s function would one by one;
    returns the same list.

    One generated loop for the whole list: no Python call per row (psycopg
    builds the tuples in C), and each tuple is freed as its object replaces it.
    """
    if not rows:
        return rows
    result = _new_result(identity, len(rows))
    held = identity.model_map(model)
    _factory, load, load_new = _built(table_info(model), len(rows) >= COMPACT_FROM_ROWS)
    if unique_rows and not held:
        # No row can be in the map yet (see `_pick`): no lookups, and one batch.
        load_new(rows, model, result)
        identity.new_batch(model).extend(rows)
    else:
        load(rows, model, result, held, identity.pending, identity.index_pending)
    return rows


def hydrating_row_factory(
    identity: IdentityMap, model: type[M], *, unique_rows: bool = False
) -> Callable[[Any], Callable[[Sequence[Any]], M]]:
    """A psycopg row factory hydrating ``model``'s rows, for a statement whose row
    count is known only when its result arrives (the cursor's ``rowcount``).

    Its ``result`` is the rows' shared state; its size is the row count.
    """
    result = _new_result(identity, 0)

    def row_factory(cursor: Any) -> Callable[[Sequence[Any]], M]:
        rows: int = cursor.rowcount
        result.size = max(rows, 0)
        # rowcount is -1 when not known: keep such rows compact.
        return _pick(identity, model, result, rows < 0 or rows >= COMPACT_FROM_ROWS, unique_rows)

    row_factory.result = result  # type: ignore[attr-defined]
    return row_factory


def by_name_row_factory(
    identity: IdentityMap, model: type[M]
) -> Callable[[Any], Callable[[Sequence[Any]], M]]:
    """`hydrating_row_factory` for a statement of the user's own (``from_sql``): its
    columns are found by name, in any order, extra ones ignored; a missing one is
    an `UnsupportedOperationError` naming it."""
    info = table_info(model)
    hydrating = hydrating_row_factory(identity, model)

    def by_name(cur: Any) -> Callable[[Sequence[Any]], M]:
        returned = [c.name for c in cur.description or ()]
        missing = [n for n in info.field_names if n not in returned]
        if missing:
            raise UnsupportedOperationError(
                f"from_sql({model.__name__}, ...): the statement does not return the "
                f"column(s) {', '.join(missing)}; select them all, as in "
                f"SELECT {info.name}.* FROM {info.name} ..."
            )
        positions = [returned.index(n) for n in info.field_names]
        hydrate = hydrating(cur)
        # Columns find() reads through read_sql (inet as its text): their values are
        # converted here, so from_sql gives what find() gives.
        loaded = [
            (index, convert)
            for index, name in enumerate(info.field_names)
            if (convert := info.columns[name].column_type.from_loaded) is not None
        ]
        if loaded:

            def converted(values: Sequence[Any]) -> M:
                row = [values[i] for i in positions]
                for index, convert in loaded:
                    row[index] = convert(row[index])
                return hydrate(row)

            return converted
        if positions == list(range(len(positions))):
            return hydrate
        return lambda values: hydrate([values[i] for i in positions])

    return by_name
