//! A runtime-agnostic "something changed" signal, for delayed fetches waiting on
//! appends (Kafka's fetch purgatory) without tying the core to an async runtime.
//!
//! [`Event::listen`] takes the current version; the returned future completes as
//! soon as [`Event::notify`] has been called after that point. Registering the waker
//! and checking the version happen under one lock, so no wake-up is lost.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

#[derive(Debug, Default)]
struct State {
    version: u64,
    wakers: Vec<Waker>,
}

/// The most wakers kept between notifications: one per waiting connection task is
/// expected; beyond this the oldest are woken early (they re-check and wait again).
const MAX_WAKERS: usize = 4096;

#[derive(Debug, Default, Clone)]
pub struct Event {
    state: Arc<Mutex<State>>,
}

impl Event {
    pub fn new() -> Event {
        Event::default()
    }

    /// Wakes every listener created before this call.
    pub fn notify(&self) {
        let wakers = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            state.version = state.version.wrapping_add(1);
            std::mem::take(&mut state.wakers)
        };
        for waker in wakers {
            waker.wake();
        }
    }

    /// A future that completes at the next [`Event::notify`].
    pub fn listen(&self) -> Listener {
        let version = self.state.lock().unwrap_or_else(|p| p.into_inner()).version;
        Listener {
            state: Arc::clone(&self.state),
            version,
        }
    }
}

#[derive(Debug)]
pub struct Listener {
    state: Arc<Mutex<State>>,
    version: u64,
}

impl Future for Listener {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.version != self.version {
            return Poll::Ready(());
        }
        if !state.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            if state.wakers.len() >= MAX_WAKERS {
                let oldest = state.wakers.remove(0);
                oldest.wake();
            }
            state.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_listener_completes_after_notify_and_not_before() {
        let event = Event::new();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        let mut cx = Context::from_waker(&waker);
        let mut listener = event.listen();
        assert!(Pin::new(&mut listener).poll(&mut cx).is_pending());
        assert!(Pin::new(&mut listener).poll(&mut cx).is_pending());
        event.notify();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "one waker, registered once"
        );
        assert!(Pin::new(&mut listener).poll(&mut cx).is_ready());
    }

    #[test]
    fn a_notify_between_listen_and_poll_is_not_lost() {
        let event = Event::new();
        let mut listener = event.listen();
        event.notify();
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut listener).poll(&mut cx).is_ready());
    }
}
