"""Hydration: rows of a SELECT turned into the identity map's objects.

This is the hot path of every query, so the per-row work is one dict
lookup, one ``__dict__.update`` and one store; every row of a result shares
one `ResultInfo` as its state until it needs its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from data_bridge_core.identity import IdentityMap
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import STATE_KEY, ResultInfo, state_of

M = TypeVar("M", bound=Table)


def make_hydrator(
    identity: IdentityMap, model: type[M], result_size: int, *, unique_rows: bool = False
) -> Callable[[Sequence[Any]], M]:
    """A function turning one row (in column order) into the session's instance.

    A row whose key the map already holds gives the object held (its values
    are not overwritten). ``unique_rows``: the result cannot hold a key twice
    (a SELECT of one table); when the map holds no object of the model yet,
    no row can be in it already and the lookup per row is skipped.
    """
    info = table_info(model)
    names = info.field_names
    pk_index = info.pk_index
    held = identity.model_map(model)
    # Every row shares this object as its state until it needs its own.
    result = ResultInfo(result_size, identity)
    identity.results.add(result)
    new = object.__new__

    def hydrate(values: Sequence[Any]) -> M:
        pk = values[pk_index]
        obj = held.get(pk)
        if obj is not None:
            # Now part of this result too (`inspect(obj).result_size` tells N+1
            # detection whether it came from a multi-row result).
            state_of(obj).result = result
            return obj  # type: ignore[return-value]
        obj = new(model)
        d = obj.__dict__
        d.update(zip(names, values, strict=False))  # the SELECT lists these columns
        d[STATE_KEY] = result
        held[pk] = obj
        return obj

    def hydrate_new(values: Sequence[Any]) -> M:
        obj = new(model)
        d = obj.__dict__
        d.update(zip(names, values, strict=False))
        d[STATE_KEY] = result
        held[values[pk_index]] = obj
        return obj

    if info.composite:
        indexes = info.key_indexes

        def hydrate_composite(values: Sequence[Any]) -> M:
            key = tuple([values[i] for i in indexes])
            obj = held.get(key)
            if obj is not None:
                return obj  # type: ignore[return-value]
            obj = new(model)
            d = obj.__dict__
            d.update(zip(names, values, strict=False))
            d[STATE_KEY] = result
            held[key] = obj
            return obj

        hydrate_composite.result = result  # type: ignore[attr-defined]
        return hydrate_composite
    chosen = hydrate_new if unique_rows and not held else hydrate
    chosen.result = result  # type: ignore[attr-defined]
    return chosen
