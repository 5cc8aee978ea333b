"""How the worker reaches one connected calendar: the connection's credential opened
with the keyring, and the provider's client built with this deployment's addresses
(docs/calendars.md#providers)."""

from __future__ import annotations

from activities.calendar_clients import CalendarClient, CredentialRefused
from activities.google_calendar import GoogleCalendar
from activities.microsoft_calendar import MicrosoftCalendar
from contract import CalendarProvider
from db.models import CalendarConnection
from encryption import Keyring, KeyringError
from notifications.targets import TargetRefused, check_token_uri
from settings import Settings

PUSH_PATHS = {
    CalendarProvider.GOOGLE: "/v1/webhooks/google-calendar",
    CalendarProvider.MICROSOFT: "/v1/webhooks/microsoft-graph",
}


class CalendarAccess:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        keys = settings.encryption_keys.get_secret_value()
        # Without keys no connection could have been made; a worker without them still
        # serves everything else.
        self._keyring = Keyring.parse(keys) if keys else None

    def client(self, row: CalendarConnection) -> CalendarClient:
        """Raises CredentialRefused when the credential cannot be used at all (its key is
        gone from ENCRYPTION_KEYS, or its token endpoint is not allowed): the connection
        then needs a new one, as when the provider refuses it."""
        if self._keyring is None:
            raise CredentialRefused("ENCRYPTION_KEYS is not set: the credential cannot be opened")
        try:
            credentials = self._keyring.open(row.credentials, str(row.id))
        except KeyringError as unreadable:
            raise CredentialRefused(str(unreadable)) from None
        s = self._settings
        if row.provider == CalendarProvider.GOOGLE:
            key = credentials["key"]
            # Checked again here: the setting may have changed since the key was stored.
            try:
                check_token_uri(str(key.get("token_uri")), s.google_calendar_api_base)
            except TargetRefused as refused:
                raise CredentialRefused(str(refused)) from None
            return GoogleCalendar(
                key,
                row.calendar_id,
                subject=credentials.get("subject"),
                api_base=s.google_calendar_api_base,
                timeout=s.calendar_timeout_seconds,
            )
        return MicrosoftCalendar(
            credentials,
            row.calendar_id,
            authority_host=s.microsoft_authority_host,
            graph_base=s.microsoft_graph_base,
            ca_file=str(s.microsoft_ca_file) if s.microsoft_ca_file else None,
            timeout=s.calendar_timeout_seconds,
        )

    def push_address(self, provider: str) -> str | None:
        """Where the provider pushes changes, or None: the connection polls."""
        base = self._settings.calendar_push_base_url
        return f"{base.rstrip('/')}{PUSH_PATHS[CalendarProvider(provider)]}" if base else None

    def poll_seconds(self, pushed: bool) -> int:
        s = self._settings
        return s.calendar_push_fallback_seconds if pushed else s.calendar_poll_seconds
