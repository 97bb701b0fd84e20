"""The gateway service. web UI, REST API and the WebSocket feed of live stream availability."""
