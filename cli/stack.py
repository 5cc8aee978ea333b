"""What the `holdfast` command connects to: the settings of the environment (and `.env`),
and, for whatever they leave unset, the `make run` stack of this folder, whose database
and secrets live under `.data/` (devstack/run.py writes them). So in the project folder
every command works without connection settings while `make run` runs."""

from __future__ import annotations

from pydantic import SecretStr

from devstack.postgres import running_url
from settings import Settings, get_settings

# Settings `make run` generates, and the file under the data folder it keeps each in.
_SAVED = {
    "app_database_password": "app-database-password",
    "audit_key": "audit-key",
    "encryption_keys": "encryption-keys",
    "admin_api_key": "admin-api-key",
    "token_secret": "token-secret",
    "stripe_webhook_secret": "stripe-webhook-secret",
}


def stack_settings() -> Settings:
    settings = get_settings()
    data = settings.data_dir
    filled: dict[str, object] = {}
    if not settings.database_url:
        filled["database_url"] = running_url(data / "postgres", "holdfast")
    for name, file in _SAVED.items():
        value = getattr(settings, name)
        path = data / file
        if (value is None or not value.get_secret_value()) and path.exists():
            filled[name] = SecretStr(path.read_text().strip())
    return settings.model_copy(update=filled)
