"""MicrosoftCalendar through the local Entra ID and Graph stand-in: msal, requests and
TLS as in production; what Graph answers turned into changes, one event per key, push
subscriptions, or the error that says whether a retry can help."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from activities.calendar_clients import (
    CalendarRefused,
    CalendarThrottled,
    Changes,
    CredentialRefused,
    EventContent,
    ExternalEvent,
)
from activities.microsoft_calendar import PROPERTY_ID, MicrosoftCalendar
from tests.support.microsoft_graph import MicrosoftGraph, Receiver, microsoft_graph
from tests.support.stripe import free_port

USER = "ada@contoso.test"
DAY = datetime(2031, 3, 3, tzinfo=UTC)
START, END = DAY - timedelta(days=1), DAY + timedelta(days=14)
HOOK = "https://holdfast.test/v1/calendar-pushes/microsoft"


@pytest.fixture
async def graph(tmp_path: Path) -> AsyncIterator[MicrosoftGraph]:
    async with microsoft_graph(tmp_path) as standin:
        standin.add_user(USER)
        yield standin


def _calendar(
    graph: MicrosoftGraph,
    credentials: dict[str, str] | None = None,
    user: str = USER,
    timeout: float = 5,
) -> MicrosoftCalendar:
    return MicrosoftCalendar(
        credentials or graph.credentials(), user, **graph.addresses(), timeout=timeout
    )


@pytest.fixture
def calendar(graph: MicrosoftGraph) -> MicrosoftCalendar:
    return _calendar(graph)


def _content(key: str = "key-1", hours: int = 9) -> EventContent:
    return EventContent(
        booking_id="3f1c6c1e-0d5e-4a43-9d55-0f3f0e2a9b10",
        key=key,
        summary="Massage (60 min)",
        description="Booked through Holdfast",
        start=DAY + timedelta(hours=hours),
        end=DAY + timedelta(hours=hours + 1),
    )


async def _changes(calendar: MicrosoftCalendar, cursor: str | None = None) -> Changes:
    return await asyncio.to_thread(calendar.changes, cursor, START, END)


async def _only(calendar: MicrosoftCalendar) -> ExternalEvent:
    [event] = (await _changes(calendar)).events
    return event


def _hours(start: int, end: int) -> tuple[datetime, datetime]:
    return DAY + timedelta(hours=start), DAY + timedelta(hours=end)


# -- changes -------------------------------------------------------------------------------


async def test_a_first_sync_lists_the_window_in_full(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    inside = await graph.add_event(USER, *_hours(9, 10))
    await graph.add_event(USER, DAY + timedelta(days=30), DAY + timedelta(days=30, hours=1))
    changes = await _changes(calendar)
    assert changes.full and changes.cursor.startswith(graph.graph_base + "/")
    assert changes.events == [ExternalEvent(inside, *_hours(9, 10), busy=True)]


async def test_a_full_listing_follows_next_links(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    for minute in range(105):  # more than one page of 100
        start = DAY + timedelta(minutes=minute)
        await graph.add_event(USER, start, start + timedelta(minutes=1))
    assert len((await _changes(calendar)).events) == 105


async def test_an_incremental_sync_returns_only_what_changed(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    await graph.add_event(USER, *_hours(8, 9))
    moved = await graph.add_event(USER, *_hours(9, 10))
    first = await _changes(calendar)
    await graph.move_event(USER, moved, *_hours(14, 15))
    added = await graph.add_event(USER, *_hours(16, 17))
    later = await _changes(calendar, first.cursor)
    assert not later.full and later.cursor != first.cursor
    assert later.events == [
        ExternalEvent(moved, *_hours(14, 15), busy=True),
        ExternalEvent(added, *_hours(16, 17), busy=True),
    ]


async def test_an_expired_delta_link_is_answered_with_a_full_listing(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    kept = await graph.add_event(USER, *_hours(8, 9))
    first = await _changes(calendar)
    graph.expire_delta_links(USER)
    again = await _changes(calendar, first.cursor)
    assert again.full and [e.id for e in again.events] == [kept]


async def test_a_cursor_for_another_graph_is_not_followed(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    await graph.add_event(USER, *_hours(8, 9))
    elsewhere = "https://graph.example/v1.0/users/x/calendarView/delta?$deltatoken=t"
    assert (await _changes(calendar, elsewhere)).full


async def test_free_and_working_elsewhere_time_is_not_busy(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    shown = ["free", "workingElsewhere", "tentative", "oof", "unknown", "busy"]
    for hour, show_as in enumerate(shown):
        await graph.add_event(USER, *_hours(hour, hour + 1), show_as=show_as)
    busy = [e.busy for e in (await _changes(calendar)).events]
    assert busy == [False, False, True, True, True, True]


async def test_a_cancelled_meeting_is_removed(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    event_id = await graph.add_event(USER, *_hours(9, 10))
    first = await _changes(calendar)
    await graph.cancel_event(USER, event_id)
    [cancelled] = (await _changes(calendar, first.cursor)).events
    assert cancelled == ExternalEvent(event_id, None, None, busy=False, removed=True)


async def test_an_event_deleted_is_removed(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    event_id = await graph.add_event(USER, *_hours(9, 10))
    first = await _changes(calendar)
    await graph.delete_event(USER, event_id)
    [deleted] = (await _changes(calendar, first.cursor)).events
    assert deleted == ExternalEvent(event_id, None, None, busy=False, removed=True)


async def test_an_all_day_event_spans_its_midnights(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    await graph.add_event(USER, DAY, DAY + timedelta(days=1), all_day=True)
    event = await _only(calendar)
    assert (event.start, event.end, event.busy) == (DAY, DAY + timedelta(days=1), True)


async def test_our_own_event_comes_back_marked_with_its_booking(
    calendar: MicrosoftCalendar,
) -> None:
    content = _content()
    written = await asyncio.to_thread(calendar.put_event, content, None, 0)
    event = await _only(calendar)
    assert (event.id, event.holdfast_booking) == (written.external_id, content.booking_id)


async def test_an_event_made_by_hand_carries_no_booking(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    await graph.add_event(USER, *_hours(9, 10))
    assert (await _only(calendar)).holdfast_booking is None


# -- events --------------------------------------------------------------------------------


async def test_put_event_writes_a_busy_event_with_our_marker(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    content = _content()
    written = await asyncio.to_thread(calendar.put_event, content, None, 0)
    [event] = graph.events(USER)
    assert (written.external_id, written.generation) == (event["id"], 0)
    assert event["subject"] == "Massage (60 min)"
    assert event["body"] == {"contentType": "text", "content": "Booked through Holdfast"}
    assert event["showAs"] == "busy"
    assert event["start"] == {"dateTime": "2031-03-03T09:00:00.0000000", "timeZone": "UTC"}
    assert event["singleValueExtendedProperties"] == [
        {"id": PROPERTY_ID, "value": f"{content.booking_id}/key-1"}
    ]


async def test_put_event_repeated_for_a_key_keeps_one_event(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    first = await asyncio.to_thread(calendar.put_event, _content(), None, 0)
    again = await asyncio.to_thread(calendar.put_event, _content(hours=11), None, 0)
    assert again == first
    [event] = graph.events(USER)
    assert event["start"]["dateTime"].startswith("2031-03-03T11:00")


async def test_put_event_updates_the_event_it_is_given(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    first = await asyncio.to_thread(calendar.put_event, _content(), None, 0)
    moved = await asyncio.to_thread(calendar.put_event, _content(hours=13), first.external_id, 0)
    assert moved == first
    [event] = graph.events(USER)
    assert event["end"]["dateTime"].startswith("2031-03-03T14:00")


async def test_a_create_whose_answer_was_lost_is_found_by_its_marker(
    graph: MicrosoftGraph,
) -> None:
    calendar = _calendar(graph, timeout=0.2)
    graph.stall(1, 0.6)
    with pytest.raises(CalendarThrottled):
        await asyncio.to_thread(calendar.put_event, _content(), None, 0)
    # (the retry even comes with another generation: the marker still finds it)
    written = await asyncio.to_thread(calendar.put_event, _content(), None, 1)
    [event] = graph.events(USER)
    assert (written.external_id, written.generation) == (event["id"], 1)


async def test_an_event_deleted_by_hand_is_written_anew_under_the_next_generation(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    first = await asyncio.to_thread(calendar.put_event, _content(), None, 0)
    await graph.delete_event(USER, first.external_id)
    second = await asyncio.to_thread(calendar.put_event, _content(), first.external_id, 0)
    [event] = graph.events(USER)
    assert second.generation == 1 and second.external_id == event["id"] != first.external_id


async def test_deleting_an_event_twice_is_fine(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    written = await asyncio.to_thread(calendar.put_event, _content(), None, 0)
    await asyncio.to_thread(calendar.delete_event, written.external_id)
    await asyncio.to_thread(calendar.delete_event, written.external_id)
    assert graph.events(USER) == []


# -- errors --------------------------------------------------------------------------------


async def test_429_is_throttled_with_graphs_retry_after(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    graph.fail(1, 429, retry_after=7)
    with pytest.raises(CalendarThrottled) as throttled:
        await _changes(calendar)
    assert throttled.value.retry_after == 7
    assert (
        str(throttled.value)
        == "Microsoft Graph answered HTTP 429 (TooManyRequests) to a delta query"
    )


async def test_503_is_throttled(graph: MicrosoftGraph, calendar: MicrosoftCalendar) -> None:
    graph.fail(1, 503)
    with pytest.raises(CalendarThrottled) as throttled:
        await asyncio.to_thread(calendar.put_event, _content(), None, 0)
    assert throttled.value.retry_after is None


async def test_a_403_on_a_read_refuses_the_credential(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    graph.fail(1, 403)
    with pytest.raises(CredentialRefused, match="403"):
        await _changes(calendar)


async def test_a_403_on_a_write_refuses_only_the_write(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar
) -> None:
    """An app that may read the calendar but not write it: the connection stands."""
    graph.fail(1, 403)
    with pytest.raises(CalendarRefused, match="403"):
        await asyncio.to_thread(calendar.delete_event, "AAMk-unknown")


async def test_a_timeout_is_throttled(graph: MicrosoftGraph) -> None:
    graph.stall(1, 0.6)
    with pytest.raises(CalendarThrottled, match="ReadTimeout"):
        await _changes(_calendar(graph, timeout=0.2))


async def test_an_unreachable_graph_is_throttled(graph: MicrosoftGraph) -> None:
    calendar = MicrosoftCalendar(
        graph.credentials(),
        USER,
        authority_host=graph.authority_host,
        graph_base=f"https://127.0.0.1:{free_port()}/v1.0",
        ca_file=graph.ca_file,
        timeout=5,
    )
    with pytest.raises(CalendarThrottled, match="ConnectionError"):
        await _changes(calendar)


async def test_a_certificate_we_do_not_trust_is_refused(graph: MicrosoftGraph) -> None:
    calendar = MicrosoftCalendar(
        graph.credentials(),
        USER,
        authority_host=graph.authority_host,
        graph_base=graph.graph_base,
        ca_file=None,  # the system's CAs: not the stand-in's own
        timeout=5,
    )
    with pytest.raises(CalendarRefused, match="TLS verification failed"):
        await _changes(calendar)


async def test_a_wrong_secret_is_a_refused_credential_naming_no_secret(
    graph: MicrosoftGraph,
) -> None:
    credentials = graph.credentials() | {"client_secret": "wrong-secret-value"}
    with pytest.raises(CredentialRefused) as refused:
        await _changes(_calendar(graph, credentials))
    assert str(refused.value) == "Entra ID refused the credential (invalid_client)"


async def test_a_revoked_app_is_a_refused_credential(graph: MicrosoftGraph) -> None:
    credentials = graph.credentials()
    graph.revoke(credentials["client_id"])
    with pytest.raises(CredentialRefused):
        await _changes(_calendar(graph, credentials))


async def test_a_cached_token_refused_is_dropped_and_a_fresh_one_asked_for_at_once(
    graph: MicrosoftGraph,
) -> None:
    """A 401 on a cached token is tried again with a new one; Entra ID then refuses the
    revoked app itself, which is what marks the connection."""
    credentials = graph.credentials()
    await _changes(_calendar(graph, credentials))  # a token is cached
    graph.revoke(credentials["client_id"])
    with pytest.raises(CredentialRefused, match="invalid_client"):
        await _changes(_calendar(graph, credentials))


async def test_an_unknown_tenant_is_a_refused_credential(graph: MicrosoftGraph) -> None:
    credentials = graph.credentials() | {"tenant_id": "00000000-0000-0000-0000-000000000000"}
    with pytest.raises(CredentialRefused, match="no tenant"):
        await _changes(_calendar(graph, credentials))


async def test_an_unknown_user_is_refused_not_the_credential(graph: MicrosoftGraph) -> None:
    with pytest.raises(CalendarRefused) as refused:
        await _changes(_calendar(graph, user="nobody@contoso.test"))
    assert not isinstance(refused.value, CredentialRefused)
    assert "ErrorInvalidUser" in str(refused.value)


def test_constructing_a_calendar_sends_nothing() -> None:
    unreachable = f"https://127.0.0.1:{free_port()}"
    MicrosoftCalendar(
        {"tenant_id": "t", "client_id": "c", "client_secret": "s"},
        USER,
        authority_host=unreachable,
        graph_base=f"{unreachable}/v1.0",
        ca_file=None,
        timeout=1,
    )


# -- push ----------------------------------------------------------------------------------


@pytest.fixture
def receiver(graph: MicrosoftGraph) -> Receiver:
    receiving = Receiver()
    graph.deliver_with(receiving)
    return receiving


async def test_watch_subscribes_after_the_validation_handshake(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar, receiver: Receiver
) -> None:
    expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    channel = await asyncio.to_thread(calendar.watch, HOOK, "ours-1", "push-token", expires_at)
    [subscription] = graph.subscriptions(USER)
    assert receiver.validations == [HOOK]
    assert (channel.id, channel.resource_id, channel.token) == (
        subscription["id"],
        "",
        "push-token",
    )
    assert channel.expires_at == expires_at
    assert subscription["clientState"] == "push-token"
    assert subscription["notificationUrl"] == subscription["lifecycleNotificationUrl"] == HOOK
    assert subscription["changeType"] == "created,deleted,updated"


async def test_watch_is_capped_at_graphs_longest_subscription(
    calendar: MicrosoftCalendar, receiver: Receiver
) -> None:
    wanted = datetime.now(UTC) + timedelta(days=30)
    channel = await asyncio.to_thread(calendar.watch, HOOK, "ours-1", "push-token", wanted)
    assert channel.expires_at <= datetime.now(UTC) + timedelta(minutes=10080)


async def test_an_address_that_fails_validation_gets_no_subscription(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar, receiver: Receiver
) -> None:
    receiver.validates = False
    expires_at = datetime.now(UTC) + timedelta(days=3)
    with pytest.raises(CalendarRefused, match=r"HTTP 400 \(ValidationError\)"):
        await asyncio.to_thread(calendar.watch, HOOK, "ours-1", "push-token", expires_at)
    assert graph.subscriptions(USER) == []


async def test_a_change_is_pushed_with_our_client_state(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar, receiver: Receiver
) -> None:
    expires_at = datetime.now(UTC) + timedelta(days=3)
    channel = await asyncio.to_thread(calendar.watch, HOOK, "ours-1", "push-token", expires_at)
    event_id = await graph.add_event(USER, *_hours(9, 10))
    [push] = receiver.pushes
    [change] = push["value"]
    assert (change["subscriptionId"], change["clientState"]) == (channel.id, "push-token")
    assert (change["changeType"], change["resourceData"]["id"]) == ("created", event_id)


async def test_renew_extends_the_subscription(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar, receiver: Receiver
) -> None:
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    channel = await asyncio.to_thread(calendar.watch, HOOK, "ours-1", "push-token", soon)
    renewed = await asyncio.to_thread(calendar.renew, channel, HOOK, soon + timedelta(days=2))
    assert (renewed.id, renewed.expires_at) == (channel.id, soon + timedelta(days=2))
    [subscription] = graph.subscriptions(USER)
    assert subscription["expirationDateTime"].startswith(
        renewed.expires_at.strftime("%Y-%m-%dT%H:%M:%S")
    )


async def test_renewing_a_subscription_graph_removed_makes_a_new_one(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar, receiver: Receiver
) -> None:
    expires_at = datetime.now(UTC) + timedelta(days=3)
    channel = await asyncio.to_thread(calendar.watch, HOOK, "ours-1", "push-token", expires_at)
    await graph.lifecycle(channel.id, "subscriptionRemoved")
    renewed = await asyncio.to_thread(calendar.renew, channel, HOOK, expires_at)
    [subscription] = graph.subscriptions(USER)
    assert renewed.id == subscription["id"] != channel.id and renewed.token == "push-token"


async def test_unwatching_twice_is_fine(
    graph: MicrosoftGraph, calendar: MicrosoftCalendar, receiver: Receiver
) -> None:
    expires_at = datetime.now(UTC) + timedelta(days=3)
    channel = await asyncio.to_thread(calendar.watch, HOOK, "ours-1", "push-token", expires_at)
    await asyncio.to_thread(calendar.unwatch, channel)
    await asyncio.to_thread(calendar.unwatch, channel)
    assert graph.subscriptions(USER) == []
