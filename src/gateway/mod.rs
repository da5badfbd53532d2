//! WebSocket gateway (reserved): a JWT-enforcing reverse proxy in front of WS
//! backends without auth (MQTT-over-WebSocket brokers, raw WS services). See
//! `shared/STYLE.md` §3 for the planned file layout.
