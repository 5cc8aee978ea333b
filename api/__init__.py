"""The JSON API (FastAPI): contract in SPEC §3."""
