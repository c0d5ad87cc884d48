"""Hydration: rows of a SELECT turned into the identity map's objects.

This is the hot path of every query. psycopg calls the row maker once per
row with the row's values; the row maker is generated once per model (the
column-to-attribute mapping written out, one store per column), and every
row of a result shares one `ResultInfo` as its state until it needs its own.

The stores go through ``object.__setattr__``, not the instance ``__dict__``:
CPython then keeps the values in the object's own compact array and builds
no dict object until something asks for ``__dict__`` (a change, an own
state). That is 64 bytes less per loaded row, at some speed: a store into
``obj.__dict__`` is faster, but the dict it materializes made W3's memory
1.52x raw tuples against the 1.4x target (bench/README.md has the figures).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from data_bridge_core.identity import IdentityMap
from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.state import STATE_KEY, ResultInfo, state_of

M = TypeVar("M", bound=Table)

RowMaker = Callable[[Sequence[Any]], Any]
# (model, held, result) -> (row maker looking up the map first, row maker for rows
# the map cannot hold yet)
RowMakerFactory = Callable[[type[Table], dict[Any, Table], ResultInfo], tuple[RowMaker, RowMaker]]

def _build_factory(info: TableInfo) -> RowMakerFactory:
    # Only column positions (ints) and field names (Python identifiers, written
    # with repr) go into the source. `st` is object.__setattr__: the model's own
    # __setattr__ checks and records user changes, which loading is not.
    stores = "".join(
        f"        st(obj, {name!r}, values[{index}])\n"
        for index, name in enumerate(info.field_names)
    )
    # The identity key: one column's value, or a tuple of the composite key's.
    if info.composite:
        key = "(" + "".join(f"values[{i}], " for i in info.key_indexes) + ")"
    else:
        key = f"values[{info.pk_index}]"
    source = (
        "def factory(model, held, result):\n"
        "    def hydrate(values):\n"
        f"        pk = {key}\n"
        "        obj = held.get(pk)\n"
        "        if obj is not None:\n"
        # Now part of this result too (`inspect(obj).result_size` tells N+1
        # detection whether it came from a multi-row result).
        "            state_of(obj).result = result\n"
        "            return obj\n"
        "        obj = new(model)\n"
        f"{stores}"
        "        st(obj, state_key, result)\n"
        "        held[pk] = obj\n"
        "        return obj\n"
        "    def hydrate_new(values):\n"
        "        obj = new(model)\n"
        f"{stores}"
        "        st(obj, state_key, result)\n"
        f"        held[{key}] = obj\n"
        "        return obj\n"
        "    return hydrate, hydrate_new\n"
    )
    namespace: dict[str, Any] = {
        "new": object.__new__,
        "state_key": STATE_KEY,
        "state_of": state_of,
        "st": object.__setattr__,
    }
    exec(compile(source, f"<data_bridge row maker {info.name}>", "exec"), namespace)
    factory: RowMakerFactory = namespace["factory"]
    return factory


def row_maker_factory(info: TableInfo) -> RowMakerFactory:
    """The generated row-maker factory of one mapping (built on first use)."""
    factory: RowMakerFactory | None = info.row_maker_factory
    if factory is None:
        factory = info.row_maker_factory = _build_factory(info)
    return factory


def make_hydrator(
    identity: IdentityMap, model: type[M], result_size: int, *, unique_rows: bool = False
) -> Callable[[Sequence[Any]], M]:
    """A function turning one row (in column order) into the session's instance.

    A row whose key the map already holds gives the object held (its values
    are not overwritten). ``unique_rows``: the result cannot hold a key twice
    (a SELECT of one table); when the map holds no object of the model yet,
    no row can be in it already and the lookup per row is skipped.
    """
    held = identity.model_map(model)
    # Every row shares this object as its state until it needs its own.
    result = ResultInfo(result_size, identity)
    identity.add_result(result)
    hydrate, hydrate_new = row_maker_factory(table_info(model))(model, held, result)
    chosen = hydrate_new if unique_rows and not held else hydrate
    chosen.result = result  # type: ignore[attr-defined]
    return chosen
