"""The HTTP layer: FastAPI app, authentication, routes and the one place errors become JSON."""
