//! Wall-clock time for record timestamps: the one place the client reads
//! `SystemTime` (clippy's `disallowed-methods` bans it elsewhere). Durations and
//! deadlines use `tokio::time::Instant`, which tests can pause.

/// Milliseconds since the Unix epoch, Kafka's timestamp unit.
#[allow(clippy::disallowed_methods)]
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
