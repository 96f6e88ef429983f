"""The GPU worker: capabilities, mounts, negotiation, jobs and the service."""
