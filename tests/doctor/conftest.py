"""The doctor's loopback-port fixtures."""

from tests.fixtures.doctor import *  # noqa: F403
