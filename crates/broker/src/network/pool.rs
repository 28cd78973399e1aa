//! The broker-wide request memory pool (Kafka's `queued.max.request.bytes`) and
//! the broker-wide bound on requests read ahead (`queued.max.requests`).
//!
//! A connection reserves a frame's size here after reading its 4-byte size prefix
//! and before reading (and allocating) the rest; the reservation lasts until the
//! request has been handled. Each response is charged when its handler returns it
//! and released once it is written. A charge is never refused: refusing would
//! strand a response already computed, and waiting for memory at that point could
//! deadlock with the requests that hold it. A charge only holds reservations back
//! until enough is written.
//!
//! Reservations are granted in arrival order ([`RequestPool::reserve`]), so a large
//! frame is not starved by a stream of small ones. A request read ahead of the one
//! its connection is processing does not queue: it takes memory and a read-ahead
//! slot only when both are free at once and nobody is waiting
//! ([`RequestPool::try_reserve_read_ahead`]), so connections that are stuck (a
//! JoinGroup waiting for a rebalance, a client that reads no responses) cannot
//! hold up the first request of any other connection with their read-ahead.
//!
//! Invariants: `used` is the sum of live reservations and charges; a waiter is
//! granted only when `used + need <= capacity`, so reservations alone never exceed
//! the capacity; `read_ahead <= max_read_ahead`.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The memory every connection's requests and responses share.
#[derive(Debug)]
pub struct RequestPool {
    capacity: usize,
    max_read_ahead: usize,
    state: Mutex<State>,
    /// Fires whenever memory or a read-ahead slot is given back.
    released: Notify,
}

#[derive(Debug, Default)]
struct State {
    used: usize,
    read_ahead: usize,
    /// Reservations waiting, oldest first.
    queue: VecDeque<Waiter>,
    /// Waiters granted whose future has not seen it yet.
    granted: HashSet<u64>,
    next_id: u64,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    need: usize,
    waker: Waker,
}

impl State {
    /// Grants waiters in order while they fit; returns the wakers to call once the
    /// lock is released.
    fn grant(&mut self, capacity: usize) -> Vec<Waker> {
        let mut wake = Vec::new();
        while let Some(front) = self.queue.front() {
            if self.used + front.need > capacity {
                break;
            }
            let waiter = self.queue.pop_front().expect("front exists");
            self.used += waiter.need;
            self.granted.insert(waiter.id);
            wake.push(waiter.waker);
        }
        wake
    }
}

impl RequestPool {
    /// A pool of `capacity` bytes allowing `max_read_ahead` requests read ahead.
    pub fn new(capacity: usize, max_read_ahead: usize) -> Arc<RequestPool> {
        Arc::new(RequestPool {
            capacity: capacity.max(1),
            max_read_ahead,
            state: Mutex::new(State::default()),
            released: Notify::new(),
        })
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes reserved and charged now.
    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// Requests read ahead now.
    pub fn read_ahead(&self) -> usize {
        self.lock().read_ahead
    }

    /// Reservations waiting now.
    pub fn waiting(&self) -> usize {
        self.lock().queue.len()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits, in arrival order, until `bytes` (at most the capacity) fit.
    pub fn reserve(self: &Arc<Self>, bytes: usize) -> Reserve {
        Reserve {
            pool: Arc::clone(self),
            need: bytes.min(self.capacity),
            id: None,
            done: false,
        }
    }

    /// Memory and a read-ahead slot for a request read ahead, only if both are
    /// free now and no reservation is waiting.
    pub fn try_reserve_read_ahead(
        self: &Arc<Self>,
        bytes: usize,
    ) -> Option<(Memory, ReadAheadSlot)> {
        let need = bytes.min(self.capacity);
        let mut state = self.lock();
        if !state.queue.is_empty()
            || state.read_ahead >= self.max_read_ahead
            || state.used + need > self.capacity
        {
            return None;
        }
        state.used += need;
        state.read_ahead += 1;
        Some((
            Memory {
                pool: Arc::clone(self),
                bytes: need,
            },
            ReadAheadSlot {
                pool: Arc::clone(self),
            },
        ))
    }

    /// Charges `bytes` at once, even past the capacity (a response already made).
    pub fn charge(self: &Arc<Self>, bytes: usize) -> Memory {
        self.lock().used += bytes;
        Memory {
            pool: Arc::clone(self),
            bytes,
        }
    }

    /// Completes at the next release; `enable` it before checking what it guards.
    pub fn released(&self) -> Notified<'_> {
        self.released.notified()
    }

    fn release(&self, bytes: usize) {
        let wake = {
            let mut state = self.lock();
            assert!(state.used >= bytes, "pool released more than it holds");
            state.used -= bytes;
            state.grant(self.capacity)
        };
        wake.into_iter().for_each(Waker::wake);
        self.released.notify_waiters();
    }
}

/// Bytes held in the pool until dropped.
#[derive(Debug)]
pub struct Memory {
    pool: Arc<RequestPool>,
    bytes: usize,
}

impl Memory {
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        self.pool.release(self.bytes);
    }
}

