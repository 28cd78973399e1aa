//! Connection limits, as Kafka's `ConnectionQuotas` applies them when it accepts:
//!
//! - `max.connection.creation.rate`: every accepted connection is recorded in a
//!   rate of `quota.window.num` samples of `quota.window.size.seconds`; when the
//!   rate is over the limit, the acceptor waits the time that brings it back
//!   (`QuotaUtils.throttleTime`, at most one sample window) before going on.
//! - `max.connections`: with that many open, the acceptor waits (the connection
//!   accepted, the next ones in the listen backlog) until one closes.
//! - `max.connections.per.ip` and `max.connections.per.ip.overrides`: a connection
//!   from an address that already has its maximum is closed at once.
//!
//! Not done: Kafka's per-listener limits (`listener.name.x.max.connections`) and
//! per-IP creation rates (client quotas), which need AlterClientQuotas.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use protocol::time::Clock;
use tokio::sync::Notify;

use crate::config::BrokerConfig;

/// Kafka's `Rate` over a `SampledStat`: events per second over the retained
/// samples, the window taken as at least `samples - 1` full sample windows.
#[derive(Debug)]
pub struct RateSensor {
    /// Events per second allowed.
    quota: f64,
    samples: usize,
    window_ms: i64,
    /// (start_ms, events), oldest first; at most `samples`.
    retained: VecDeque<(i64, u64)>,
}

impl RateSensor {
    pub fn new(quota: u32, samples: u32, window_ms: u64) -> RateSensor {
        RateSensor {
            quota: f64::from(quota),
            samples: samples.max(1) as usize,
            window_ms: window_ms.max(1) as i64,
            retained: VecDeque::new(),
        }
    }

    /// Records one event at `now_ms`; returns how long to wait (ms) to bring the
    /// rate back within the quota, at most one sample window (Kafka's
    /// `recordAndGetThrottleTimeMs` with `boundedThrottleTime`).
    pub fn record(&mut self, now_ms: i64) -> u64 {
        let expire_ms = self.window_ms.saturating_mul(self.samples as i64);
        self.retained
            .retain(|(start, _)| now_ms - start < expire_ms);
        match self.retained.back_mut() {
            Some((start, events)) if now_ms - *start < self.window_ms => *events += 1,
            _ => {
                if self.retained.len() == self.samples {
                    self.retained.pop_front();
                }
                self.retained.push_back((now_ms, 1));
            }
        }
        let window_ms = self.window_size_ms(now_ms);
        let events: u64 = self.retained.iter().map(|(_, n)| n).sum();
        let rate = events as f64 * 1000.0 / window_ms as f64;
        if rate <= self.quota {
            return 0;
        }
        // X = (O - T) / T * W (QuotaUtils.throttleTime); T = 0 waits the most.
        let throttle = (rate - self.quota) / self.quota * window_ms as f64;
        throttle.round().min(self.window_ms as f64) as u64
    }

