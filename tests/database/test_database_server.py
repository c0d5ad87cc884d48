"""Which PostgreSQL the suite uses (tests/database_server.py), checked in pytest subprocesses."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from database_server import DEFAULT_DSN_VARIABLE, DSN_VARIABLE, dsn

TESTS = Path(__file__).resolve().parents[1]

PROBE = """
import os
import psycopg

def test_probe():
    with psycopg.connect(os.environ["DATA_BRIDGE_TEST_DSN"]) as conn:
        directory = conn.execute("SHOW data_directory").fetchone()[0]
    print(f"\\nDATA_DIRECTORY={directory}")
"""


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.delenv(DSN_VARIABLE, raising=False)
    monkeypatch.delenv(DEFAULT_DSN_VARIABLE, raising=False)
    # The subprocess imports database_server from tests/, as the suite's root conftest does.
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    pytester.makeconftest('pytest_plugins = ["database_server"]\n')
    pytester.makepyfile(test_probe=PROBE)
    return pytester


def data_directory(result: pytest.RunResult) -> str:
    lines = [line for line in result.outlines if line.startswith("DATA_DIRECTORY=")]
    assert len(lines) == 1, result.stdout.str()
    return lines[0].removeprefix("DATA_DIRECTORY=")


@pytest.mark.slow
def test_without_a_server_at_the_default_address_the_tests_start_an_embedded_postgresql(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    monkeypatch.setenv(DEFAULT_DSN_VARIABLE, f"postgresql://postgres@127.0.0.1:{port}/test")
    result = suite.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"PostgreSQL: embedded server at postgresql://* (nothing answers at *:{port}/test*"]
    )
    assert "data-bridge-tests-" in data_directory(result)


@pytest.mark.slow
def test_a_server_answering_at_the_default_address_is_used_without_an_embedded_one(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEFAULT_DSN_VARIABLE, dsn())
    result = suite.runpytest_subprocess("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"PostgreSQL: {dsn()} (default address)"])
    assert "data-bridge-tests-" not in data_directory(result)


@pytest.mark.slow
def test_a_configured_dsn_that_does_not_answer_stops_the_run_with_an_error(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = f"postgresql://postgres@127.0.0.1:{closed_port()}/test"
    monkeypatch.setenv(DSN_VARIABLE, configured)
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: {DSN_VARIABLE}={configured} does not answer: *"])
    assert "embedded" not in result.stdout.str() + result.stderr.str()
