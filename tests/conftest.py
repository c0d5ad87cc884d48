"""Fixtures for the whole suite, one module per subject (no star imports, no sys.path edits).

- database_server: which PostgreSQL the run uses (first: the others read its DSN)
- core_fixtures: the core's models and its per-test `schema`, `engine`, `sql`
- conftest_shared: the OpenTelemetry SDK in memory (`spans`, `tracer_provider`,
  `meter_provider`, `instrumented`)
- instrumentation_models: the instrumentation tests' blog models and `blog_engine`
- own_server: an embedded PostgreSQL of a test module's own (`own_server`), to restart or kill

Plain helpers the test modules import (not plugins): scratch_schema (`fresh_schema`),
finished_spans (`named`, `attrs`, `child_of`), exported_text (`everything_exported`),
example_files (`load_example`).
"""

pytest_plugins = [
    "database_server",
    "core_fixtures",
    "conftest_shared",
    "instrumentation_models",
    "own_server",
]
