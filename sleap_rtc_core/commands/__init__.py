"""Command groups of the ``sleap-rtc`` CLI, one module each."""
