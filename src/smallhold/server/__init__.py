"""The local HTTP server: an OpenAI-compatible API over the smallhold runtime."""

from smallhold.server.app import create_app

__all__ = ["create_app"]