/// One of the `queued.max.requests` read-ahead slots, until dropped.
#[derive(Debug)]
pub struct ReadAheadSlot {
    pool: Arc<RequestPool>,
}

impl Drop for ReadAheadSlot {
    fn drop(&mut self) {
        {
            let mut state = self.pool.lock();
            assert!(state.read_ahead > 0, "read-ahead slot released twice");
            state.read_ahead -= 1;
        }
        self.pool.released.notify_waiters();
    }
}

/// A reservation waiting its turn; dropping it gives up its place (or the memory,
/// if it was granted in the meantime).
#[derive(Debug)]
pub struct Reserve {
    pool: Arc<RequestPool>,
    need: usize,
    id: Option<u64>,
    done: bool,
}

impl Future for Reserve {
    type Output = Memory;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Memory> {
        let capacity = self.pool.capacity;
        let need = self.need;
        let mut state = self.pool.lock();
        let granted = match self.id {
            None if state.queue.is_empty() && state.used + need <= capacity => {
                state.used += need;
                true
            }
            None => {
                let id = state.next_id;
                state.next_id += 1;
                let first_to_wait = state.queue.is_empty();
                let used = state.used;
                state.queue.push_back(Waiter {
                    id,
                    need,
                    waker: cx.waker().clone(),
                });
                drop(state);
                if first_to_wait {
                    // Once per spell of exhaustion, not per request: the operator's
                    // sign that queued.max.request.bytes is holding reads back.
                    tracing::info!(
                        used,
                        need,
                        capacity,
                        "request memory pool exhausted: reads wait for queued.max.request.bytes"
                    );
                }
                self.id = Some(id);
                return Poll::Pending;
            }
            Some(id) if state.granted.remove(&id) => true,
            Some(id) => {
                if let Some(waiter) = state.queue.iter_mut().find(|w| w.id == id) {
                    waiter.waker.clone_from(cx.waker());
                }
                false
            }
        };
        drop(state);
        if !granted {
            return Poll::Pending;
        }
        self.done = true;
        Poll::Ready(Memory {
            pool: Arc::clone(&self.pool),
            bytes: need,
        })
    }
}

