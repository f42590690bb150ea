"""The event store: the full visit history and the source of truth for stats rebuilds."""
