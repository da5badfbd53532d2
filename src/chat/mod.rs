//! Channels and chat (reserved): shared channels `{chat.channel_prefix}:{name}`,
//! history with gap-free resume, presence, bans, an admin API, PostgreSQL as the
//! record. Today only `POST /api/publish {"channel": ...}` publishes to channels.
