"""Headless core of sleap-rtc: protocol, signaling, transport, worker and client."""
