"""Loaded by every sleap-rtc 0.0.7 process the interop tests start (PYTHONPATH).

0.0.7 peers gather ICE candidates on every interface and ask Google's public
STUN server whenever the signaling server offers no ICE servers. The network
rule of these tests is loopback only, so, in those processes alone: host
candidates from 127.0.0.1, and no STUN/TURN server at all. Nothing else of
0.0.7 is changed.
"""

import aioice.ice
import aiortc
import aiortc.rtcpeerconnection


def _loopback(use_ipv4: bool = True, use_ipv6: bool = True) -> list[str]:
    return ["127.0.0.1"] if use_ipv4 else []


aioice.ice.get_host_addresses = _loopback
_original_init = aiortc.rtcpeerconnection.RTCPeerConnection.__init__


def _no_ice_servers(self: object, configuration: object = None) -> None:
    _original_init(self, aiortc.RTCConfiguration(iceServers=[]))


aiortc.rtcpeerconnection.RTCPeerConnection.__init__ = _no_ice_servers
