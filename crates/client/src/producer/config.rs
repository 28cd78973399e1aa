//! The producer's settings, read from Kafka's keys with Kafka 4's defaults.

use std::time::Duration;

use protocol::records::Compression;

use crate::config::{ClientConfig, CommonConfig};
use crate::error::{ClientError, Result};

/// `acks`: how many replicas must have a batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no answer at all; offsets are unknown (-1).
    None,
    /// `acks=1`: the leader has it.
    Leader,
    /// `acks=all` (`-1`): every in-sync replica has it.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Typed producer configuration.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    pub common: CommonConfig,
    pub acks: Acks,
    /// `batch.size` (16384).
    pub batch_size: usize,
    /// `linger.ms` (5, Kafka 4's default).
    pub linger: Duration,
    /// `compression.type` (none).
    pub compression: Compression,
    /// `retries` (i32::MAX: bounded by `delivery.timeout.ms`).
    pub retries: u32,
    /// `delivery.timeout.ms` (120000).
    pub delivery_timeout: Duration,
    /// `max.in.flight.requests.per.connection` (5).
    pub max_in_flight: usize,
    /// `enable.idempotence`: `Some(true)` requires it, `None` (unset) uses it when
    /// the broker supports it and the other settings allow it.
    pub enable_idempotence: Option<bool>,
    /// `buffer.memory` (32 MiB).
    pub buffer_memory: usize,
    /// `max.request.size` (1 MiB).
    pub max_request_size: usize,
    /// `max.block.ms` (60000): how long `send` waits for buffer space or metadata.
    pub max_block: Duration,
    /// `transactional.id`.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (60000).
    pub transaction_timeout: Duration,
    /// `partitioner.ignore.keys` (false).
    pub partitioner_ignore_keys: bool,
}

pub fn parse_compression(value: &str) -> Option<Compression> {
    Some(match value.trim().to_ascii_lowercase().as_str() {
        "none" | "" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => return None,
    })
}

impl ProducerConfig {
    pub fn from_config(config: &ClientConfig) -> Result<ProducerConfig> {
        let common = CommonConfig::from_config(config, "rivulet-producer")?;
        let acks = match config.get("acks").map(|v| v.trim().to_ascii_lowercase()) {
            None => Acks::All,
            Some(v) if v == "all" || v == "-1" => Acks::All,
            Some(v) if v == "1" => Acks::Leader,
            Some(v) if v == "0" => Acks::None,
            Some(v) => {
                return Err(ClientError::Config {
                    key: "acks".into(),
                    reason: format!("{v:?} is not 0, 1 or all"),
                })
            }
        };
        let compression_name = config.get("compression.type").unwrap_or("none");
        let compression =
            parse_compression(compression_name).ok_or_else(|| ClientError::Config {
                key: "compression.type".into(),
                reason: format!("{compression_name:?} is not none, gzip, snappy, lz4 or zstd"),
            })?;
        let enable_idempotence = match config.get("enable.idempotence") {
            None => None,
            Some(_) => Some(config.bool_or("enable.idempotence", true)?),
        };
        let max_in_flight: usize = config.parse_or("max.in.flight.requests.per.connection", 5)?;
        if max_in_flight == 0 {
            return Err(ClientError::Config {
                key: "max.in.flight.requests.per.connection".into(),
                reason: "must be at least 1".into(),
            });
        }
        let transactional_id = config
            .get("transactional.id")
            .filter(|s| !s.is_empty())
            .map(String::from);
        let producer = ProducerConfig {
            common,
            acks,
            batch_size: config.parse_or("batch.size", 16_384)?,
            linger: config.ms_or("linger.ms", 5)?,
            compression,
            retries: config
                .parse_or::<i64>("retries", i64::from(i32::MAX))?
                .clamp(0, i64::from(u32::MAX)) as u32,
            delivery_timeout: config.ms_or("delivery.timeout.ms", 120_000)?,
            max_in_flight,
            enable_idempotence,
            buffer_memory: config.parse_or("buffer.memory", 32 * 1024 * 1024)?,
            max_request_size: config.parse_or("max.request.size", 1024 * 1024)?,
            max_block: config.ms_or("max.block.ms", 60_000)?,
            transactional_id,
            transaction_timeout: config.ms_or("transaction.timeout.ms", 60_000)?,
            partitioner_ignore_keys: config.bool_or("partitioner.ignore.keys", false)?,
        };
        producer.check_idempotence()?;
        Ok(producer)
    }

    /// Kafka's rules: idempotence needs acks=all, retries > 0 and at most 5 in flight;
    /// transactions need idempotence.
    fn check_idempotence(&self) -> Result<()> {
        let conflict = if self.acks != Acks::All {
            Some("acks must be all")
        } else if self.max_in_flight > 5 {
            Some("max.in.flight.requests.per.connection must be at most 5")
        } else if self.retries == 0 {
            Some("retries must be positive")
        } else {
            None
        };
        match (conflict, self.enable_idempotence, &self.transactional_id) {
            (Some(reason), _, Some(_)) => Err(ClientError::Config {
                key: "transactional.id".into(),
                reason: format!("transactions need idempotence: {reason}"),
            }),
            (Some(reason), Some(true), None) => Err(ClientError::Config {
                key: "enable.idempotence".into(),
                reason: reason.to_string(),
            }),
            (_, Some(false), Some(_)) => Err(ClientError::Config {
                key: "enable.idempotence".into(),
                reason: "transactions (transactional.id) need idempotence".into(),
            }),
            _ => Ok(()),
        }
    }

    /// Whether idempotence may be used (not forbidden by settings).
    pub fn idempotence_allowed(&self) -> bool {
        self.enable_idempotence != Some(false)
            && self.acks == Acks::All
            && self.max_in_flight <= 5
            && self.retries > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> ClientConfig {
        ClientConfig::new().set("bootstrap.servers", "localhost:9092")
    }

    #[test]
    fn defaults_are_kafka_4s() {
        let config = ProducerConfig::from_config(&base()).unwrap();
        assert_eq!(config.acks, Acks::All);
        assert_eq!(config.batch_size, 16_384);
        assert_eq!(config.linger, Duration::from_millis(5));
        assert_eq!(config.compression, Compression::None);
        assert_eq!(config.max_in_flight, 5);
        assert!(config.idempotence_allowed());
    }

    #[test]
    fn idempotence_with_acks_1_is_refused_when_asked_for() {
        let error =
            ProducerConfig::from_config(&base().set("acks", "1").set("enable.idempotence", "true"))
                .unwrap_err();
        assert!(error.to_string().contains("enable.idempotence"), "{error}");
        let quiet = ProducerConfig::from_config(&base().set("acks", "1")).unwrap();
        assert!(
            !quiet.idempotence_allowed(),
            "unset idempotence is silently off with acks=1, as in Java"
        );
    }

    #[test]
    fn unknown_codecs_name_the_key() {
        let error =
            ProducerConfig::from_config(&base().set("compression.type", "brotli")).unwrap_err();
        assert!(error.to_string().contains("compression.type"), "{error}");
    }
}
