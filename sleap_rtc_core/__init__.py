"""Headless core of sleap-rtc: protocol, signaling, transport, worker and client."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sleap-rtc")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
