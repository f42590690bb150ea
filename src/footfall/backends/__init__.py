"""Connections and schemas shared by the backends of one engine."""
