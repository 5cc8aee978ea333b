"""The JSON API (FastAPI): contract in docs/api.md."""
