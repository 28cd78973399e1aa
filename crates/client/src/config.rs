//! Configuration as Kafka's clients take it: string properties with Kafka's key
//! names (`bootstrap.servers`, `linger.ms`, `group.id`, ...), settable one by one or
//! read from a `.properties` file (the CLI's `--command-config`).
//!
//! [`ClientConfig`] holds the raw pairs; each component (producer, consumer, admin)
//! reads the keys it knows into a typed struct when it is created, so a bad value
//! fails there with the key's name. Keys a component does not know are ignored, as
//! Kafka's clients log and ignore them.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{ClientError, Result};

/// Kafka-style client properties.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    values: BTreeMap<String, String>,
}

impl ClientConfig {
    pub fn new() -> Self {
        ClientConfig::default()
    }

    /// Sets `key` (Kafka's name) to `value`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.values.insert(key.into(), value.into());
        self
    }

    /// Sets `key` in place.
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.values.insert(key.into(), value.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Reads a Java `.properties` file: `key=value` or `key: value` lines, `#` and
    /// `!` comments, blank lines skipped.
    pub fn from_properties_file(path: &Path) -> Result<ClientConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| ClientError::Config {
            key: "--command-config".into(),
            reason: format!("cannot read {}: {e}", path.display()),
        })?;
        Self::from_properties(&text)
    }

    /// Parses `.properties` text.
    pub fn from_properties(text: &str) -> Result<ClientConfig> {
        let mut config = ClientConfig::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let split = line.find(['=', ':']).ok_or_else(|| ClientError::Config {
                key: format!("line {}", number + 1),
                reason: format!("expected key=value, got {line:?}"),
            })?;
            let (key, value) = (line[..split].trim(), line[split + 1..].trim());
            config.insert(key, value);
        }
        Ok(config)
    }

    /// Adds every pair of `other`, overriding.
    pub fn merge(mut self, other: &ClientConfig) -> Self {
        for (k, v) in other.iter() {
            self.insert(k, v);
        }
        self
    }

    /// A parsed value, or `default` when the key is absent.
    pub fn parse_or<T: FromStr>(&self, key: &str, default: T) -> Result<T>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(text) => text
                .trim()
                .parse()
                .map_err(|e: T::Err| ClientError::Config {
                    key: key.to_string(),
                    reason: format!("{text:?}: {e}"),
                }),
        }
    }

    /// A duration given in milliseconds.
    pub fn ms_or(&self, key: &str, default_ms: u64) -> Result<Duration> {
        self.parse_or(key, default_ms).map(Duration::from_millis)
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v == "true" => Ok(true),
            Some(v) if v == "false" => Ok(false),
            Some(v) => Err(ClientError::Config {
                key: key.into(),
                reason: format!("{v:?} is not true or false"),
            }),
        }
    }

    /// A comma-separated list, trimmed, empties dropped.
    pub fn list(&self, key: &str) -> Option<Vec<String>> {
        self.get(key).map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
    }
}

/// The settings every component shares: where the cluster is, who we are, timeouts.
#[derive(Debug, Clone)]
pub struct CommonConfig {
    /// `bootstrap.servers`: `host:port` pairs.
    pub bootstrap_servers: Vec<String>,
    /// `client.id`.
    pub client_id: String,
    /// `request.timeout.ms` (default 30000).
    pub request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms` (default 10000).
    pub connection_setup_timeout: Duration,
    /// `metadata.max.age.ms` (default 300000).
    pub metadata_max_age: Duration,
    /// `retry.backoff.ms` (default 100).
    pub retry_backoff: Duration,
    /// `reconnect.backoff.ms` (default 50).
    pub reconnect_backoff: Duration,
    /// Largest response frame accepted (`max.response.size`, default 100 MiB + headroom).
    pub max_response_bytes: usize,
}

impl CommonConfig {
    pub fn from_config(config: &ClientConfig, default_client_id: &str) -> Result<CommonConfig> {
        let bootstrap_servers = config.list("bootstrap.servers").unwrap_or_default();
        if bootstrap_servers.is_empty() {
            return Err(ClientError::Config {
                key: "bootstrap.servers".into(),
                reason: "required: give at least one host:port".into(),
            });
        }
        for server in &bootstrap_servers {
            let ok = server
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !ok {
                return Err(ClientError::Config {
                    key: "bootstrap.servers".into(),
                    reason: format!("{server:?} is not host:port"),
                });
            }
        }
        let security = config.get("security.protocol").unwrap_or("PLAINTEXT");
        if !security.eq_ignore_ascii_case("PLAINTEXT") {
            return Err(ClientError::Config {
                key: "security.protocol".into(),
                reason: format!("{security} is not supported yet (only PLAINTEXT)"),
            });
        }
        Ok(CommonConfig {
            bootstrap_servers,
            client_id: config
                .get("client.id")
                .unwrap_or(default_client_id)
                .to_string(),
            request_timeout: config.ms_or("request.timeout.ms", 30_000)?,
            connection_setup_timeout: config.ms_or("socket.connection.setup.timeout.ms", 10_000)?,
            metadata_max_age: config.ms_or("metadata.max.age.ms", 300_000)?,
            retry_backoff: config.ms_or("retry.backoff.ms", 100)?,
            reconnect_backoff: config.ms_or("reconnect.backoff.ms", 50)?,
            max_response_bytes: config.parse_or("max.response.size", 128 * 1024 * 1024)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_files_parse_like_java() {
        let text = "# comment\n! also\nbootstrap.servers = a:9092,b:9093\nclient.id: tool\n\nlinger.ms=7\n";
        let config = ClientConfig::from_properties(text).unwrap();
        assert_eq!(
            config.list("bootstrap.servers").unwrap(),
            vec!["a:9092", "b:9093"]
        );
        assert_eq!(config.get("client.id"), Some("tool"));
        assert_eq!(
            config.ms_or("linger.ms", 5).unwrap(),
            Duration::from_millis(7)
        );
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let config = ClientConfig::new()
            .set("bootstrap.servers", "x:1")
            .set("request.timeout.ms", "soon");
        let error = CommonConfig::from_config(&config, "t").unwrap_err();
        assert!(error.to_string().contains("request.timeout.ms"), "{error}");
    }

    #[test]
    fn bootstrap_servers_are_required() {
        let error = CommonConfig::from_config(&ClientConfig::new(), "t").unwrap_err();
        assert!(error.to_string().contains("bootstrap.servers"), "{error}");
    }
}
