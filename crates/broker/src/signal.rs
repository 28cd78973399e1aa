//! A runtime-agnostic "something changed" signal, for delayed fetches waiting on
//! appends (Kafka's fetch purgatory) without tying the core to an async runtime.
//!
//! [`Event::listen`] takes the current version; the returned future completes as
//! soon as [`Event::notify`] has been called after that point. Registering the waker
//! and checking the version happen under one lock, so no wake-up is lost.
//!
//! Waiters are kept per task, keyed by what [`Waker::will_wake`] compares (the
//! waker's data and vtable pointers), with the number of that task's listeners
//! registered: a fetch listening to one partition many times, or polled again,
//! registers once, in O(1). A listener dropped before the notify takes its
//! registration back, so the waiters are exactly the tasks waiting now: at most one
//! per request being handled, and a request is handled per connection at a time
//! (Kafka's delayed fetches are bounded the same way, by its muted connections).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// What [`Waker::will_wake`] compares: two wakers with equal keys wake one task.
type TaskKey = (usize, usize);

fn task_key(waker: &Waker) -> TaskKey {
    (
        waker.data() as usize,
        std::ptr::from_ref(waker.vtable()) as usize,
    )
}

#[derive(Debug, Default)]
struct State {
    version: u64,
    /// The tasks waiting for the next notify, each with its listeners' count.
    waiters: HashMap<TaskKey, (Waker, usize)>,
}

#[derive(Debug, Default, Clone)]
pub struct Event {
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Event {
    pub fn new() -> Event {
        Event::default()
    }

    /// Wakes every listener created before this call.
    pub fn notify(&self) {
        let waiters = {
            let mut state = lock(&self.state);
            state.version = state.version.wrapping_add(1);
            std::mem::take(&mut state.waiters)
        };
        for (waker, _) in waiters.into_values() {
            waker.wake();
        }
    }

    /// A future that completes at the next [`Event::notify`].
    pub fn listen(&self) -> Listener {
        let version = lock(&self.state).version;
        Listener {
            state: Arc::clone(&self.state),
            version,
            registered: None,
        }
    }

    /// Tasks waiting now.
    pub fn waiting_tasks(&self) -> usize {
        lock(&self.state).waiters.len()
    }
}

#[derive(Debug)]
pub struct Listener {
    state: Arc<Mutex<State>>,
    version: u64,
    /// The task this listener counts in, while its version is the current one.
    registered: Option<TaskKey>,
}

/// Takes one listener of `key` out of the waiters.
fn deregister(state: &mut State, key: TaskKey) {
    if let Some((_, listeners)) = state.waiters.get_mut(&key) {
        *listeners -= 1;
        if *listeners == 0 {
            state.waiters.remove(&key);
        }
    }
}

impl Future for Listener {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let state_arc = Arc::clone(&self.state);
        let mut state = lock(&state_arc);
        if state.version != self.version {
            // The notify took every registration with it.
            self.registered = None;
            return Poll::Ready(());
        }
        let key = task_key(cx.waker());
        if self.registered == Some(key) {
            return Poll::Pending;
        }
        if let Some(old) = self.registered.take() {
            deregister(&mut state, old);
        }
        state
            .waiters
            .entry(key)
            .or_insert_with(|| (cx.waker().clone(), 0))
            .1 += 1;
        self.registered = Some(key);
        Poll::Pending
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(key) = self.registered {
            let mut state = lock(&self.state);
            if state.version == self.version {
                deregister(&mut state, key);
            }
        }
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

    fn counting() -> (Arc<CountingWaker>, Waker) {
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&counter));
        (counter, waker)
    }

    fn poll(listener: &mut Listener, waker: &Waker) -> Poll<()> {
        Pin::new(listener).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn a_listener_completes_after_notify_and_not_before() {
        let event = Event::new();
        let (counter, waker) = counting();
        let mut listener = event.listen();
        assert!(poll(&mut listener, &waker).is_pending());
        assert!(poll(&mut listener, &waker).is_pending());
        event.notify();
        assert_eq!(
            counter.0.load(Ordering::SeqCst),
            1,
            "one waker, registered once"
        );
        assert!(poll(&mut listener, &waker).is_ready());
    }

    #[test]
    fn a_notify_between_listen_and_poll_is_not_lost() {
        let event = Event::new();
        let mut listener = event.listen();
        event.notify();
        assert!(poll(&mut listener, Waker::noop()).is_ready());
    }

    #[test]
    fn one_task_listening_many_times_is_one_waiter_woken_once() {
        let event = Event::new();
        let (counter, waker) = counting();
        let mut listeners: Vec<Listener> = (0..1000).map(|_| event.listen()).collect();
        for listener in &mut listeners {
            assert!(poll(listener, &waker).is_pending());
        }
        assert_eq!(event.waiting_tasks(), 1);
        listeners.truncate(10);
        assert_eq!(event.waiting_tasks(), 1, "ten of its listeners still wait");
        event.notify();
        assert_eq!(counter.0.load(Ordering::SeqCst), 1);
        assert!(listeners.iter_mut().all(|l| poll(l, &waker).is_ready()));
    }

    #[test]
    fn dropped_listeners_leave_no_waiter_behind() {
        let event = Event::new();
        let tasks: Vec<(Arc<CountingWaker>, Waker)> = (0..100).map(|_| counting()).collect();
        let mut listeners: Vec<Listener> = tasks.iter().map(|_| event.listen()).collect();
        for (listener, (_, waker)) in listeners.iter_mut().zip(&tasks) {
            assert!(poll(listener, waker).is_pending());
        }
        assert_eq!(event.waiting_tasks(), 100);
        drop(listeners);
        assert_eq!(event.waiting_tasks(), 0);
        event.notify();
        assert!(tasks.iter().all(|(c, _)| c.0.load(Ordering::SeqCst) == 0));
    }

    #[test]
    fn a_listener_polled_by_another_task_moves_its_registration() {
        let event = Event::new();
        let (first, first_waker) = counting();
        let (second, second_waker) = counting();
        let mut listener = event.listen();
        assert!(poll(&mut listener, &first_waker).is_pending());
        assert!(poll(&mut listener, &second_waker).is_pending());
        assert_eq!(event.waiting_tasks(), 1);
        event.notify();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_listener_from_before_a_notify_does_not_unregister_a_newer_one() {
        let event = Event::new();
        let (counter, waker) = counting();
        let mut old = event.listen();
        assert!(poll(&mut old, &waker).is_pending());
        event.notify();
        let mut new = event.listen();
        assert!(poll(&mut new, &waker).is_pending());
        drop(old);
        assert_eq!(event.waiting_tasks(), 1, "the new registration stays");
        event.notify();
        assert_eq!(counter.0.load(Ordering::SeqCst), 2);
        assert!(poll(&mut new, &waker).is_ready());
    }
}