    fn window_size_ms(&self, now_ms: i64) -> i64 {
        let oldest = self.retained.front().map_or(now_ms, |(start, _)| *start);
        let mut elapsed = now_ms - oldest;
        let full_windows = elapsed / self.window_ms;
        let min_full_windows = self.samples as i64 - 1;
        if full_windows < min_full_windows {
            elapsed += (min_full_windows - full_windows) * self.window_ms;
        }
        elapsed.max(1)
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyConnections {
    pub ip: IpAddr,
    pub max: usize,
}

/// Open connections, per address and in all, with their limits.
#[derive(Debug)]
pub struct ConnectionQuotas {
    max_connections: usize,
    max_per_ip: usize,
    per_ip_overrides: HashMap<IpAddr, usize>,
    /// False when `max.connection.creation.rate` is unlimited (Kafka's default).
    rate_limited: bool,
    state: Mutex<QuotaState>,
    closed: Notify,
}

#[derive(Debug)]
struct QuotaState {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
    rate: RateSensor,
}

impl ConnectionQuotas {
    pub fn new(config: &BrokerConfig) -> Arc<ConnectionQuotas> {
        let mut per_ip_overrides = HashMap::new();
        for (host, count) in &config.max_connections_per_ip_overrides {
            let addresses = host.parse::<IpAddr>().map(|ip| vec![ip]).or_else(|_| {
                (host.as_str(), 0)
                    .to_socket_addrs()
                    .map(|a| a.map(|a| a.ip()).collect())
            });
            match addresses {
                Ok(addresses) => {
                    for ip in addresses {
                        per_ip_overrides.insert(ip, *count);
                    }
                }
                Err(e) => {
                    tracing::warn!(%host, error = %e, "max.connections.per.ip.overrides: cannot resolve host; ignoring it")
                }
            }
        }
        let rate = config.max_connection_creation_rate;
        Arc::new(ConnectionQuotas {
            max_connections: config.max_connections,
            max_per_ip: config.max_connections_per_ip,
            per_ip_overrides,
            rate_limited: rate != i32::MAX as u32,
            state: Mutex::new(QuotaState {
                total: 0,
                per_ip: HashMap::new(),
                rate: RateSensor::new(rate, config.quota_window_num, config.quota_window_size_ms),
            }),
            closed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, QuotaState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Open connections now.
    pub fn total(&self) -> usize {
        self.lock().total
    }

    /// Open connections from `ip` now.
    pub fn from_ip(&self, ip: IpAddr) -> usize {
        self.lock().per_ip.get(&ip).copied().unwrap_or(0)
    }

    /// Kafka's `ConnectionQuotas.inc` for a connection just accepted from `ip`:
    /// waits out the creation-rate throttle and for a free slot, then counts the
    /// connection, or refuses it when its address has its maximum.
    pub async fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        clock: &dyn Clock,
    ) -> Result<ConnectionSlot, TooManyConnections> {
        if self.rate_limited {
            let throttle_ms = self.lock().rate.record(clock.now_ms());
            if throttle_ms > 0 {
                tracing::debug!(%ip, throttle_ms, "max.connection.creation.rate reached: delaying the connection");
                tokio::time::sleep(Duration::from_millis(throttle_ms)).await;
            }
        }
        loop {
            let closed = self.closed.notified();
            tokio::pin!(closed);
            closed.as_mut().enable();
            {
                let mut state = self.lock();
                if state.total < self.max_connections {
                    let count = state.per_ip.get(&ip).copied().unwrap_or(0);
                    let max = self
                        .per_ip_overrides
                        .get(&ip)
                        .copied()
                        .unwrap_or(self.max_per_ip);
                    if count >= max {
                        return Err(TooManyConnections { ip, max });
                    }
                    state.total += 1;
                    state.per_ip.insert(ip, count + 1);
                    return Ok(ConnectionSlot {
                        quotas: Arc::clone(self),
                        ip,
                    });
                }
            }
            closed.await;
        }
    }
}

/// One open connection, counted until dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    quotas: Arc<ConnectionQuotas>,
    ip: IpAddr,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        {
            let mut state = self.quotas.lock();
            assert!(state.total > 0, "connection counted out twice");
            state.total -= 1;
            match state.per_ip.get_mut(&self.ip) {
                Some(count) if *count > 1 => *count -= 1,
                Some(_) => {
                    state.per_ip.remove(&self.ip);
                }
                None => unreachable!("a counted connection has its address counted"),
            }
        }
        self.quotas.closed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_within_the_quota_is_not_throttled() {
        // 11 samples of 1 s: the window is taken as at least 10 s, so 10/s allows
        // 100 connections at once.
        let mut rate = RateSensor::new(10, 11, 1000);
        for _ in 0..100 {
            assert_eq!(rate.record(5_000), 0);
        }
        assert_eq!(
            rate.record(5_000),
            100,
            "101 in 10 s: (10.1 - 10) / 10 * 10 s"
        );
    }

    #[test]
    fn the_throttle_is_at_most_one_sample_window() {
        let mut rate = RateSensor::new(5, 11, 1000);
        let throttles: Vec<u64> = (0..60).map(|_| rate.record(0)).collect();
        assert_eq!(&throttles[..50], &[0; 50]);
        assert_eq!(throttles[50], 200, "51 in 10 s at 5/s");
        assert_eq!(throttles[54], 1000, "55: (5.5 - 5) / 5 * 10 s");
        assert_eq!(throttles[59], 1000, "capped at one window");
    }

    #[test]
    fn old_samples_expire() {
        let mut rate = RateSensor::new(1, 2, 1000);
        assert_eq!(rate.record(0), 0);
        assert!(rate.record(0) > 0, "2 in the minimum 1 s window");
        assert_eq!(rate.record(2_000), 0, "the first sample expired at 2 s");
    }

    #[test]
    fn a_zero_rate_delays_every_connection_by_one_window() {
        let mut rate = RateSensor::new(0, 11, 1000);
        assert_eq!(rate.record(0), 1000);
        assert_eq!(rate.record(7), 1000);
    }
}
