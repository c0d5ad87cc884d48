"""The API-only install (issue 21, finding 3): without opentelemetry-sdk everything
that does not need it imports and works; what needs it says so when used.

Each case runs in a subprocess whose import system refuses ``opentelemetry.sdk``
(the suite's venv has the SDK installed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

BLOCK_SDK = textwrap.dedent(
    """
    import importlib.abc
    import json
    import sys


    class NoSdk(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None


    sys.meta_path.insert(0, NoSdk())
    """
)

PROGRAM = BLOCK_SDK + textwrap.dedent(
    """
    from opentelemetry_instrumentation_data_bridge.telemetry import *  # noqa: F403
    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    seen = {"tracing": is_tracing_enabled()}
    with create_query_span("find", "users") as span:
        seen["span"] = span
    for name, make in (("sampler", AttributeBasedSampler), ("rules", DurationRuleProcessor)):
        try:
            make()
        except ImportError as error:
            seen[name] = str(error)
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument()
    seen["instrumented"] = instrumentor.is_instrumented_by_opentelemetry
    instrumentor.uninstrument()
    seen["sdk_loaded"] = any(m.startswith("opentelemetry.sdk") for m in sys.modules)
    print(json.dumps(seen))
    """
)


@pytest.mark.slow
def test_the_telemetry_helpers_import_and_work_without_the_sdk_and_sdk_classes_say_so() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["tracing"] is False
    assert seen["span"] is None
    for name in ("AttributeBasedSampler", "DurationRuleProcessor"):
        key = "sampler" if name == "AttributeBasedSampler" else "rules"
        assert seen[key].startswith(f"{name} is an OpenTelemetry SDK sampler/processor")
        assert "opentelemetry-instrumentation-data-bridge[sdk]" in seen[key]
    assert seen["instrumented"] is True
    assert seen["sdk_loaded"] is False
