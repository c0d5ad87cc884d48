"""N+1 tests: the instrumentation fixtures (root conftest) with a detection threshold of 3."""

from collections.abc import Iterator

import pytest
from acceptance_models import app_engine  # noqa: F401  (fixture)
from school_models import school_engine  # noqa: F401  (fixture)

from opentelemetry_instrumentation_data_bridge.telemetry import configure_n1_detection


@pytest.fixture(autouse=True)
def n1_threshold_three() -> Iterator[None]:
    """The blog fixture has 3 authors: detect at 3 distinct parents."""
    configure_n1_detection(threshold=3)
    yield
    configure_n1_detection()
