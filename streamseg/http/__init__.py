"""The HTTP server: status page, health, metrics, live view (streamseg.http.server)."""

from streamseg.http.server import HttpServer

__all__ = ["HttpServer"]
