"""data_bridge_core: an async PostgreSQL ORM on psycopg 3.

The package contains no tracing code. Instrumentations hook into the seams
listed in docs/extension-points.md.
"""

from data_bridge_core.computed import Computed, computed, scalar
from data_bridge_core.engine import Engine
from data_bridge_core.errors import (
    ColumnTypeError,
    DatabaseError,
    DataBridgeError,
    IntegrityError,
    InvalidStateError,
    MissingFieldError,
    ModelDefinitionError,
    NoSessionError,
    PendingRollbackError,
    PreparedStatementError,
    RaiseLoadError,
    RelationshipError,
    SchemaMismatchError,
    SessionClosedError,
    SessionError,
    StoredValueError,
    UnknownFieldError,
    UnsupportedOperationError,
    ValidationError,
)
from data_bridge_core.loading import (
    EagerBatch,
    EagerLoad,
    joinedload,
    noload,
    raiseload,
    selectinload,
)
from data_bridge_core.migrations import MigrationError, Migrator
from data_bridge_core.query import Query
from data_bridge_core.relationships import RelatedList, Relationship, relationship
from data_bridge_core.row_query import RowQuery
from data_bridge_core.schema.column import Column, ColumnInfo
from data_bridge_core.schema.functions import Function, Selectable, func
from data_bridge_core.schema.table import Table, identity_key, table_info
from data_bridge_core.schema.typed import Mapped, Rel
from data_bridge_core.session import NestedTransaction, Result, Session, current_session
from data_bridge_core.state import STATE_KEY, InstanceState, ResultInfo, result_of, state_of
from data_bridge_core.subqueries import exists
from data_bridge_core.views import loaded

__version__ = "0.1.0"


def inspect(obj: Table) -> InstanceState:
    """The ORM state of a model instance (read it, do not change it)."""
    state = getattr(obj, "__dict__", {}).get(STATE_KEY)
    if isinstance(state, InstanceState):
        return state
    if isinstance(state, ResultInfo) and isinstance(obj, Table):
        return state_of(obj)
    raise TypeError(f"inspect() takes a model instance, got {obj!r}")


__all__ = [
    "STATE_KEY",
    "Column",
    "ColumnInfo",
    "ColumnTypeError",
    "Computed",
    "DataBridgeError",
    "DatabaseError",
    "EagerBatch",
    "EagerLoad",
    "Engine",
    "Function",
    "InstanceState",
    "IntegrityError",
    "InvalidStateError",
    "Mapped",
    "MigrationError",
    "Migrator",
    "MissingFieldError",
    "ModelDefinitionError",
    "NestedTransaction",
    "NoSessionError",
    "PendingRollbackError",
    "PreparedStatementError",
    "Query",
    "RaiseLoadError",
    "Rel",
    "RelatedList",
    "Relationship",
    "RelationshipError",
    "Result",
    "ResultInfo",
    "RowQuery",
    "SchemaMismatchError",
    "Selectable",
    "Session",
    "SessionClosedError",
    "SessionError",
    "StoredValueError",
    "Table",
    "UnknownFieldError",
    "UnsupportedOperationError",
    "ValidationError",
    "computed",
    "current_session",
    "exists",
    "func",
    "identity_key",
    "inspect",
    "joinedload",
    "loaded",
    "noload",
    "raiseload",
    "relationship",
    "result_of",
    "scalar",
    "selectinload",
    "table_info",
]
