"""GoogleCalendar through the local Google stand-in: the real google-auth and
google-api-python-client over HTTP, Google's answers turned into changes, written events,
channels, and CredentialRefused / CalendarThrottled / CalendarRefused."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activities.calendar_clients import (
    HOLDFAST_PROPERTY,
    CalendarRefused,
    CalendarThrottled,
    Channel,
    CredentialRefused,
    EventContent,
    ExternalEvent,
)
from activities.google_calendar import GoogleCalendar, event_id
from tests.support.google_calendar import GoogleCalendarStandin, google_calendar
from tests.support.stripe import free_port

ANA = "ana@example.com"
NINE = datetime(2030, 1, 7, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)
WINDOW = (NINE - timedelta(days=1), NINE + timedelta(days=7))


@pytest.fixture
async def google() -> AsyncIterator[GoogleCalendarStandin]:
    async with google_calendar() as standin:
        standin.add_calendar(ANA)
        yield standin


def _client(
    google: GoogleCalendarStandin,
    key: dict[str, Any] | None = None,
    calendar_id: str = ANA,
    timeout: float = 5,
) -> GoogleCalendar:
    return GoogleCalendar(
        key or google.service_account(),
        calendar_id,
        subject=None,
        api_base=google.api_base,
        timeout=timeout,
    )


def _content(key: str = "booking-1/ana/0", summary: str = "Physio") -> EventContent:
    return EventContent("booking-1", key, summary, "30 min", NINE, NINE + HOUR)


async def _soon(check: Callable[[], object], seconds: float = 5) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.01)


# The change feed


async def test_the_first_sync_lists_the_window_in_full(google: GoogleCalendarStandin) -> None:
    inside = google.add_event(ANA, NINE, NINE + HOUR)
    google.add_event(ANA, NINE + timedelta(days=60), NINE + timedelta(days=60, hours=1))
    changes = await asyncio.to_thread(_client(google).changes, None, *WINDOW)
    assert changes.full and changes.cursor
    assert changes.events == [ExternalEvent(inside, NINE, NINE + HOUR, busy=True)]


async def test_an_incremental_sync_lists_what_changed_since_the_cursor(
    google: GoogleCalendarStandin,
) -> None:
    client = _client(google)
    moved = google.add_event(ANA, NINE, NINE + HOUR)
    deleted = google.add_event(ANA, NINE, NINE + HOUR)
    google.add_event(ANA, NINE + 2 * HOUR, NINE + 3 * HOUR)  # unchanged after the first sync
    first = await asyncio.to_thread(client.changes, None, *WINDOW)
    added = google.add_event(ANA, NINE + 4 * HOUR, NINE + 5 * HOUR)
    google.move_event(ANA, moved, NINE + HOUR, NINE + 2 * HOUR)
    google.delete_event(ANA, deleted)
    since = await asyncio.to_thread(client.changes, first.cursor, *WINDOW)
    assert not since.full and since.cursor != first.cursor
    assert since.events == [
        ExternalEvent(added, NINE + 4 * HOUR, NINE + 5 * HOUR, busy=True),
        ExternalEvent(moved, NINE + HOUR, NINE + 2 * HOUR, busy=True),
        ExternalEvent(deleted, None, None, busy=False, removed=True),
    ]


async def test_an_expired_cursor_is_answered_with_a_full_listing(
    google: GoogleCalendarStandin,
) -> None:
    client = _client(google)
    kept = google.add_event(ANA, NINE, NINE + HOUR)
    first = await asyncio.to_thread(client.changes, None, *WINDOW)
    google.expire_sync_tokens(ANA)
    again = await asyncio.to_thread(client.changes, first.cursor, *WINDOW)
    assert again.full and [e.id for e in again.events] == [kept]
    quiet = await asyncio.to_thread(client.changes, again.cursor, *WINDOW)
    assert quiet.events == [] and not quiet.full


async def test_every_page_is_followed(google: GoogleCalendarStandin) -> None:
    google.state.page_max = 2
    made = [google.add_event(ANA, NINE + i * HOUR, NINE + (i + 1) * HOUR) for i in range(5)]
    changes = await asyncio.to_thread(_client(google).changes, None, *WINDOW)
    assert [e.id for e in changes.events] == made


async def test_a_transparent_event_is_not_busy(google: GoogleCalendarStandin) -> None:
    google.add_event(ANA, NINE, NINE + HOUR, transparent=True)
    [event] = (await asyncio.to_thread(_client(google).changes, None, *WINDOW)).events
    assert not event.busy and not event.removed


async def test_an_event_the_owner_declined_is_not_busy(google: GoogleCalendarStandin) -> None:
    google.add_event(ANA, NINE, NINE + HOUR, declined=True)
    [event] = (await asyncio.to_thread(_client(google).changes, None, *WINDOW)).events
    assert not event.busy


async def test_an_all_day_event_runs_midnight_to_midnight_in_the_calendars_zone(
    google: GoogleCalendarStandin,
) -> None:
    google.add_calendar("berlin@example.com", "Europe/Berlin")
    google.add_event("berlin@example.com", NINE, NINE + timedelta(days=1), all_day=True)
    client = _client(google, calendar_id="berlin@example.com")
    [event] = (await asyncio.to_thread(client.changes, None, *WINDOW)).events
    assert (event.start, event.end) == (  # midnight in Berlin (UTC+1 in January)
        datetime(2030, 1, 6, 23, tzinfo=UTC),
        datetime(2030, 1, 7, 23, tzinfo=UTC),
    )
    assert event.busy


async def test_a_timed_event_comes_in_utc_whatever_its_offset(
    google: GoogleCalendarStandin,
) -> None:
    client = _client(google)
    body = {
        "start": {"dateTime": "2030-01-07T10:00:00+01:00"},
        "end": {"dateTime": "2030-01-07T11:00:00+01:00"},
    }
    google.state.create(google.state.calendar(ANA), body, None, ANA)
    [event] = (await asyncio.to_thread(client.changes, None, *WINDOW)).events
    assert (event.start, event.end) == (NINE, NINE + HOUR)
    assert event.start is not None and event.start.tzinfo == UTC


async def test_our_own_event_comes_back_with_its_booking(google: GoogleCalendarStandin) -> None:
    client = _client(google)
    await asyncio.to_thread(client.put_event, _content(), None, 0)
    [event] = (await asyncio.to_thread(client.changes, None, *WINDOW)).events
    assert event.holdfast_booking == "booking-1" and event.busy


# Our events


def test_an_event_id_is_base32hex_and_one_per_key_and_generation() -> None:
    first = event_id("booking-1/ana", 0)
    assert first == event_id("booking-1/ana", 0)
    assert len({first, event_id("booking-1/ana", 1), event_id("booking-2/ana", 0)}) == 3
    assert set(first) <= set("0123456789abcdefghijklmnopqrstuv") and 5 <= len(first) <= 1024


async def test_put_event_writes_the_booking_under_its_deterministic_id(
    google: GoogleCalendarStandin,
) -> None:
    written = await asyncio.to_thread(_client(google).put_event, _content(), None, 0)
    assert written.external_id == event_id("booking-1/ana/0", 0) and written.generation == 0
    [event] = google.events(ANA)
    assert event["id"] == written.external_id
    assert (event["summary"], event["description"]) == ("Physio", "30 min")
    assert event["start"]["dateTime"] == "2030-01-07T09:00:00Z"
    assert event["extendedProperties"]["private"] == {HOLDFAST_PROPERTY: "booking-1"}
    assert event.get("transparency", "opaque") == "opaque"


async def test_putting_an_event_again_updates_the_one_event(google: GoogleCalendarStandin) -> None:
    client = _client(google)
    first = await asyncio.to_thread(client.put_event, _content(), None, 0)
    again = await asyncio.to_thread(client.put_event, _content(summary="Moved"), None, 0)
    assert again == first
    assert [e["summary"] for e in google.events(ANA)] == ["Moved"]


async def test_an_insert_whose_answer_was_lost_is_not_repeated(
    google: GoogleCalendarStandin,
) -> None:
    key = google.service_account()
    await asyncio.to_thread(_client(google, key).changes, None, *WINDOW)  # (token fetched)
    google.stall(1, 0.4)
    with pytest.raises(CalendarThrottled):
        await asyncio.to_thread(_client(google, key, timeout=0.15).put_event, _content(), None, 0)
    await _soon(lambda: google.events(ANA))
    written = await asyncio.to_thread(_client(google, key).put_event, _content(), None, 0)
    assert [e["id"] for e in google.events(ANA)] == [written.external_id]
    assert written.generation == 0


async def test_an_id_left_by_a_deleted_event_moves_to_the_next_generation(
    google: GoogleCalendarStandin,
) -> None:
    client = _client(google)
    first = await asyncio.to_thread(client.put_event, _content(), None, 0)
    await asyncio.to_thread(client.delete_event, first.external_id)
    again = await asyncio.to_thread(client.put_event, _content(), first.external_id, 0)
    assert again.generation == 1 and again.external_id == event_id("booking-1/ana/0", 1)
    assert [e["id"] for e in google.events(ANA)] == [again.external_id]


async def test_an_event_written_under_another_id_is_updated_there(
    google: GoogleCalendarStandin,
) -> None:
    client = _client(google)
    earlier = await asyncio.to_thread(client.put_event, _content(key="old-key"), None, 3)
    written = await asyncio.to_thread(
        client.put_event, _content(summary="Moved"), earlier.external_id, 3
    )
    assert written.external_id == earlier.external_id
    assert [e["summary"] for e in google.events(ANA)] == ["Moved"]


async def test_deleting_twice_is_fine(google: GoogleCalendarStandin) -> None:
    client = _client(google)
    written = await asyncio.to_thread(client.put_event, _content(), None, 0)
    await asyncio.to_thread(client.delete_event, written.external_id)
    await asyncio.to_thread(client.delete_event, written.external_id)
    await asyncio.to_thread(client.delete_event, event_id("never-written", 0))
    assert google.events(ANA) == []


async def test_a_rate_limit_is_throttled_for_googles_retry_after(
    google: GoogleCalendarStandin,
) -> None:
    google.fail(1, 429, retry_after=7)
    with pytest.raises(CalendarThrottled) as throttled:
        await asyncio.to_thread(_client(google).changes, None, *WINDOW)
    assert throttled.value.retry_after == 7


async def test_a_rate_limit_403_is_throttled(google: GoogleCalendarStandin) -> None:
    google.fail(1, 403, reason="userRateLimitExceeded")
    with pytest.raises(CalendarThrottled) as throttled:
        await asyncio.to_thread(_client(google).changes, None, *WINDOW)
    assert throttled.value.retry_after is None


async def test_another_403_on_a_read_refuses_the_credential(
    google: GoogleCalendarStandin,
) -> None:
    google.fail(1, 403, reason="forbidden")
    with pytest.raises(CredentialRefused, match="403"):
        await asyncio.to_thread(_client(google).changes, None, *WINDOW)


async def test_a_403_on_a_write_refuses_only_the_write(google: GoogleCalendarStandin) -> None:
    """A calendar shared read-only: the event fails, the connection stands."""
    google.fail(1, 403, reason="requiredAccessLevel")
    with pytest.raises(CalendarRefused, match="403"):
        await asyncio.to_thread(_client(google).put_event, _content(), None, 0)


async def test_a_server_error_is_throttled(google: GoogleCalendarStandin) -> None:
    google.fail(1, 500)
    with pytest.raises(CalendarThrottled, match="HTTP 500"):
        await asyncio.to_thread(_client(google).changes, None, *WINDOW)


async def test_a_timeout_is_throttled(google: GoogleCalendarStandin) -> None:
    google.stall(1, 0.4)
    with pytest.raises(CalendarThrottled):
        await asyncio.to_thread(_client(google, timeout=0.15).changes, None, *WINDOW)


async def test_an_unreachable_google_is_throttled() -> None:
    async with google_calendar() as google:
        key = google.service_account()
    client = GoogleCalendar(
        key, ANA, subject=None, api_base=f"http://127.0.0.1:{free_port()}/calendar/v3/", timeout=2
    )
    with pytest.raises(CalendarThrottled):
        await asyncio.to_thread(client.changes, None, *WINDOW)


async def test_a_revoked_key_is_refused(google: GoogleCalendarStandin) -> None:
    key = google.service_account()
    google.revoke(key["client_email"])
    with pytest.raises(CredentialRefused, match="invalid_grant"):
        await asyncio.to_thread(_client(google, key).changes, None, *WINDOW)


async def test_a_key_revoked_after_its_token_was_issued_is_refused(
    google: GoogleCalendarStandin,
) -> None:
    key = google.service_account()
    await asyncio.to_thread(_client(google, key).changes, None, *WINDOW)
    google.revoke(key["client_email"])
    with pytest.raises(CredentialRefused) as refused:
        await asyncio.to_thread(_client(google, key).changes, None, *WINDOW)
    [token] = google.state.grants
    assert token not in str(refused.value) and key["private_key_id"] not in str(refused.value)


async def test_impersonation_without_delegation_is_refused(
    google: GoogleCalendarStandin,
) -> None:
    client = GoogleCalendar(
        google.service_account(delegation=False),
        "primary",
        subject=ANA,
        api_base=google.api_base,
        timeout=5,
    )
    with pytest.raises(CredentialRefused, match="unauthorized_client"):
        await asyncio.to_thread(client.changes, None, *WINDOW)


async def test_a_malformed_key_is_refused(google: GoogleCalendarStandin) -> None:
    key = {**google.service_account(), "private_key": "not a key"}
    with pytest.raises(CredentialRefused, match="malformed"):
        _client(google, key)


async def test_an_unknown_calendar_is_refused(google: GoogleCalendarStandin) -> None:
    client = _client(google, calendar_id="nobody@example.com")
    with pytest.raises(CalendarRefused, match="HTTP 404"):
        await asyncio.to_thread(client.changes, None, *WINDOW)


# Sharing


async def test_instances_on_many_threads_share_one_access_token(
    google: GoogleCalendarStandin,
) -> None:
    key = google.service_account()
    await asyncio.to_thread(_client(google, key).changes, None, *WINDOW)

    def sync() -> object:
        return _client(google, key).changes(None, *WINDOW)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(8) as pool:
        await asyncio.gather(*(loop.run_in_executor(pool, sync) for _ in range(16)))
    assert len(google.state.grants) == 1


# Push channels


class Pushes:
    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []

    async def __call__(self, url: str, headers: dict[str, str]) -> None:
        self.headers.append(headers)


async def _watch(google: GoogleCalendarStandin, client: GoogleCalendar) -> Channel:
    expires = datetime.now(UTC) + timedelta(days=1)
    return await asyncio.to_thread(
        client.watch, "https://holdfast.test/hooks/google", "channel-1", "token-1", expires
    )


async def test_watch_opens_a_channel_that_pushes_with_its_token(
    google: GoogleCalendarStandin,
) -> None:
    pushes = Pushes()
    google.deliver = pushes
    channel = await _watch(google, _client(google))
    assert (channel.id, channel.token) == ("channel-1", "token-1") and channel.resource_id
    assert channel.expires_at > datetime.now(UTC) + timedelta(hours=23)
    google.add_event(ANA, NINE, NINE + HOUR)
    await _soon(lambda: len(pushes.headers) == 2)
    assert [h["X-Goog-Resource-State"] for h in pushes.headers] == ["sync", "exists"]
    assert {h["X-Goog-Channel-Token"] for h in pushes.headers} == {"token-1"}
    assert {h["X-Goog-Channel-ID"] for h in pushes.headers} == {"channel-1"}


async def test_renew_opens_a_new_channel_and_stops_the_old(
    google: GoogleCalendarStandin,
) -> None:
    client = _client(google)
    old = await _watch(google, client)
    later = datetime.now(UTC) + timedelta(days=2)
    renewed = await asyncio.to_thread(
        client.renew, old, "https://holdfast.test/hooks/google", later
    )
    assert renewed.id != old.id and renewed.token == old.token
    assert [c["id"] for c in google.channels(ANA)] == [renewed.id]


async def test_unwatch_stops_the_channel_and_a_stopped_one_is_fine(
    google: GoogleCalendarStandin,
) -> None:
    client = _client(google)
    channel = await _watch(google, client)
    await asyncio.to_thread(client.unwatch, channel)
    await asyncio.to_thread(client.unwatch, channel)
    assert google.channels(ANA) == []
