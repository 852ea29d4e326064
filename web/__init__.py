"""The web app and JSON API (litestar)."""
