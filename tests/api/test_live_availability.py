"""A stream's bookkeeping (api/live_availability.py): which notifications it hears, and
how changes merge while its client is slow, so it never holds more than one span."""

from __future__ import annotations

import json
import uuid

import pytest

from api.live_availability import Stream, Streams, TooManyStreams

TENANT, SERVICE, STAFF, ROOM = (uuid.uuid4() for _ in range(4))
HOUR = 3600


def _stream(key: uuid.UUID | None = None) -> Stream:
    return Stream(
        tenant=TENANT,
        key=key,
        service=SERVICE,
        kinds=frozenset({"staff"}),
        resources={STAFF},
        lo=10 * HOUR,
        hi=20 * HOUR,
        reach_back=HOUR,
        reach_ahead=0,
    )


def _note(**fields: object) -> str:
    return json.dumps(
        {
            "tenant": str(TENANT),
            "resource": None,
            "kind": None,
            "service": None,
            "lo": None,
            "hi": None,
            **fields,
        }
    )


def test_a_change_moves_the_starts_whose_span_meets_it() -> None:
    stream = _stream()
    stream.offer(12 * HOUR, 13 * HOUR)
    assert stream.changed == (11 * HOUR + 1, 13 * HOUR)


def test_changes_merge_into_one_span_while_the_client_reads_nothing() -> None:
    stream = _stream()
    for hour in range(11, 19):
        stream.offer(hour * HOUR, hour * HOUR + 60)
    assert stream.changed == (10 * HOUR + 1, 18 * HOUR + 60)


def test_a_change_outside_the_range_is_dropped_and_an_unbounded_one_is_the_range() -> None:
    stream = _stream()
    stream.offer(30 * HOUR, 31 * HOUR)
    assert stream.changed is None
    stream.offer(None, None)
    assert stream.changed == (10 * HOUR, 20 * HOUR)


def test_a_stream_hears_its_resources_kinds_and_service_only() -> None:
    feed, stream = Streams(5), _stream()
    feed.open(stream)
    feed.heard(_note(resource=str(ROOM), lo=12 * HOUR, hi=13 * HOUR))
    feed.heard(_note(service=str(uuid.uuid4())))
    feed.heard(_note(tenant=str(uuid.uuid4()), resource=str(STAFF), lo=12 * HOUR, hi=13 * HOUR))
    assert stream.changed is None
    newcomer = uuid.uuid4()
    feed.heard(_note(resource=str(newcomer), kind="staff"))
    assert newcomer in stream.resources and stream.changed == (10 * HOUR, 20 * HOUR)


def test_a_key_opens_at_most_its_streams_and_a_closed_one_frees_its_place() -> None:
    key = uuid.uuid4()
    feed, first = Streams(1), _stream(key)
    feed.open(first)
    with pytest.raises(TooManyStreams):
        feed.open(_stream(key))
    feed.close(first)
    assert feed.open_streams() == {}
    feed.open(_stream(key))
