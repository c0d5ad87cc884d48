"""Settings for the whole suite. The database comes first: see database_server.py."""

pytest_plugins = ["database_server"]
