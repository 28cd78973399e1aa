//! KIP-394's pending members: the member ids a group hands out with MEMBER_ID_REQUIRED,
//! each kept until the member joins again with it or its session timeout passes.
//!
//! Kafka bounds them by time only. Here they are bounded in number too: with
//! [`MAX_PENDING_MEMBERS`] waiting, a new one replaces the one nearest its deadline,
//! whose rejoin then gets UNKNOWN_MEMBER_ID and starts over, as after an expiry (a
//! client that rejoins at once, as every client does, is not affected unless that
//! many others joined in between). Deadlines are indexed, so a tick finds the
//! expired ones without looking at the others.

use std::collections::{BTreeMap, BTreeSet};

/// The most pending members one group keeps.
pub const MAX_PENDING_MEMBERS: usize = 1000;

#[derive(Debug, Clone, Default)]
pub struct PendingMembers {
    /// Member id to (deadline, insertion number).
    by_id: BTreeMap<String, (i64, u64)>,
    /// (deadline, insertion number, member id) for every entry of `by_id`: the first
    /// is the one nearest its deadline, the oldest of those with the same.
    by_deadline: BTreeSet<(i64, u64, String)>,
    inserted: u64,
}

impl PendingMembers {
    /// Adds `member_id` until `deadline_ms`; returns the member it displaced, if the
    /// group had its maximum.
    pub fn insert(&mut self, member_id: String, deadline_ms: i64) -> Option<String> {
        self.remove(&member_id);
        let displaced = if self.by_id.len() >= MAX_PENDING_MEMBERS {
            let (_, _, oldest) = self.by_deadline.pop_first().expect("at the maximum");
            self.by_id.remove(&oldest);
            Some(oldest)
        } else {
            None
        };
        self.inserted += 1;
        self.by_deadline
            .insert((deadline_ms, self.inserted, member_id.clone()));
        self.by_id.insert(member_id, (deadline_ms, self.inserted));
        debug_assert_eq!(self.by_id.len(), self.by_deadline.len());
        displaced
    }

    /// Removes `member_id`; its deadline if it was pending.
    pub fn remove(&mut self, member_id: &str) -> Option<i64> {
        let (deadline, inserted) = self.by_id.remove(member_id)?;
        let removed = self
            .by_deadline
            .remove(&(deadline, inserted, member_id.to_string()));
        assert!(removed, "a pending member is indexed by its deadline");
        Some(deadline)
    }

    pub fn contains(&self, member_id: &str) -> bool {
        self.by_id.contains_key(member_id)
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// The earliest deadline.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.by_deadline.first().map(|(deadline, _, _)| *deadline)
    }

    /// Removes every member whose deadline is at or before `now_ms`; how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let mut expired = 0;
        while self.next_deadline_ms().is_some_and(|d| d <= now_ms) {
            let (_, _, member_id) = self.by_deadline.pop_first().expect("a deadline is due");
            self.by_id.remove(&member_id);
            expired += 1;
        }
        expired
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_expire_at_their_deadline_in_order() {
        let mut pending = PendingMembers::default();
        pending.insert("b".into(), 200);
        pending.insert("a".into(), 100);
        assert_eq!(pending.next_deadline_ms(), Some(100));
        assert_eq!(pending.expire(99), 0);
        assert_eq!(pending.expire(100), 1);
        assert!(!pending.contains("a") && pending.contains("b"));
        assert_eq!(pending.remove("b"), Some(200));
        assert!(pending.is_empty());
        assert_eq!(pending.next_deadline_ms(), None);
    }

    #[test]
    fn past_the_maximum_the_one_nearest_its_deadline_is_displaced() {
        let mut pending = PendingMembers::default();
        for i in 0..MAX_PENDING_MEMBERS {
            assert_eq!(pending.insert(format!("m{i}"), 1_000 + i as i64), None);
        }
        assert_eq!(pending.insert("late".into(), 5_000), Some("m0".to_string()));
        assert_eq!(pending.len(), MAX_PENDING_MEMBERS);
        assert!(pending.contains("late") && !pending.contains("m0"));
        assert_eq!(pending.next_deadline_ms(), Some(1_001));
    }

    #[test]
    fn among_equal_deadlines_the_first_handed_out_is_displaced() {
        let mut pending = PendingMembers::default();
        for i in (0..MAX_PENDING_MEMBERS).rev() {
            pending.insert(format!("m{i}"), 1_000);
        }
        let last = format!("m{}", MAX_PENDING_MEMBERS - 1);
        assert_eq!(pending.insert("new".into(), 1_000), Some(last));
    }

    #[test]
    fn inserting_an_id_again_moves_its_deadline() {
        let mut pending = PendingMembers::default();
        pending.insert("a".into(), 100);
        pending.insert("a".into(), 300);
        assert_eq!(pending.len(), 1);
        assert_eq!(pending.expire(200), 0);
        assert_eq!(pending.remove("a"), Some(300));
    }
}
