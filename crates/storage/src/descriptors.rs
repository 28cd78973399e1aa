//! File descriptors: the process limit, raised to the hard limit at start, and how
//! a broker shares it.
//!
//! A log holds one descriptor (its active segment's `.log`); older segments' files
//! come from a cache of at most [`DescriptorBudget::cache`] open files, and index
//! files are held in memory, not open. Everything else (connections, listeners,
//! checkpoint and snapshot writes, reads in flight) comes out of a reserve. Topic
//! creation is refused when the logs it adds would not fit what is left, so a
//! broker that started once has the descriptors to start again
//! (`docs/decisions.md`, "File descriptors").

use std::io;

use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};

/// The limit and how it is shared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DescriptorBudget {
    /// The soft `RLIMIT_NOFILE` of the process.
    pub limit: u64,
    /// Files the segment-file cache may keep open.
    pub cache: usize,
    /// Descriptors kept for everything but logs.
    pub reserved: u64,
}

impl DescriptorBudget {
    /// The share for a process limit of `limit`: a cache of a sixteenth of it
    /// (64 to 1,024 files) and a reserve of a tenth (at least 1,024 descriptors,
    /// at most half).
    pub fn for_limit(limit: u64) -> DescriptorBudget {
        let cache = (limit / 16).clamp(64, 1024) as usize;
        let reserved = (limit / 10).max(1024).min(limit / 2);
        DescriptorBudget {
            limit,
            cache,
            reserved,
        }
    }

    /// No limit (tests, tools).
    pub fn unlimited() -> DescriptorBudget {
        DescriptorBudget {
            limit: u64::MAX,
            cache: crate::fs::FileCache::default().capacity(),
            reserved: 0,
        }
    }

    /// How many logs fit.
    pub fn max_logs(&self) -> u64 {
        self.limit
            .saturating_sub(self.cache as u64)
            .saturating_sub(self.reserved)
    }

    /// Whether `logs` more logs fit beside `existing`; why not, when they do not.
    pub fn check(&self, existing: usize, logs: usize) -> Result<(), String> {
        let wanted = existing as u64 + logs as u64;
        if wanted <= self.max_logs() {
            return Ok(());
        }
        Err(format!(
            "{logs} new partitions would take this broker to {wanted} partitions, past the \
             {} its file descriptor limit allows (RLIMIT_NOFILE {}: one descriptor per \
             partition, {} for the segment file cache, {} kept for connections and other \
             files); raise the limit (ulimit -n) to host more",
            self.max_logs(),
            self.limit,
            self.cache,
            self.reserved
        ))
    }
}

/// The soft limit on open files (`u64::MAX` when unlimited).
pub fn limit() -> u64 {
    getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX)
}

/// Raises the soft limit on open files to the hard limit; returns the limit now
/// in force.
pub fn raise_limit() -> io::Result<u64> {
    let current = getrlimit(Resource::Nofile);
    let Some(maximum) = current.maximum else {
        // An unlimited hard limit: nothing to raise to that the kernel would take.
        return Ok(current.current.unwrap_or(u64::MAX));
    };
    if current.current.is_some_and(|soft| soft >= maximum) {
        return Ok(maximum);
    }
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(maximum),
            maximum: Some(maximum),
        },
    )?;
    Ok(limit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_leaves_a_cache_and_a_reserve() {
        let budget = DescriptorBudget::for_limit(20_000);
        assert_eq!(budget.cache, 1024);
        assert_eq!(budget.reserved, 2_000);
        assert_eq!(budget.max_logs(), 16_976);
        assert!(budget.check(10_000, 6_976).is_ok());
        let refused = budget.check(10_000, 6_977).unwrap_err();
        assert!(refused.contains("16976"), "{refused}");
        let small = DescriptorBudget::for_limit(1024);
        assert_eq!(
            (small.cache, small.reserved, small.max_logs()),
            (64, 512, 448)
        );
        assert!(DescriptorBudget::unlimited()
            .check(1 << 40, 1 << 40)
            .is_ok());
    }

    #[test]
    fn the_limit_can_be_raised_to_the_hard_limit() {
        let raised = raise_limit().unwrap();
        assert_eq!(raised, limit());
        if let Some(hard) = getrlimit(Resource::Nofile).maximum {
            assert_eq!(raised, hard);
        }
    }
}
