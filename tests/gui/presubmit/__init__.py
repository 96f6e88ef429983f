"""Tests of the pure presubmission machine."""
