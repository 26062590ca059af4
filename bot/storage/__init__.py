"""Durable state: the database (SQLite or PostgreSQL), its tables and their migrations."""
