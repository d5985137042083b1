"""receiver: a webhook receiver and normalizer for marketing platforms."""

from .app import create_app
from .config import Settings
from .events import Event, EventType
from .version import DISTRIBUTION, __version__

__all__ = ["DISTRIBUTION", "Event", "EventType", "Settings", "__version__", "create_app"]
