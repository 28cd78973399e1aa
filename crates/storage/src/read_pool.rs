//! Buffers for log reads of 64 KiB or more, reused instead of freed.
//!
//! A fetch reads up to a megabyte or more per partition into a buffer that lives
//! until the response is on the socket. Freed, such buffers go back to the
//! allocator, which returns them to the kernel; the next read faults fresh pages in
//! and the kernel zeroes them (in a scenario-3 profile of the broker, page faults
//! and `clear_page` were a fifth of its CPU). Pooled buffers keep their pages: a
//! buffer is zeroed once, when first allocated, and comes back here when the last
//! `Bytes` pointing into it is dropped.

use std::sync::Mutex;

use bytes::Bytes;

/// Reads smaller than this use a plain allocation.
pub const POOLED_MIN: usize = 64 * 1024;
/// Larger buffers are not kept.
const POOLED_MAX: usize = 8 * 1024 * 1024;
/// At most this many buffers wait in the pool.
const POOL_SLOTS: usize = 32;

static POOL: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An initialised buffer of at least `len` bytes (its length is its capacity).
pub fn take(len: usize) -> Vec<u8> {
    let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
    // The smallest pooled buffer that fits.
    let best = pool
        .iter()
        .enumerate()
        .filter(|(_, b)| b.len() >= len)
        .min_by_key(|(_, b)| b.len())
        .map(|(i, _)| i);
    match best {
        Some(i) => pool.swap_remove(i),
        None => {
            drop(pool);
            vec![0u8; len.next_power_of_two().max(POOLED_MIN)]
        }
    }
}

/// The first `len` bytes of `buffer` as `Bytes`; the buffer returns to the pool
/// when they are dropped.
pub fn into_bytes(buffer: Vec<u8>, len: usize) -> Bytes {
    Bytes::from_owner(Pooled(buffer)).slice(..len)
}

struct Pooled(Vec<u8>);

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        let buffer = std::mem::take(&mut self.0);
        if buffer.len() > POOLED_MAX {
            return;
        }
        let mut pool = POOL.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < POOL_SLOTS {
            pool.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buffer_comes_back_when_its_bytes_are_dropped_and_is_reused() {
        let mut buffer = take(100_000);
        assert!(buffer.len() >= 100_000);
        buffer[..5].copy_from_slice(b"hello");
        let address = buffer.as_ptr();
        let bytes = into_bytes(buffer, 5);
        let clone = bytes.slice(1..3);
        assert_eq!(&bytes[..], b"hello");
        drop(bytes);
        assert_eq!(&clone[..], b"el", "a clone keeps the buffer alive");
        drop(clone);
        // Other tests may use the pool at the same time: look for ours among a few.
        let taken: Vec<Vec<u8>> = (0..POOL_SLOTS).map(|_| take(100_000)).collect();
        assert!(
            taken.iter().any(|b| b.as_ptr() == address),
            "the buffer was reused"
        );
    }
}
