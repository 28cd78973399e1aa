//! What one connection has in flight: requests read and not yet answered, the
//! bytes of those requests, and the bytes of responses not yet written.
//!
//! Kafka mutes a channel from the moment a request is read until its response is
//! sent, so a connection has one request in flight. Rivulet reads ahead so that
//! pipelining clients (librdkafka keeps several Produce requests in flight) keep
//! the socket, the handler and the writer busy at once, but only while the
//! connection is under [`MAX_INFLIGHT_REQUESTS`] and [`MAX_INFLIGHT_BYTES`]
//! (requests and unwritten responses); past either the connection is muted: no
//! byte is read from it until enough is answered and written. Its processor also
//! waits while its unwritten responses are over [`MAX_INFLIGHT_BYTES`], so a
//! client that sends Fetch requests and reads no responses holds at most that
//! much plus one response.
//!
//! Each count is held by a value ([`RequestSlot`], [`Held`]) and given back when
//! it is dropped, wherever that happens (written, handled, or the task aborted).

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

use super::pool::Memory;

/// Requests a connection may have read and not yet answered before it is muted.
pub const MAX_INFLIGHT_REQUESTS: usize = 16;

/// Bytes of requests and unwritten responses a connection may hold before it is
/// muted (one request or response may be larger than this: it is read or made
/// while the connection is under the limit).
pub const MAX_INFLIGHT_BYTES: usize = 16 * 1024 * 1024;

/// The counts of one connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub requests: usize,
    pub request_bytes: usize,
    pub response_bytes: usize,
}

impl Counts {
    /// Whether another request may be read.
    pub fn may_read(&self) -> bool {
        self.requests < MAX_INFLIGHT_REQUESTS
            && self.request_bytes + self.response_bytes < MAX_INFLIGHT_BYTES
    }

    /// Whether the next request may be handled.
    pub fn may_process(&self) -> bool {
        self.response_bytes < MAX_INFLIGHT_BYTES
    }
}

/// One connection's counts, shared by its reader, processor and writer.
#[derive(Debug, Default)]
pub struct Inflight {
    counts: Mutex<Counts>,
    changed: Notify,
}

/// Which bytes a [`Held`] counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

impl Inflight {
    pub fn new() -> Arc<Inflight> {
        Arc::new(Inflight::default())
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn counts(&self) -> Counts {
        *self.lock()
    }

    /// Waits until `condition` holds for the counts.
    pub async fn wait_until(&self, condition: impl Fn(&Counts) -> bool) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if condition(&self.lock()) {
                return;
            }
            changed.await;
        }
    }

    /// Completes at the next change; `enable` it before checking the counts.
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    fn update(&self, change: impl FnOnce(&mut Counts)) {
        change(&mut self.lock());
        self.changed.notify_waiters();
    }

    /// Counts one more request until the slot is dropped.
    pub fn request(self: &Arc<Self>) -> RequestSlot {
        self.update(|c| c.requests += 1);
        RequestSlot {
            inflight: Arc::clone(self),
        }
    }

    /// Counts `memory`'s bytes on `side` until dropped.
    pub fn hold(self: &Arc<Self>, memory: Memory, side: Side) -> Held {
        let bytes = memory.bytes();
        self.update(|c| match side {
            Side::Request => c.request_bytes += bytes,
            Side::Response => c.response_bytes += bytes,
        });
        Held {
            inflight: Arc::clone(self),
            side,
            bytes,
            _memory: memory,
        }
    }
}

/// One request counted from the moment it is read until its response is written
/// (or, without a response, until it is handled).
#[derive(Debug)]
pub struct RequestSlot {
    inflight: Arc<Inflight>,
}

impl Drop for RequestSlot {
    fn drop(&mut self) {
        self.inflight.update(|c| {
            assert!(c.requests > 0, "request counted out twice");
            c.requests -= 1;
        });
    }
}

/// Bytes held in the broker's pool and counted against their connection.
#[derive(Debug)]
pub struct Held {
    inflight: Arc<Inflight>,
    side: Side,
    bytes: usize,
    _memory: Memory,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (side, bytes) = (self.side, self.bytes);
        self.inflight.update(|c| {
            let count = match side {
                Side::Request => &mut c.request_bytes,
                Side::Response => &mut c.response_bytes,
            };
            assert!(*count >= bytes, "connection released more than it holds");
            *count -= bytes;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::pool::RequestPool;
    use super::*;

    #[test]
    fn held_bytes_count_against_the_connection_and_the_pool_until_dropped() {
        let pool = RequestPool::new(1 << 30, 4);
        let inflight = Inflight::new();
        let slot = inflight.request();
        let request = inflight.hold(pool.charge(100), Side::Request);
        let response = inflight.hold(pool.charge(7), Side::Response);
        assert_eq!(
            inflight.counts(),
            Counts {
                requests: 1,
                request_bytes: 100,
                response_bytes: 7
            }
        );
        assert_eq!(pool.used(), 107);
        drop((request, response, slot));
        assert_eq!(inflight.counts(), Counts::default());
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn a_connection_is_muted_at_either_limit() {
        let under = Counts {
            requests: MAX_INFLIGHT_REQUESTS - 1,
            request_bytes: MAX_INFLIGHT_BYTES / 2,
            response_bytes: MAX_INFLIGHT_BYTES / 2 - 1,
        };
        assert!(under.may_read());
        assert!(!Counts {
            requests: MAX_INFLIGHT_REQUESTS,
            ..Counts::default()
        }
        .may_read());
        assert!(!Counts {
            response_bytes: MAX_INFLIGHT_BYTES / 2,
            ..under
        }
        .may_read());
        assert!(Counts {
            request_bytes: MAX_INFLIGHT_BYTES,
            ..Counts::default()
        }
        .may_process());
        assert!(!Counts {
            response_bytes: MAX_INFLIGHT_BYTES,
            ..Counts::default()
        }
        .may_process());
    }
}
