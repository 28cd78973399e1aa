//! The broker's runtime services, below everything else in the crate: the
//! blocking pool that disk work runs on, and the shutdown signal every task
//! watches.

use tokio::sync::watch;

/// Runs blocking storage work off the async worker threads.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// The broker-wide shutdown flag: set once, watched by every task.
#[derive(Debug)]
pub struct Shutdown {
    sender: watch::Sender<bool>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown::new()
    }
}

impl Shutdown {
    pub fn new() -> Shutdown {
        let (sender, _) = watch::channel(false);
        Shutdown { sender }
    }

    /// Tells every task to stop.
    pub fn trigger(&self) {
        let _ = self.sender.send(true);
    }

    /// A receiver whose `changed()` completes when shutdown begins.
    pub fn signal(&self) -> watch::Receiver<bool> {
        self.sender.subscribe()
    }

    pub fn is_shutting_down(&self) -> bool {
        *self.sender.borrow()
    }
}
