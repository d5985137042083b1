"""The read API (CONTRACT section 7): query, export, replay, erase."""
