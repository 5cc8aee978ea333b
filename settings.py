"""Process configuration, read once from the environment (and `.env`)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

# The role the API and the worker connect as (docs/security.md#row-level-security): it
# owns nothing, so it can neither change the schema nor escape row-level security.
APP_ROLE = "holdfast_app"


class Settings(BaseSettings):
    """Every knob the API, the worker and `make run` share."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (postgresql+psycopg://...). Unset: `make run` embeds one.",
    )
    app_database_password: SecretStr = Field(
        default=SecretStr(""),
        description="Password of the role the API and the worker connect as (holdfast_app: "
        "it owns nothing and cannot escape row-level security; DATABASE_URL, the tables' "
        "owner, runs the migrations, which set it). `make run` generates one under .data/.",
    )
    temporal_address: str = "127.0.0.1:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = "holdfast"
    workflow_sandbox: bool = Field(
        default=False,
        description="Run workflows in Temporal's sandbox. Off in the worker: the sandbox "
        "re-imports the workflow module for every booking (about 10 ms of CPU each); the "
        "test suite runs the workflow sandboxed, so a non-deterministic call fails CI.",
    )

    admin_api_key: SecretStr | None = None
    token_secret: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key for allocation tokens; `make run` generates one under .data/.",
    )
    allocation_token_ttl_seconds: int = Field(default=900, ge=10, le=86400)
    max_query_days: int = Field(default=62, ge=1, le=366)
    rate_limit_per_minute: int = Field(
        default=600, ge=1, le=1_000_000, description="Requests a minute per secret API key."
    )
    publishable_rate_limit_per_minute: int = Field(
        default=60, ge=1, le=1_000_000, description="Requests a minute per publishable key."
    )
    availability_streams_per_key: int = Field(
        default=100,
        ge=1,
        le=100_000,
        description="Live availability streams a key may hold open in each API process.",
    )
    refused_keys_per_minute: int = Field(
        default=30,
        ge=1,
        le=10_000,
        description="Refused (unknown or revoked) keys a minute per client address, before 429.",
    )
    availability_workers: int = Field(
        default=2,
        ge=1,
        le=32,
        description="Processes per API process for long availability queries (weeks, "
        "thousands of slots), so they never hold up the event loop.",
    )

    stripe_api_key: SecretStr | None = Field(
        default=None,
        description="Stripe secret key. Unset: priced services are paid at the venue "
        "(mark-paid); `make run` sets one for its local Stripe stand-in.",
    )
    stripe_api_base: str | None = Field(
        default=None,
        description="Stripe's API address; `make run` points it at its local stand-in "
        "(http://127.0.0.1:8420) when no STRIPE_API_KEY is given.",
    )
    stripe_webhook_secret: SecretStr = Field(
        default=SecretStr(""),
        description="Webhook signing secret(s), comma-separated while rotating.",
    )
    stripe_webhook_tolerance_seconds: int = Field(default=300, ge=1, le=3600)
    stripe_publishable_key: str = Field(
        default="",
        description="Stripe publishable key (pk_…) for the booking page's Stripe.js "
        "(docs/booking-page.md). Unset: the page takes no card payments.",
    )
    stripe_js_url: str = Field(
        default="https://js.stripe.com/v3/",
        description="Where the booking page loads Stripe.js from; `make run` points it at "
        "its local stand-in's.",
    )

    smtp_host: str | None = Field(
        default=None,
        description="SMTP server for email. Unset: `make run` starts one that keeps each "
        "message as a file under .data/mail/.",
    )
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool | None = Field(
        default=None,
        description="true: require STARTTLS; false: never; unset: when the server offers it.",
    )
    smtp_timeout_seconds: float = Field(default=20, gt=0, le=120)
    mail_from: str = Field(
        default="bookings@holdfast.localhost",
        description="The envelope and From address; each tenant sets its own sender name.",
    )

    twilio_account_sid: str | None = Field(
        default=None, description="Twilio account for SMS. Unset: no text messages."
    )
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_api_base: str | None = Field(
        default=None,
        description="Twilio's API address; `make run` points it at its SMS stand-in.",
    )

    webhook_allow_private_targets: bool = Field(
        default=False,
        description="Let webhook endpoints point at private, loopback or link-local "
        "addresses (`make run` and tests set it).",
    )
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=30)

    google_calendar_api_base: str = Field(
        default="https://www.googleapis.com/calendar/v3/",
        description="Google Calendar's API root, including /calendar/v3/; `make run` points "
        "it at its local stand-in.",
    )
    microsoft_authority_host: str = Field(
        default="https://login.microsoftonline.com",
        description="Microsoft identity platform (msal's authority, without the tenant).",
    )
    microsoft_graph_base: str = Field(
        default="https://graph.microsoft.com/v1.0",
        description="Microsoft Graph's root, including the version.",
    )
    microsoft_ca_file: Path | None = Field(
        default=None,
        description="A PEM bundle to trust for the Microsoft authority and Graph instead "
        "of the system's (`make run` and tests: their stand-in's self-signed certificate).",
    )
    calendar_timeout_seconds: float = Field(default=20, gt=0, le=120)
    calendar_push_base_url: str | None = Field(
        default=None,
        description="This API's public https root as calendar providers reach it. Set: "
        "connections subscribe to push notifications; unset: they poll.",
    )
    calendar_poll_seconds: int = Field(
        default=60,
        ge=5,
        le=86400,
        description="How often a connection without push syncs.",
    )
    calendar_push_fallback_seconds: int = Field(
        default=900,
        ge=30,
        le=86400,
        description="How often a connection with push syncs anyway, in case a push is lost.",
    )
    encryption_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Keys that encrypt stored credentials: comma-separated `id:base64` "
        "(32 bytes each), the first encrypts, all decrypt; `make run` generates one "
        "under .data/.",
    )

    audit_key: SecretStr = Field(
        default=SecretStr(""),
        description="HMAC key that signs the audit log's entries, kept out of the database "
        "so that no one with only database access can rewrite the log unnoticed; `make run` "
        "generates one under .data/.",
    )

    codec_allowed_origins: list[str] = Field(
        default=["http://127.0.0.1:8233", "http://localhost:8233"],
        description="Origins whose pages may call /codec (the Temporal UI's).",
    )

    public_docs: bool = Field(
        default=True,
        description="Serve the OpenAPI docs (/docs, /redoc, /openapi.json); false: not at all.",
    )
    public_metrics: bool = Field(
        default=True, description="false: /metrics answers only to the operator key."
    )
    worker_metrics_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the worker process's own Prometheus /metrics (its activities' "
        "counters; docs/operations.md#metrics). Unset: not served.",
    )
    log_format: Literal["json", "text"] = Field(
        default="json",
        description="The API's and the worker's log lines: one JSON object each, with the "
        "request, tenant, booking and workflow ids (docs/operations.md#logs), or text.",
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        description="OTLP/HTTP collector root (e.g. http://collector:4318): spans of API "
        "requests and Temporal calls go there. Unset: no exporter, no spans kept.",
    )

    data_dir: Path = Path(".data")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    temporal_ui_port: int = 8233
    temporal_ui_url: str = Field(
        default="http://127.0.0.1:8233",
        description="The Temporal UI, where the console links each booking's workflow "
        "(docs/console.md).",
    )

    @property
    def async_database_url(self) -> str:
        """The tables' owner: for migrations only."""
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set")
        return to_psycopg_url(self.database_url)

    @property
    def app_database_url(self) -> str:
        """DATABASE_URL as the application role (docs/security.md#row-level-security)."""
        password = self.app_database_password.get_secret_value()
        if not password:
            raise RuntimeError("APP_DATABASE_PASSWORD is not set")
        url = make_url(self.async_database_url).set(username=APP_ROLE, password=password)
        return url.render_as_string(hide_password=False)


def to_psycopg_url(url: str) -> str:
    """Accept plain `postgresql://` URLs (as tools print them) and pick the psycopg 3 driver."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a PostgreSQL URL")


@lru_cache
def get_settings() -> Settings:
    return Settings()
