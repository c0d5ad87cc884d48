"""The fixture that instruments with given options (tests import `Instrument` from here)."""

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

Instrument = Callable[..., DataBridgeInstrumentor]


@pytest.fixture
def instrument_with(tracer_provider: TracerProvider) -> Iterator[Instrument]:
    """instrument_with(**options): instrument on ``tracer_provider`` with those options
    (uninstrumented after the test)."""
    instrumentor = DataBridgeInstrumentor()

    def instrument(**options: Any) -> DataBridgeInstrumentor:
        options.setdefault("tracer_provider", tracer_provider)
        instrumentor.instrument(**options)
        return instrumentor

    yield instrument
    instrumentor.uninstrument()
