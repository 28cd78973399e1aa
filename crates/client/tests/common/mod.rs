//! An in-process Rivulet broker on 127.0.0.1:0 for the client's tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use broker::clock::SystemClock;
use broker::{BrokerConfig, RunningBroker};
use rivulet_client::ClientConfig;

pub struct TestBroker {
    pub broker: Option<RunningBroker>,
    pub address: String,
    _dir: tempfile::TempDir,
}

impl TestBroker {
    pub async fn start() -> TestBroker {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig::from_pairs(vec![
            ("node.id".into(), "1".into()),
            ("listeners".into(), "PLAINTEXT://127.0.0.1:0".into()),
            (
                "log.dirs".into(),
                dir.path().join("logs").display().to_string(),
            ),
            ("group.initial.rebalance.delay.ms".into(), "0".into()),
            ("offsets.topic.num.partitions".into(), "3".into()),
            ("num.partitions".into(), "1".into()),
        ])
        .unwrap();
        let broker = RunningBroker::start(config, Arc::new(SystemClock))
            .await
            .unwrap();
        let address = broker.addresses[0].to_string();
        TestBroker {
            broker: Some(broker),
            address,
            _dir: dir,
        }
    }

    pub fn config(&self) -> ClientConfig {
        ClientConfig::new().set("bootstrap.servers", self.address.clone())
    }

    pub async fn stop(mut self) {
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await.unwrap();
        }
    }
}
