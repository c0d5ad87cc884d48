"""The plugin loads with every pytest run of every project: it must cost nothing until used."""

from __future__ import annotations

import pytest

# Printed by the pytester project at the end of its run: which heavy modules got imported.
REPORT_MODULES = """
import sys

def pytest_unconfigure(config):
    heavy = sorted(
        name for name in sys.modules
        if name in ("opentelemetry", "wrapt", "data_bridge_core")
        or name.startswith(("opentelemetry.", "wrapt.", "data_bridge_core."))
    )
    print(f"\\nHEAVY_MODULES={len(heavy)} {' '.join(heavy[:5])}")
"""

# Makes the SDK unimportable in the pytester project, as in an environment without
# opentelemetry-sdk installed (a None entry in sys.modules is how Python blocks an import).
WITHOUT_SDK = """
import sys

sys.modules["opentelemetry.sdk"] = None
"""

EXTRA = "opentelemetry-instrumentation-data-bridge[sdk]"


def heavy_modules(result: pytest.RunResult) -> int:
    lines = [line for line in result.outlines if line.startswith("HEAVY_MODULES=")]
    assert len(lines) == 1, result.stdout.str()
    return int(lines[0].removeprefix("HEAVY_MODULES=").split()[0])


@pytest.mark.slow
def test_a_project_that_never_uses_data_bridge_imports_no_opentelemetry_wrapt_or_orm_module(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(REPORT_MODULES)
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def numbers():
            return [1, 2, 3]

        def test_sum(numbers):
            assert sum(numbers) == 6
        """
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert heavy_modules(result) == 0, result.stdout.str()


@pytest.mark.slow
def test_a_test_using_db_spans_loads_the_instrumentation_and_the_sdk(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(REPORT_MODULES)
    pytester.makepyfile(
        """
        import sys

        def test_spans(db_spans):
            assert db_spans.spans == []
            assert "opentelemetry.sdk.trace" in sys.modules
        """
    )
    result = pytester.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert heavy_modules(result) > 0


@pytest.mark.slow
def test_without_the_sdk_db_spans_fails_naming_the_extra_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(WITHOUT_SDK)
    pytester.makepyfile(
        """
        def test_spans(db_spans):
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    message = f"db_spans needs the OpenTelemetry SDK, which is not installed: pip install '{EXTRA}'"
    assert message in result.outlines  # ("[sdk]" would be a pattern for fnmatch_lines)
    assert "ModuleNotFoundError" not in result.stdout.str()


@pytest.mark.slow
def test_without_the_sdk_the_n_plus_one_marker_fails_naming_the_extra_to_install(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(WITHOUT_SDK)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.no_n_plus_one
        def test_marked():
            pass

        def test_plain():
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    message = (
        "N+1 detection (no_n_plus_one) needs the OpenTelemetry SDK, which is not installed: "
        f"pip install '{EXTRA}'"
    )
    assert message in result.outlines
    assert "ModuleNotFoundError" not in result.stdout.str()
