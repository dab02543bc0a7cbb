"""Alembic migrations of the annotation store (loaded by Alembic from files, never imported)."""
