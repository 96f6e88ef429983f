"""WebRTC transport: peer connection, data channel, file transfer."""
