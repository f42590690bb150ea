"""The HTTP application: ingest dispatch, read endpoints, OpenAPI and the dashboard routes."""
