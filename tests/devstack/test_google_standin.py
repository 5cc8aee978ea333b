"""The local Google Calendar stand-in answers google-auth and google-api-python-client as
Google does: tokens for the keys it issued, events with client-chosen ids, sync tokens,
pages, watch channels and their pushes, free/busy, and Google's errors."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import google_auth_httplib2  # type: ignore[import-untyped, unused-ignore]
import httplib2  # type: ignore[import-untyped, unused-ignore]
import pytest
from google.auth.exceptions import RefreshError
from google.oauth2 import service_account
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from devstack.google_calendar import demo_key, new_key
from tests.support.google_calendar import GoogleCalendarStandin, google_calendar

SCOPE = "https://www.googleapis.com/auth/calendar"
ANA = "ana@example.com"
NINE = datetime(2030, 1, 7, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


class Pushes:
    """A `deliver` that keeps what the stand-in pushes."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str]]] = []

    async def __call__(self, url: str, headers: dict[str, str]) -> None:
        self.received.append((url, headers))

    async def wait_for(self, count: int) -> list[dict[str, str]]:
        deadline = time.monotonic() + 5
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} pushes"
            await asyncio.sleep(0.01)
        return [headers for _, headers in self.received]


@pytest.fixture
async def google() -> AsyncIterator[GoogleCalendarStandin]:
    async with google_calendar() as standin:
        standin.add_calendar(ANA)
        yield standin


def _service(
    google: GoogleCalendarStandin,
    key: dict[str, Any],
    subject: str | None = None,
    timeout: float = 5,
) -> Any:
    """Calendar v3 as any program builds it, signed in with `key`."""
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        key, scopes=[SCOPE], subject=subject
    )
    connection = httplib2.Http(timeout=timeout, proxy_info=None)
    return build(
        "calendar",
        "v3",
        http=google_auth_httplib2.AuthorizedHttp(credentials, http=connection),
        static_discovery=True,
        client_options={"api_endpoint": google.api_base},
    )


async def _call(request: Any) -> Any:
    return await asyncio.to_thread(request.execute, num_retries=0)


def _error(refused: HttpError) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(refused.content)["error"]
    return body


def _timed(start: datetime, end: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "start": {"dateTime": start.isoformat()},
        "end": {"dateTime": end.isoformat()},
        **fields,
    }


async def test_an_issued_key_gets_an_access_token_that_reaches_the_api(
    google: GoogleCalendarStandin,
) -> None:
    service = _service(google, google.service_account())
    page = await _call(service.events().list(calendarId=ANA))
    assert page["kind"] == "calendar#events" and page["items"] == []
    assert page["timeZone"] == "UTC" and page["nextSyncToken"]


async def test_a_key_the_standin_did_not_issue_is_an_invalid_grant(
    google: GoogleCalendarStandin,
) -> None:
    stranger = new_key(google.token_uri, "stranger@elsewhere.iam.gserviceaccount.com")
    with pytest.raises(RefreshError, match="invalid_grant"):
        await _call(_service(google, stranger).events().list(calendarId=ANA))


async def test_a_revoked_account_gets_no_token(google: GoogleCalendarStandin) -> None:
    key = google.service_account()
    google.revoke(key["client_email"])
    with pytest.raises(RefreshError, match="invalid_grant"):
        await _call(_service(google, key).events().list(calendarId=ANA))


async def test_a_token_stops_working_when_its_account_is_revoked(
    google: GoogleCalendarStandin,
) -> None:
    key = google.service_account()
    await _call(_service(google, key).events().list(calendarId=ANA))
    [token] = google.state.grants
    google.revoke(key["client_email"])
    plain = build(
        "calendar",
        "v3",
        http=httplib2.Http(proxy_info=None),
        static_discovery=True,
        client_options={"api_endpoint": google.api_base},
    )
    request = plain.events().list(calendarId=ANA)
    request.headers["authorization"] = f"Bearer {token}"
    with pytest.raises(HttpError) as refused:
        await _call(request)
    assert refused.value.resp.status == 401
    assert _error(refused.value)["errors"][0]["reason"] == "authError"
    assert _error(refused.value)["status"] == "UNAUTHENTICATED"


async def test_impersonation_needs_domain_wide_delegation(google: GoogleCalendarStandin) -> None:
    key = google.service_account(delegation=False)
    with pytest.raises(RefreshError, match="unauthorized_client"):
        await _call(_service(google, key, subject=ANA).events().list(calendarId="primary"))


