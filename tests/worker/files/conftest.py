"""The upload area fixture of the worker's file tests."""

from tests.fixtures.uploads import area  # noqa: F401
