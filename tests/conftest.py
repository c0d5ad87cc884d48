"""Fixtures for the whole suite, one module per subject (no star imports, no sys.path edits).

- database_server: which PostgreSQL the run uses (first: the others read its DSN)
- core_fixtures: the core's models and its per-test `schema`, `engine`, `sql`
- conftest_shared: the OpenTelemetry SDK in memory (`spans`, `tracer_provider`,
  `meter_provider`, `instrumented`)
- instrumentation_models: the instrumentation tests' blog models and `blog_engine`
"""

pytest_plugins = ["database_server", "core_fixtures", "conftest_shared", "instrumentation_models"]
