"""receiver: a webhook receiver and normalizer for marketing platforms."""

from .app import create_app
from .config import Settings
from .events import Event, EventType

__all__ = ["Event", "EventType", "Settings", "create_app"]
__version__ = "0.1.0"
