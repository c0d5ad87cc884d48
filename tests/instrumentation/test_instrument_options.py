"""instrument()'s options never break the host (issue 21, finding 1): an unknown
option is a warning naming the closest known one; a wrong value raises only on
a direct call; under opentelemetry-instrument every instrumentor still loads."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider

from data_bridge_core.query import Query
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor


def test_an_unknown_option_is_a_warning_naming_the_closest_known_one_and_instruments(
    tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor = DataBridgeInstrumentor()
    with caplog.at_level(logging.WARNING, "opentelemetry_instrumentation_data_bridge"):
        instrumentor.instrument(tracer_provider=tracer_provider, enable_comenter=True)
    try:
        assert hasattr(Query.__dict__["to_list"], "__wrapped__")
        (record,) = [r for r in caplog.records if "unknown option" in r.getMessage()]
        message = record.getMessage()
        assert "'enable_comenter'" in message
        assert "did you mean 'enable_commenter'?" in message
    finally:
        instrumentor.uninstrument()


def test_an_unknown_option_far_from_every_known_one_names_no_suggestion(
    tracer_provider: TracerProvider, caplog: pytest.LogCaptureFixture
) -> None:
    instrumentor = DataBridgeInstrumentor()
    with caplog.at_level(logging.WARNING, "opentelemetry_instrumentation_data_bridge"):
        instrumentor.instrument(tracer_provider=tracer_provider, xyz=1)
    try:
        (record,) = [r for r in caplog.records if "unknown option" in r.getMessage()]
        assert "'xyz'" in record.getMessage() and "did you mean" not in record.getMessage()
        assert hasattr(Query.__dict__["to_list"], "__wrapped__")
    finally:
        instrumentor.uninstrument()


def test_a_wrong_value_of_a_known_option_raises_on_a_direct_call_and_patches_nothing(
    tracer_provider: TracerProvider,
) -> None:
    instrumentor = DataBridgeInstrumentor()
    with pytest.raises(TypeError, match="enable_commenter must be True or False"):
        instrumentor.instrument(tracer_provider=tracer_provider, enable_commenter="yes")
    assert not hasattr(Query.__dict__["to_list"], "__wrapped__")


# A distro like a vendor's: it passes its options to every instrumentor, one of them
# misspelt and one with a wrong value, and records the order the loader called them in.
DISTRO = textwrap.dedent(
    """
    import logging

    from opentelemetry.instrumentation.distro import BaseDistro

    LOADED = []


    class TinyDistro(BaseDistro):
        def _configure(self, **kwargs):
            logging.basicConfig(level=logging.WARNING)

        def load_instrumentor(self, entry_point, **kwargs):
            LOADED.append(entry_point.name)
            entry_point.load()().instrument(
                enable_comenter=True, explain_threshold_ms="slow", **kwargs
            )
    """
)

PROGRAM = textwrap.dedent(
    """
    import json

    import tiny_distro
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    from data_bridge_core.query import Query
    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    print(json.dumps({
        "loaded": tiny_distro.LOADED,
        "data_bridge": hasattr(Query.__dict__["to_list"], "__wrapped__")
        and DataBridgeInstrumentor().is_instrumented_by_opentelemetry,
        "logging": LoggingInstrumentor().is_instrumented_by_opentelemetry,
        "fastapi": FastAPIInstrumentor().is_instrumented_by_opentelemetry,
    }))
    """
)


@pytest.mark.slow
def test_opentelemetry_instrument_with_a_distro_passing_unknown_options_instruments_every_package(
    tmp_path: Path,
) -> None:
    (tmp_path / "tiny_distro.py").write_text(DISTRO)
    info = tmp_path / "tiny_distro-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-distro\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[opentelemetry_distro]\ntiny = tiny_distro:TinyDistro\n"
    )
    (tmp_path / "program.py").write_text(PROGRAM)
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "OTEL_PYTHON_DISTRO": "tiny",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
    }
    env.pop("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", None)
    instrument = Path(sys.executable).parent / "opentelemetry-instrument"
    done = subprocess.run(
        [str(instrument), sys.executable, str(tmp_path / "program.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    loaded = seen["loaded"]
    # The loader's order is the entry points' (site-packages order): every
    # instrumentor the loader reaches after ours must be instrumented too.
    assert {"data_bridge", "fastapi", "logging"} <= set(loaded)
    assert seen["data_bridge"] is True
    assert seen["fastapi"] is True and seen["logging"] is True
    assert "Failed to auto initialize" not in done.stderr
    assert "Instrumenting of data_bridge failed" not in done.stderr
    assert "ignores the unknown option 'enable_comenter'" in done.stderr
    assert "did you mean 'enable_commenter'?" in done.stderr
    # The wrong value is not raised under auto-instrumentation: logged, option left out.
    assert "explain_threshold_ms is ignored" not in done.stdout
    assert "explain_threshold_ms/enable_commenter/commenter_options is ignored" in done.stderr
