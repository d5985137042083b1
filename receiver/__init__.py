"""receiver: a webhook receiver and normalizer for marketing platforms."""

from importlib import metadata

from .app import create_app
from .config import Settings
from .events import Event, EventType

__all__ = ["DISTRIBUTION", "Event", "EventType", "Settings", "__version__", "create_app"]

#: The name it is installed under (``pip install receiver-hooks``); "receiver" on PyPI
#: is another project.
DISTRIBUTION = "receiver-hooks"

try:
    # One source of truth: the version in pyproject.toml, as installed.
    __version__ = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
