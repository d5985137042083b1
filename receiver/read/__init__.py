"""The read API (docs/read-api.md): query, export, replay, erase."""
