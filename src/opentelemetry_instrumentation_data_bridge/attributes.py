"""Names of spans, span attributes and metrics used by the instrumentation."""

from __future__ import annotations

DB_SYSTEM_VALUE = "postgresql"

# Eager-loading strategies: their values were traced by the load that filled them.
EAGER_STRATEGIES = frozenset({"selectinload", "joined"})


class SpanAttributes:
    """Attribute keys: the reference's set, then the stable semantic-convention ones."""

    DB_SYSTEM = "db.system"
    DB_OPERATION_NAME = "db.operation.name"
    DB_COLLECTION_NAME = "db.collection.name"
    DB_STATEMENT = "db.statement"
    DB_QUERY_FILTERS_COUNT = "db.query.filters_count"
    DB_QUERY_LIMIT = "db.query.limit"
    DB_QUERY_OFFSET = "db.query.offset"
    DB_QUERY_ORDER_BY = "db.query.order_by"
    DB_RESULT_COUNT = "db.result.count"
    DB_RESULT_AFFECTED_ROWS = "db.result.affected_rows"
    DB_SESSION_OPERATION = "db.session.operation"
    DB_SESSION_PENDING_COUNT = "db.session.pending_count"
    DB_SESSION_DIRTY_COUNT = "db.session.dirty_count"
    DB_SESSION_DELETED_COUNT = "db.session.deleted_count"
    DB_RELATIONSHIP_NAME = "db.relationship.name"
    DB_RELATIONSHIP_TARGET_MODEL = "db.relationship.target_model"
    DB_RELATIONSHIP_STRATEGY = "db.relationship.strategy"
    DB_RELATIONSHIP_FK_COLUMN = "db.relationship.fk_column"
    # A many-to-many's association table (its fk_column is the association's column).
    DB_RELATIONSHIP_SECONDARY = "db.relationship.secondary"
    DB_RELATIONSHIP_CACHE_HIT = "db.relationship.cache_hit"
    DB_RELATIONSHIP_BATCH_COUNT = "db.relationship.batch_count"
    DB_RELATIONSHIP_DEPTH = "db.relationship.depth"

    # Stable database semantic conventions (semconv >= 1.33).
    DB_SYSTEM_NAME = "db.system.name"
    DB_NAMESPACE = "db.namespace"
    DB_QUERY_TEXT = "db.query.text"
    DB_QUERY_SUMMARY = "db.query.summary"
    DB_RESPONSE_RETURNED_ROWS = "db.response.returned_rows"
    DB_RESPONSE_STATUS_CODE = "db.response.status_code"
    DB_OPERATION_BATCH_SIZE = "db.operation.batch.size"
    SERVER_ADDRESS = "server.address"
    SERVER_PORT = "server.port"
    ERROR_TYPE = "error.type"

    # Failed operations: names PostgreSQL reported (project-specific; never a value).
    DB_ERROR_CONSTRAINT_NAME = "db.error.constraint_name"
    DB_ERROR_TABLE_NAME = "db.error.table_name"
    DB_ERROR_COLUMN_NAME = "db.error.column_name"

    # N+1 detection.
    DB_N1_QUERY_COUNT = "db.n1.query_count"
    DB_N1_THRESHOLD = "db.n1.threshold"
    DB_N1_RECOMMENDATION = "db.n1.recommendation"
    DB_N1_QUERY_SITE = "db.n1.query_site"  # file:line (function) of the query to fix


class MetricNames:
    CONNECTION_POOL_IN_USE = "db.connection.pool.in_use"
    CONNECTION_POOL_IDLE = "db.connection.pool.idle"
    CONNECTION_POOL_MAX = "db.connection.pool.max"
    QUERY_DURATION = "db.query.duration"
    QUERY_COUNT = "db.query.count"
    SESSION_TRANSACTION_DURATION = "db.session.transaction.duration"
    # Stable semantic-convention metrics.
    CLIENT_OPERATION_DURATION = "db.client.operation.duration"
    CLIENT_RESPONSE_RETURNED_ROWS = "db.client.response.returned_rows"
    CLIENT_CONNECTION_COUNT = "db.client.connection.count"
    CLIENT_CONNECTION_MAX = "db.client.connection.max"
    CLIENT_CONNECTION_PENDING_REQUESTS = "db.client.connection.pending_requests"
    CLIENT_CONNECTION_TIMEOUTS = "db.client.connection.timeouts"
    CLIENT_CONNECTION_WAIT_TIME = "db.client.connection.wait_time"


class SpanNames:
    QUERY_FIND = "db.query.find"
    QUERY_COUNT = "db.query.count"
    QUERY_EXISTS = "db.query.exists"
    QUERY_AGGREGATE = "db.query.aggregate"
    QUERY_UPDATE = "db.query.update"
    QUERY_DELETE = "db.query.delete"
    QUERY_STREAM = "db.query.stream"
    QUERY_EXECUTE = "db.query.execute"
    SESSION_OPEN = "db.session.open"
    SESSION_CLOSE = "db.session.close"
    SESSION_FLUSH = "db.session.flush"
    SESSION_COMMIT = "db.session.commit"
    SESSION_ROLLBACK = "db.session.rollback"
    RELATIONSHIP_SELECT = "db.relationship.select"
    RELATIONSHIP_SELECTINLOAD = "db.relationship.selectinload"
    RELATIONSHIP_JOINED = "db.relationship.joined"
    N1_WARNING = "db.n1_warning"
    UNUSED_EAGER_LOAD = "db.unused_eager_load"
