"""The version, read from the installed package metadata (written only in pyproject.toml)."""

from importlib import metadata

#: The name it is installed under (``pip install receiver-hooks``); "receiver" on PyPI
#: is another project.
DISTRIBUTION = "receiver-hooks"

try:
    __version__ = metadata.version(DISTRIBUTION)
except metadata.PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "0+unknown"
