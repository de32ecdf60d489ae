"""Application services: what the HTTP endpoints do, independent of HTTP."""
