"""Alembic migrations of the optfb schema (run with `python -m store.db`)."""
