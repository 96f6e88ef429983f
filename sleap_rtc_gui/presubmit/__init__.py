"""The presubmission state machine: pure, no Qt."""
