"""mailhub: lists, enquiries and code-of-conduct cases for communities of practice, by email."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mailhub")
except PackageNotFoundError:  # run from a checkout that was never installed
    __version__ = "0+unknown"
