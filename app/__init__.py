"""The HTTP API over the keyspace: ``create_app()`` builds the aiohttp application."""

from .main import create_app

__all__ = ["create_app"]
