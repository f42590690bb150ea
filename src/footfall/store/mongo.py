"""The MongoDB event store: one document per visit in `events`, keyed by the visit id.

A visit's document contains its log entry id and the visit's fields, leaving out those that
are None. `_id` is the visit id, so the unique `_id` index makes storing idempotent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import fields
from typing import Any

from pymongo import DESCENDING
from pymongo.errors import BulkWriteError

from footfall.backends.mongo_db import (
    Document,
    MongoClient,
    events_collection,
    translate_errors,
)
from footfall.errors import BackendUnavailable
from footfall.log.base import LogEntry
from footfall.model import Visit
from footfall.store.base import EventPage, PageCursor

DUPLICATE_KEY = 11000
"""MongoDB's error code for an insert whose `_id` is already stored."""

_ITER_BATCH = 5_000
_VISIT_FIELDS = tuple(field.name for field in fields(Visit) if field.name != "id")
_NEWEST_FIRST = [("received_at_ms", DESCENDING), ("_id", DESCENDING)]

_ENTRIES_PIPELINE: list[Document] = [
    {
        "$project": {
            "_id": 0,
            "entry_id": "$log_entry_id",
            "id": "$_id",
            **{name: {"$ifNull": [f"${name}", None]} for name in _VISIT_FIELDS},
        }
    }
]
"""Shapes every stored document into the log's record form (`Visit.to_record`) plus its
entry id, on the server, so the rebuild reads it as it is."""


class MongoEventStore:
    """EventStore over the `events` collection whose indexes `backends.mongo_db.migrate` creates.

    The store owns the client and closes it.
    """

    def __init__(self, client: MongoClient) -> None:
        self._client = client
        self._events = events_collection(client)

    async def store_batch(self, entries: list[LogEntry]) -> None:
        """Insert the batch unordered; a visit whose id is stored already is skipped."""
        if not entries:
            return
        documents: dict[str, Document] = {}
        for entry in entries:
            documents.setdefault(entry.visit.id, to_document(entry))

        async def insert() -> None:
            try:
                await self._events.insert_many(list(documents.values()), ordered=False)
            except BulkWriteError as error:
                _raise_unless_duplicates(error)

        await translate_errors(f"storing {len(entries)} visits", insert)

    async def page(self, site: str, limit: int, cursor: PageCursor | None) -> EventPage:
        query: Document = {"site": site}
        if cursor is not None:
            # The range on the time lets the `site_time` index bound the scan. The $or then
            # drops the visits of the cursor's own time whose id is not lower.
            query["received_at_ms"] = {"$lte": cursor.received_at_ms}
            query["$or"] = [
                {"received_at_ms": {"$lt": cursor.received_at_ms}},
                {"_id": {"$lt": cursor.event_id}},
            ]
        found = self._events.find(query, sort=_NEWEST_FIRST, limit=limit + 1)
        documents = await translate_errors("reading events", found.to_list)
        visits = [from_document(document) for document in documents[:limit]]
        has_more = len(documents) > limit
        next_cursor = PageCursor(visits[-1].received_at_ms, visits[-1].id) if has_more else None
        return EventPage(visits, next_cursor)

    async def iter_entries(self) -> AsyncIterator[LogEntry]:
        """Read every visit through one aggregation, in the collection's natural order."""
        cursor = await translate_errors(
            "reading events",
            lambda: self._events.aggregate(_ENTRIES_PIPELINE, batchSize=_ITER_BATCH),
        )
        async with cursor:
            while True:
                records = await translate_errors(
                    "reading events", lambda: cursor.to_list(_ITER_BATCH)
                )
                if not records:
                    return
                for record in records:
                    entry_id = record.pop("entry_id")
                    yield LogEntry(entry_id, Visit.from_record(record))

    async def delete_before(self, cutoff_ms: int) -> int:
        result = await translate_errors(
            "deleting old visits",
            lambda: self._events.delete_many({"received_at_ms": {"$lt": cutoff_ms}}),
        )
        return result.deleted_count

    async def erase(self, ips: Sequence[str], emails: Sequence[str]) -> int:
        clauses: list[Document] = []
        if ips:
            clauses.append({"ip": {"$in": list(ips)}})
        if emails:
            clauses.append({"email": {"$in": list(emails)}})
        if not clauses:
            return 0
        result = await translate_errors(
            "erasing visits", lambda: self._events.delete_many({"$or": clauses})
        )
        return result.deleted_count

    async def count(self) -> int:
        return await translate_errors("counting events", lambda: self._events.count_documents({}))

    async def close(self) -> None:
        await self._client.close()


def to_document(entry: LogEntry) -> Document:
    """Return the document that stores an entry's visit."""
    record = entry.visit.to_record()
    document: Document = {"_id": record.pop("id"), "log_entry_id": entry.entry_id}
    document.update((name, value) for name, value in record.items() if value is not None)
    return document


def from_document(document: Document) -> Visit:
    """Return the visit a document of `to_document` stores."""
    record = {name: document.get(name) for name in _VISIT_FIELDS}
    return Visit.from_record({"id": document["_id"], **record})


def _raise_unless_duplicates(error: BulkWriteError) -> None:
    """Return when every write error is a duplicate id (a visit stored before); raise else."""
    details: Any = error.details
    if details.get("writeConcernErrors"):
        raise BackendUnavailable(
            "storing visits failed: MongoDB did not satisfy the write concern: "
            f"{details['writeConcernErrors'][0].get('errmsg')}"
        ) from error
    if any(item.get("code") != DUPLICATE_KEY for item in details.get("writeErrors", [])):
        raise error
