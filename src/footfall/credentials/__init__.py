"""API tokens, dashboard sessions and one-time login codes, with a SQLite and a Redis store."""
