"""Ingestion: the public endpoint that turns a browser's visit into an event on the log."""
