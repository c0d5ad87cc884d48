"""Connection pool metrics: every pool instrument, built once per meter.

Two sets read the same pool statistics (``get_stats()`` of every live
Engine's psycopg pool, told apart by ``db.client.connection.pool.name``):

- the reference's gauges ``db.connection.pool.in_use`` / ``.idle`` / ``.max``
  (which also report what `ConnectionPoolMetrics.record_pool_stats` was given);
- the semantic conventions' ``db.client.connection.count`` (by state),
  ``.max``, ``.pending_requests``, ``.timeouts``, and the histogram
  ``db.client.connection.wait_time``: one sample, in seconds, per connection
  handed out (recorded by the instrumentor's ``Engine.acquire`` seam).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from opentelemetry_instrumentation_data_bridge import config
from opentelemetry_instrumentation_data_bridge.attributes import MetricNames

POOL_NAME = "db.client.connection.pool.name"
CONNECTION_STATE = "db.client.connection.state"
# Seconds, as for db.client.operation.duration (the SDK's defaults are made for ms).
WAIT_TIME_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)


def live_pools() -> Iterable[tuple[str, dict[str, int]]]:
    """(pool name, psycopg pool statistics) of every Engine not yet disposed."""
    from data_bridge_core import Engine

    for engine in Engine.live_engines():
        pool = engine.pool
        if pool is not None:
            yield engine.pool_name, pool.get_stats()


class ConnectionPoolMetrics:
    """All pool instruments of one meter, and manual pool statistics.

    The instruments are observable (read at each collection), except the
    wait-time histogram, which `record_wait` feeds.
    """

    def __init__(self) -> None:
        self._meter: metrics.Meter | None = None  # the active meter: callbacks of others are quiet
        self._wait_time: metrics.Histogram | None = None
        self._manual: dict[str | None, tuple[int, int, int]] = {}
        # Instruments cannot be removed from a MeterProvider, and the SDK hands out the
        # same meter again: each meter's instruments are made once and kept.
        self._created: dict[int, tuple[metrics.Meter, metrics.Histogram]] = {}

    def ensure_instruments(self) -> bool:
        """Create the instruments on the configured meter (once per meter) and make
        that meter the one whose callbacks observe."""
        meter = config.get_meter()
        if meter is None:
            return False
        if meter is not self._meter:
            made = self._created.get(id(meter))
            if made is None or made[0] is not meter:
                made = (meter, self._create(meter))
                self._created[id(meter)] = made
            self._meter, self._wait_time = made
        return True

    def deactivate(self) -> None:
        """On uninstrument(): the instruments left on the providers observe nothing more."""
        self._meter = None
        self._wait_time = None

    def _pools(self, meter: metrics.Meter) -> Iterable[tuple[str, dict[str, int]]]:
        """The live pools, for a callback of ``meter``'s instruments (none when inactive)."""
        return live_pools() if meter is self._meter else ()

    def _create(self, meter: metrics.Meter) -> metrics.Histogram:
        for index, (name, description) in enumerate(
            (
                (MetricNames.CONNECTION_POOL_IN_USE, "Connections in use"),
                (MetricNames.CONNECTION_POOL_IDLE, "Idle connections"),
                (MetricNames.CONNECTION_POOL_MAX, "Maximum pool size"),
            )
        ):
            meter.create_observable_gauge(
                name,
                callbacks=[functools.partial(self._observe_reference, meter, index)],
                unit="{connection}",
                description=description,
            )
        meter.create_observable_up_down_counter(
            MetricNames.CLIENT_CONNECTION_COUNT,
            callbacks=[functools.partial(self._observe_connections, meter)],
            unit="{connection}",
            description="Connections of each pool by state (idle, used)",
        )
        meter.create_observable_up_down_counter(
            MetricNames.CLIENT_CONNECTION_MAX,
            callbacks=[functools.partial(self._observe_stat, meter, "pool_max")],
            unit="{connection}",
            description="Maximum connections of each pool",
        )
        meter.create_observable_up_down_counter(
            MetricNames.CLIENT_CONNECTION_PENDING_REQUESTS,
            callbacks=[functools.partial(self._observe_stat, meter, "requests_waiting")],
            unit="{request}",
            description="Requests waiting for a connection",
        )
        meter.create_observable_counter(
            MetricNames.CLIENT_CONNECTION_TIMEOUTS,
            callbacks=[functools.partial(self._observe_stat, meter, "requests_errors")],
            unit="{timeout}",
            description="Connection requests that failed or timed out",
        )
        return meter.create_histogram(
            MetricNames.CLIENT_CONNECTION_WAIT_TIME,
            unit="s",
            description="Time it took to obtain a connection from the pool",
            explicit_bucket_boundaries_advisory=list(WAIT_TIME_BUCKETS),
        )

    def record_wait(self, pool_name: str, seconds: float) -> None:
        """One connection handed out by ``pool_name`` after ``seconds``."""
        histogram = self._wait_time
        if histogram is not None:
            histogram.record(seconds, {POOL_NAME: pool_name})

    def _observe_reference(
        self, meter: metrics.Meter, index: int, options: CallbackOptions
    ) -> Iterator[Observation]:
        if meter is not self._meter:
            return
        for pool_name, stats in live_pools():
            idle = stats.get("pool_available", 0)
            values = (max(stats.get("pool_size", 0) - idle, 0), idle, stats.get("pool_max", 0))
            yield Observation(values[index], {POOL_NAME: pool_name})
        for manual_name, values in list(self._manual.items()):
            yield Observation(values[index], {POOL_NAME: manual_name} if manual_name else None)

    def record_pool_stats(
        self, in_use: int, idle: int, max_size: int, pool_name: str | None = None
    ) -> None:
        """Record connection pool statistics (reported at the next collection)."""
        self._manual[pool_name] = (in_use, idle, max_size)
        self.ensure_instruments()

    def _observe_connections(
        self, meter: metrics.Meter, options: CallbackOptions
    ) -> Iterable[Observation]:
        for name, stats in self._pools(meter):
            size = stats.get("pool_size", 0)
            idle = stats.get("pool_available", 0)
            yield Observation(idle, {POOL_NAME: name, CONNECTION_STATE: "idle"})
            yield Observation(max(size - idle, 0), {POOL_NAME: name, CONNECTION_STATE: "used"})

    def _observe_stat(
        self, meter: metrics.Meter, key: str, options: CallbackOptions
    ) -> Iterable[Observation]:
        for name, stats in self._pools(meter):
            yield Observation(stats.get(key, 0), {POOL_NAME: name})


_pool_metrics = ConnectionPoolMetrics()


def get_connection_pool_metrics() -> ConnectionPoolMetrics:
    """The process-wide ConnectionPoolMetrics."""
    return _pool_metrics