impl Drop for Reserve {
    fn drop(&mut self) {
        let Some(id) = self.id.filter(|_| !self.done) else {
            return;
        };
        let wake = {
            let mut state = self.pool.lock();
            if state.granted.remove(&id) {
                state.used -= self.need;
            } else {
                state.queue.retain(|w| w.id != id);
            }
            state.grant(self.pool.capacity)
        };
        wake.into_iter().for_each(Waker::wake);
        self.pool.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(reserve: &mut Reserve, waker: &Waker) -> Poll<Memory> {
        Pin::new(reserve).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_reservation_waits_until_the_bytes_fit_and_then_holds_them() {
        let pool = RequestPool::new(100, 10);
        let first = pool.charge(60);
        let counter = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut second = pool.reserve(50);
        assert!(poll(&mut second, &waker).is_pending());
        assert_eq!(pool.used(), 60);
        drop(first);
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "woken once, when it fit"
        );
        assert_eq!(pool.used(), 50, "granted on release, before its poll");
        let Poll::Ready(memory) = poll(&mut second, &waker) else {
            panic!("granted")
        };
        assert_eq!(memory.bytes(), 50);
        drop(memory);
        assert_eq!(pool.used(), 0);
    }

    #[test]
    fn reservations_are_granted_in_arrival_order() {
        let pool = RequestPool::new(100, 10);
        let held = pool.charge(100);
        let waker = Waker::noop().clone();
        let mut large = pool.reserve(90);
        let mut small = pool.reserve(10);
        assert!(poll(&mut large, &waker).is_pending());
        assert!(poll(&mut small, &waker).is_pending());
        drop(held);
        assert_eq!(pool.used(), 100, "both fit together, granted in order");
        assert!(poll(&mut large, &waker).is_ready());
        assert!(poll(&mut small, &waker).is_ready());
        assert_eq!(pool.used(), 0, "both dropped right away");
    }

    #[test]
    fn a_small_reservation_does_not_pass_a_large_one_waiting() {
        let pool = RequestPool::new(100, 10);
        let held = pool.charge(50);
        let waker = Waker::noop().clone();
        let mut large = pool.reserve(90);
        assert!(poll(&mut large, &waker).is_pending());
        let mut small = pool.reserve(10);
        assert!(
            poll(&mut small, &waker).is_pending(),
            "fits, but waits its turn"
        );
        assert!(pool.try_reserve_read_ahead(1).is_none(), "nor reads ahead");
        drop(held);
        assert!(poll(&mut large, &waker).is_ready());
        assert!(poll(&mut small, &waker).is_ready());
    }

    #[test]
    fn a_dropped_waiter_gives_up_its_place_and_a_granted_one_its_bytes() {
        let pool = RequestPool::new(100, 10);
        let held = pool.charge(100);
        let waker = Waker::noop().clone();
        let mut first = pool.reserve(80);
        let mut second = pool.reserve(20);
        assert!(poll(&mut first, &waker).is_pending());
        assert!(poll(&mut second, &waker).is_pending());
        drop(first);
        assert_eq!(pool.waiting(), 1);
        drop(held);
        assert_eq!(pool.used(), 20, "the second granted");
        drop(second);
        assert_eq!(pool.used(), 0, "granted but never seen: given back");
        assert_eq!(pool.waiting(), 0);
    }

    #[test]
    fn a_reservation_larger_than_the_pool_takes_all_of_it() {
        let pool = RequestPool::new(100, 10);
        let waker = Waker::noop().clone();
        let Poll::Ready(memory) = poll(&mut pool.reserve(1_000), &waker) else {
            panic!("an empty pool grants at once")
        };
        assert_eq!(memory.bytes(), 100);
    }

    #[test]
    fn charges_may_pass_the_capacity_and_hold_reservations_back() {
        let pool = RequestPool::new(100, 10);
        let response = pool.charge(150);
        assert_eq!(pool.used(), 150);
        let waker = Waker::noop().clone();
        let mut request = pool.reserve(1);
        assert!(poll(&mut request, &waker).is_pending());
        drop(response);
        assert!(poll(&mut request, &waker).is_ready());
    }

    #[test]
    fn read_ahead_is_bounded_by_slots_and_memory() {
        let pool = RequestPool::new(100, 2);
        let a = pool.try_reserve_read_ahead(10).expect("free");
        let b = pool.try_reserve_read_ahead(10).expect("free");
        assert!(pool.try_reserve_read_ahead(10).is_none(), "two slots");
        assert_eq!(pool.read_ahead(), 2);
        drop(a);
        assert!(pool.try_reserve_read_ahead(91).is_none(), "90 bytes free");
        let c = pool.try_reserve_read_ahead(90).expect("fits");
        drop((b, c));
        assert_eq!((pool.used(), pool.read_ahead()), (0, 0));
    }
}
