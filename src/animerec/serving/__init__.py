"""The HTTP API and the web page: `create_app` builds the FastAPI app (needs the `serve` extra)."""
