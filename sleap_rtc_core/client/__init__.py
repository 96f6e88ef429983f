"""The client side: discovery, negotiation, path checks, job monitoring."""
