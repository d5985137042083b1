"""The ingest edge: read, parse, authenticate, map, store, answer."""
