//! What a log is given by whoever opens it (the log manager, or the broker for its
//! metadata log): the filesystem and the clock. Nothing in storage reaches for
//! either on its own, so tests and a simulation can hand in [`crate::fs::MemFs`] and
//! a manual clock.

use std::sync::Arc;

use protocol::time::Clock;

use crate::fs::{Fs, RealFs};

#[derive(Debug, Clone)]
pub struct LogEnv {
    pub fs: Arc<dyn Fs>,
    pub clock: Arc<dyn Clock>,
}

impl LogEnv {
    pub fn new(fs: Arc<dyn Fs>, clock: Arc<dyn Clock>) -> LogEnv {
        LogEnv { fs, clock }
    }

    /// The real filesystem with `clock`.
    pub fn real(clock: Arc<dyn Clock>) -> LogEnv {
        LogEnv::new(RealFs::shared(), clock)
    }
}
