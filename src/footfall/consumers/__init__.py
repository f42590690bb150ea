"""Consumers: processes that read the event log in batches and apply them to a store."""
