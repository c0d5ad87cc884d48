"""Benchmark suite: data_bridge_core vs raw psycopg vs SQLAlchemy, traced and not."""
