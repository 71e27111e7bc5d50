"""Router captures kept with the replies they came with (a continued reply keeps one per request)."""

from __future__ import annotations

from collections.abc import Iterable

from storyteller.core.routing.router import RoutingTrace, decode_capture, encode_capture
from storyteller.engine import RouterCapture
from storyteller.storage import Database
from storyteller.storage.routing import RoutingRepository


def keep_capture(db: Database, message_id: int, capture: RouterCapture) -> None:
    """Stores a reply's capture with the reply."""
    RoutingRepository(db).add(message_id, encode_capture(capture))


def reply_traces(db: Database, message_ids: Iterable[int]) -> dict[int, list[RoutingTrace]]:
    """The traces kept with each of these replies that has any, in request order."""
    stored = RoutingRepository(db).captures(message_ids)
    return {message_id: [RoutingTrace(decode_capture(blob)) for blob in blobs] for message_id, blobs in stored.items()}