async def test_primary_is_the_impersonated_users_calendar(google: GoogleCalendarStandin) -> None:
    service = _service(google, google.service_account(), subject=ANA)
    await _call(service.events().insert(calendarId="primary", body=_timed(NINE, NINE + HOUR)))
    assert len(google.events(ANA)) == 1


async def test_a_request_without_a_token_is_unauthenticated(google: GoogleCalendarStandin) -> None:
    plain = build(
        "calendar",
        "v3",
        http=httplib2.Http(proxy_info=None),
        static_discovery=True,
        client_options={"api_endpoint": google.api_base},
    )
    with pytest.raises(HttpError) as refused:
        await _call(plain.events().list(calendarId=ANA))
    assert refused.value.resp.status == 401
    assert "invalid_token" in refused.value.resp["www-authenticate"]


async def test_an_unknown_calendar_is_not_found(google: GoogleCalendarStandin) -> None:
    service = _service(google, google.service_account())
    with pytest.raises(HttpError) as refused:
        await _call(service.events().list(calendarId="nobody@example.com"))
    assert refused.value.resp.status == 404
    assert _error(refused.value)["errors"][0] == {
        "domain": "global",
        "reason": "notFound",
        "message": "Not Found",
    }


async def test_insert_keeps_the_id_the_client_chose(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    body = _timed(NINE, NINE + HOUR, id="holdfast00001", summary="Physio")
    made = await _call(events.insert(calendarId=ANA, body=body))
    fetched = await _call(events.get(calendarId=ANA, eventId="holdfast00001"))
    assert made == fetched
    assert made["id"] == "holdfast00001" and made["status"] == "confirmed"
    assert made["summary"] == "Physio" and made["etag"] and made["updated"]


async def test_an_id_outside_base32hex_is_invalid(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    with pytest.raises(HttpError) as refused:
        await _call(events.insert(calendarId=ANA, body=_timed(NINE, NINE + HOUR, id="Not-Valid")))
    assert refused.value.resp.status == 400


async def test_an_id_taken_even_by_a_deleted_event_is_a_duplicate(
    google: GoogleCalendarStandin,
) -> None:
    events = _service(google, google.service_account()).events()
    body = _timed(NINE, NINE + HOUR, id="holdfast00001")
    await _call(events.insert(calendarId=ANA, body=body))
    await _call(events.delete(calendarId=ANA, eventId="holdfast00001"))
    with pytest.raises(HttpError) as refused:
        await _call(events.insert(calendarId=ANA, body=body))
    assert refused.value.resp.status == 409
    assert _error(refused.value)["errors"][0]["reason"] == "duplicate"
    deleted = await _call(events.get(calendarId=ANA, eventId="holdfast00001"))
    assert deleted["status"] == "cancelled"


async def test_deleting_a_deleted_event_is_gone_and_an_unknown_one_not_found(
    google: GoogleCalendarStandin,
) -> None:
    events = _service(google, google.service_account()).events()
    event_id = google.add_event(ANA, NINE, NINE + HOUR)
    await _call(events.delete(calendarId=ANA, eventId=event_id))
    with pytest.raises(HttpError) as again:
        await _call(events.delete(calendarId=ANA, eventId=event_id))
    with pytest.raises(HttpError) as unknown:
        await _call(events.delete(calendarId=ANA, eventId="unknown00001"))
    assert (again.value.resp.status, _error(again.value)["errors"][0]["reason"]) == (410, "deleted")
    assert unknown.value.resp.status == 404


async def test_an_event_ending_before_it_starts_is_refused(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    with pytest.raises(HttpError) as refused:
        await _call(events.insert(calendarId=ANA, body=_timed(NINE, NINE - HOUR)))
    assert _error(refused.value)["errors"][0]["reason"] == "timeRangeEmpty"


async def test_patch_merges_and_update_replaces(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    private = {"extendedProperties": {"private": {"a": "1"}}}
    made = await _call(events.insert(calendarId=ANA, body=_timed(NINE, NINE + HOUR, **private)))
    patch = {"summary": "Moved", "extendedProperties": {"private": {"b": "2"}}}
    patched = await _call(events.patch(calendarId=ANA, eventId=made["id"], body=patch))
    assert patched["extendedProperties"]["private"] == {"a": "1", "b": "2"}
    assert patched["start"] == made["start"] and patched["etag"] != made["etag"]
    body = _timed(NINE + HOUR, NINE + 2 * HOUR)
    updated = await _call(events.update(calendarId=ANA, eventId=made["id"], body=body))
    assert "summary" not in updated and "extendedProperties" not in updated
    assert updated["start"] == body["start"]


async def test_a_listing_is_the_window_then_what_changed_since(
    google: GoogleCalendarStandin,
) -> None:
    events = _service(google, google.service_account()).events()
    inside = google.add_event(ANA, NINE, NINE + HOUR)
    google.add_event(ANA, NINE + timedelta(days=30), NINE + timedelta(days=30) + HOUR)
    window = {"timeMin": (NINE - HOUR).isoformat(), "timeMax": (NINE + 2 * HOUR).isoformat()}
    full = await _call(events.list(calendarId=ANA, showDeleted=True, **window))
    assert [e["id"] for e in full["items"]] == [inside]
    added = google.add_event(ANA, NINE + 3 * HOUR, NINE + 4 * HOUR)
    google.delete_event(ANA, inside)
    since = await _call(events.list(calendarId=ANA, syncToken=full["nextSyncToken"]))
    assert [(e["id"], e["status"]) for e in since["items"]] == [
        (added, "confirmed"),
        (inside, "cancelled"),
    ]
    assert set(since["items"][1]) <= {"kind", "etag", "id", "status", "updated"}
    quiet = await _call(events.list(calendarId=ANA, syncToken=since["nextSyncToken"]))
    assert quiet["items"] == []


async def test_a_sync_token_with_a_time_window_is_refused(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    token = (await _call(events.list(calendarId=ANA)))["nextSyncToken"]
    with pytest.raises(HttpError) as refused:
        await _call(events.list(calendarId=ANA, syncToken=token, timeMin=NINE.isoformat()))
    assert refused.value.resp.status == 400


async def test_an_expired_sync_token_requires_a_full_sync(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    token = (await _call(events.list(calendarId=ANA)))["nextSyncToken"]
    google.expire_sync_tokens(ANA)
    with pytest.raises(HttpError) as refused:
        await _call(events.list(calendarId=ANA, syncToken=token))
    assert refused.value.resp.status == 410
    assert _error(refused.value)["errors"][0]["reason"] == "fullSyncRequired"
    fresh = (await _call(events.list(calendarId=ANA)))["nextSyncToken"]
    assert (await _call(events.list(calendarId=ANA, syncToken=fresh)))["items"] == []


async def test_pages_follow_to_the_sync_token(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    made = [google.add_event(ANA, NINE + i * HOUR, NINE + (i + 1) * HOUR) for i in range(5)]
    request, pages = events.list(calendarId=ANA, maxResults=2), []
    while request is not None:
        pages.append(await _call(request))
        request = events.list_next(request, pages[-1])
    assert [len(p["items"]) for p in pages] == [2, 2, 1]
    assert [e["id"] for p in pages for e in p["items"]] == made
    assert ["nextSyncToken" in p for p in pages] == [False, False, True]


async def test_a_listing_carries_the_calendars_time_zone(google: GoogleCalendarStandin) -> None:
    google.add_calendar("berlin@example.com", "Europe/Berlin")
    events = _service(google, google.service_account()).events()
    page = await _call(events.list(calendarId="berlin@example.com"))
    assert page["timeZone"] == "Europe/Berlin"


async def test_a_watch_channel_gets_a_sync_message_then_one_per_change(
    google: GoogleCalendarStandin,
) -> None:
    pushes = Pushes()
    google.deliver = pushes
    events = _service(google, google.service_account()).events()
    expiration = int((datetime.now(UTC) + HOUR).timestamp() * 1000)
    body = {
        "id": "channel-1",
        "type": "web_hook",
        "address": "https://holdfast.test/hooks/google",
        "token": "secret-1",
        "expiration": expiration,
    }
    channel = await _call(events.watch(calendarId=ANA, body=body))
    assert (channel["id"], channel["token"], channel["expiration"]) == (
        "channel-1",
        "secret-1",
        str(expiration),
    )
    google.add_event(ANA, NINE, NINE + HOUR)
    sync, change = await pushes.wait_for(2)
    assert pushes.received[0][0] == "https://holdfast.test/hooks/google"
    assert sync["X-Goog-Resource-State"] == "sync" and sync["X-Goog-Message-Number"] == "1"
    assert change["X-Goog-Resource-State"] == "exists"
    assert change["X-Goog-Message-Number"] == "2"
    assert change["X-Goog-Channel-ID"] == "channel-1"
    assert change["X-Goog-Channel-Token"] == "secret-1"
    assert change["X-Goog-Resource-ID"] == channel["resourceId"]
    assert change["X-Goog-Channel-Expiration"].endswith(" GMT")


async def test_a_channel_lives_a_week_at_most(google: GoogleCalendarStandin) -> None:
    events = _service(google, google.service_account()).events()
    asked = int((datetime.now(UTC) + timedelta(days=30)).timestamp() * 1000)
    body = {"id": "c1", "type": "web_hook", "address": "https://h.test/", "expiration": asked}
    channel = await _call(events.watch(calendarId=ANA, body=body))
    week = (datetime.now(UTC) + timedelta(days=7)).timestamp() * 1000
    assert int(channel["expiration"]) <= week


async def test_a_stopped_channel_gets_no_more_pushes(google: GoogleCalendarStandin) -> None:
    pushes = Pushes()
    google.deliver = pushes
    service = _service(google, google.service_account())
    body = {"id": "channel-1", "type": "web_hook", "address": "https://holdfast.test/h"}
    channel = await _call(service.events().watch(calendarId=ANA, body=body))
    stop = {"id": channel["id"], "resourceId": channel["resourceId"]}
    await _call(service.channels().stop(body=stop))
    google.add_event(ANA, NINE, NINE + HOUR)
    await asyncio.sleep(0.05)
    assert len(pushes.received) == 1 and google.channels(ANA) == []
    with pytest.raises(HttpError) as again:
        await _call(service.channels().stop(body=stop))
    assert again.value.resp.status == 404


async def test_free_busy_merges_what_blocks_and_leaves_out_what_does_not(
    google: GoogleCalendarStandin,
) -> None:
    google.add_event(ANA, NINE, NINE + HOUR)
    google.add_event(ANA, NINE + HOUR, NINE + 2 * HOUR)
    google.add_event(ANA, NINE + 3 * HOUR, NINE + 4 * HOUR, transparent=True)
    google.add_event(ANA, NINE + 5 * HOUR, NINE + 6 * HOUR, declined=True)
    service = _service(google, google.service_account())
    body = {
        "timeMin": (NINE + HOUR / 2).isoformat(),
        "timeMax": (NINE + 8 * HOUR).isoformat(),
        "items": [{"id": ANA}, {"id": "nobody@example.com"}],
    }
    answer = await _call(service.freebusy().query(body=body))
    assert answer["calendars"][ANA]["busy"] == [
        {"start": "2030-01-07T09:30:00.000Z", "end": "2030-01-07T11:00:00.000Z"}
    ]
    assert answer["calendars"]["nobody@example.com"]["errors"][0]["reason"] == "notFound"


async def test_a_queued_fault_answers_the_next_request_with_retry_after(
    google: GoogleCalendarStandin,
) -> None:
    events = _service(google, google.service_account()).events()
    google.fail(1, 429, retry_after=7)
    with pytest.raises(HttpError) as refused:
        await _call(events.list(calendarId=ANA))
    assert refused.value.resp.status == 429 and refused.value.resp["retry-after"] == "7"
    assert _error(refused.value)["errors"][0]["reason"] == "rateLimitExceeded"
    await _call(events.list(calendarId=ANA))


async def test_a_stalled_request_still_takes_effect(google: GoogleCalendarStandin) -> None:
    google.stall(1, 0.3)
    impatient = _service(google, google.service_account(), timeout=0.1)
    body = _timed(NINE, NINE + HOUR, id="holdfast00001")
    with pytest.raises(TimeoutError):
        await _call(impatient.events().insert(calendarId=ANA, body=body))
    assert google.events(ANA) == []
    await asyncio.sleep(0.4)
    assert [e["id"] for e in google.events(ANA)] == ["holdfast00001"]


async def test_the_demo_key_is_kept_and_known_to_the_standin(
    google: GoogleCalendarStandin, tmp_path: Path
) -> None:
    path = tmp_path / "google-service-account.json"
    key = demo_key(path, google.token_uri)
    assert demo_key(path, google.token_uri) == key
    assert path.stat().st_mode & 0o777 == 0o600
    google.state.register(key)
    await _call(_service(google, key).events().list(calendarId=ANA))
