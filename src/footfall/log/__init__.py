"""The event log: where the API appends visits and where consumers read them in batches."""
