//! Three controllers in one process over the in-memory transport: they elect,
//! replicate, fail over, catch a lagging voter up with a snapshot, and refuse
//! another cluster. Waits are on conditions with deadlines, never sleeps.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use metadata::records::ConfigResource;
use metadata::MetadataRecord;
use protocol::time::ManualClock;
use quorum::network::mem::{Link, MemNet};
use quorum::network::rpc;
use quorum::{NodeId, Quorum, QuorumConfig, QuorumError, Role, Voter};
use storage::fs::MemFs;
use storage::LogEnv;

const FETCH_TIMEOUT_MS: u64 = 800;
const BACKOFF_MAX_MS: u64 = 300;
/// The plan's bound for a new leader: the election timeout at its longest,
/// plus a second.
const FAILOVER: Duration = Duration::from_millis(FETCH_TIMEOUT_MS + BACKOFF_MAX_MS + 1_000);
/// For waits that are not under test (start-up, replication on a busy machine).
const PATIENCE: Duration = Duration::from_secs(30);

struct Cluster {
    net: Arc<MemNet>,
    fs: MemFs,
    nodes: BTreeMap<NodeId, Arc<Quorum>>,
}

fn config(node_id: NodeId, cluster_id: &str) -> QuorumConfig {
    QuorumConfig {
        node_id,
        cluster_id: cluster_id.into(),
        voters: (1..=3)
            .map(|id| (id, Voter::new(format!("controller-{id}"), 9093)))
            .collect(),
        fetch_timeout_ms: FETCH_TIMEOUT_MS,
        election_backoff_max_ms: BACKOFF_MAX_MS,
        request_timeout_ms: 1_000,
    }
}

fn dir(id: NodeId) -> PathBuf {
    PathBuf::from(format!("/node-{id}/__cluster_metadata-0"))
}

impl Cluster {
    async fn start() -> Cluster {
        let mut cluster = Cluster {
            net: MemNet::new(),
            fs: MemFs::new(),
            nodes: BTreeMap::new(),
        };
        for id in 1..=3 {
            cluster.start_node(id, "cluster-a").await;
        }
        cluster
    }

    async fn start_node(&mut self, id: NodeId, cluster_id: &str) {
        let env = LogEnv::new(
            self.fs.shared(),
            Arc::new(ManualClock::new(1_700_000_000_000)),
        );
        let node = Quorum::start(
            &config(id, cluster_id),
            &dir(id),
            &env,
            self.net.transport(id),
        )
        .await
        .unwrap();
        self.net.register(id, node.server());
        self.nodes.insert(id, Arc::new(node));
    }

    async fn kill(&mut self, id: NodeId) {
        self.net.unregister(id);
        let node = self.nodes.remove(&id).unwrap();
        node.shutdown().await;
    }

    /// Waits until every running node names the same leader, other than `not`.
    async fn leader(&self, not: Option<NodeId>, within: Duration) -> NodeId {
        let deadline = tokio::time::Instant::now() + within;
        let mut agreed = None;
        for node in self.nodes.values() {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let status = node
                .wait_until(left, "a new leader", |s| {
                    s.leader.is_some() && s.leader != not
                })
                .await
                .unwrap();
            let leader = status.leader.unwrap();
            if agreed.is_some_and(|a| a != leader) {
                // A second election raced the first; wait for it to settle.
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                return Box::pin(self.leader(not, left)).await;
            }
            agreed = Some(leader);
        }
        let leader = agreed.unwrap();
        self.nodes[&leader]
            .wait_until(
                deadline.saturating_duration_since(tokio::time::Instant::now()),
                "leadership",
                |s| s.role == Role::Leader,
            )
            .await
            .unwrap();
        leader
    }

    /// Waits until every running node has applied `index`.
    async fn applied(&self, index: u64, within: Duration) {
        for node in self.nodes.values() {
            let mut images = node.images();
            tokio::time::timeout(within, images.wait_for(|i| i.offset >= index as i64))
                .await
                .unwrap_or_else(|_| panic!("node {} did not apply {index}", node.node_id()))
                .unwrap();
        }
    }

    /// Every running node's log from `from` to its end, as stored.
    fn logs(&self, from: u64) -> Vec<Vec<bytes::Bytes>> {
        self.nodes
            .values()
            .map(|n| {
                let (_, end) = n.log().offsets();
                n.log().read_batches(from, end as u64).unwrap()
            })
            .collect()
    }
}

fn config_record(i: usize) -> MetadataRecord {
    MetadataRecord::Config {
        resource: ConfigResource::BrokerDefault,
        name: format!("key.{i}"),
        value: Some(i.to_string()),
    }
}

/// Proposes `records` on `leader`, 50 at a time; the last offset.
async fn propose_all(leader: &Arc<Quorum>, records: Vec<MetadataRecord>) -> u64 {
    let mut last = 0;
    for chunk in records.chunks(50) {
        let mut tasks = tokio::task::JoinSet::new();
        for record in chunk.iter().cloned() {
            let leader = Arc::clone(leader);
            tasks.spawn(async move { leader.propose(record).await });
        }
        while let Some(done) = tasks.join_next().await {
            last = last.max(done.unwrap().unwrap());
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_elect_commit_a_thousand_records_and_fail_over() {
    let mut cluster = Cluster::start().await;
    let leader = cluster.leader(None, PATIENCE).await;

    let last = propose_all(
        &cluster.nodes[&leader],
        (0..1000).map(config_record).collect(),
    )
    .await;
    cluster.applied(last, PATIENCE).await;
    for node in cluster.nodes.values() {
        let image = node.images().borrow().image.clone();
        let defaults = &image.broker_configs[&ConfigResource::BrokerDefault];
        assert_eq!(defaults.len(), 1000, "node {}", node.node_id());
        assert_eq!(defaults["key.999"], "999");
    }
    // The voters' logs are the same bytes (what is committed is everywhere).
    let logs = cluster.logs(0);
    assert!(logs[0].len() > 1000);
    assert!(logs
        .iter()
        .all(|l| l[..=last as usize] == logs[0][..=last as usize]));

    // Kill the leader: another is elected within the election timeout plus a
    // second, and the two left commit.
    let killed_at = tokio::time::Instant::now();
    cluster.kill(leader).await;
    let next = cluster.leader(Some(leader), FAILOVER).await;
    assert_ne!(next, leader);
    assert!(killed_at.elapsed() <= FAILOVER);
    let index = cluster.nodes[&next]
        .propose(config_record(1000))
        .await
        .unwrap();
    cluster.applied(index, PATIENCE).await;
    let follower = cluster
        .nodes
        .keys()
        .copied()
        .find(|id| *id != next)
        .unwrap();
    let err = cluster.nodes[&follower]
        .propose(config_record(1001))
        .await
        .unwrap_err();
    assert_eq!(err, QuorumError::NotLeader { leader: Some(next) });

    // The killed node restarts from its log and catches up.
    cluster.start_node(leader, "cluster-a").await;
    cluster.applied(index, PATIENCE).await;
    let logs = cluster.logs(0);
    assert!(logs
        .iter()
        .all(|l| l[..=index as usize] == logs[0][..=index as usize]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leaders_uncommitted_tail_is_truncated_when_it_rejoins() {
    let cluster = Cluster::start().await;
    let old = cluster.leader(None, PATIENCE).await;
    let committed = propose_all(&cluster.nodes[&old], (0..10).map(config_record).collect()).await;
    cluster.applied(committed, PATIENCE).await;
    for id in 1..=3 {
        if id != old {
            cluster.net.set_link(old, id, Link::Drop);
            cluster.net.set_link(id, old, Link::Drop);
        }
    }
    // The isolated leader appends what it cannot commit.
    let stranded = {
        let node = Arc::clone(&cluster.nodes[&old]);
        tokio::spawn(async move { node.propose(config_record(500)).await })
    };
    cluster.nodes[&old]
        .wait_until(
            PATIENCE,
            "the stranded entry in the old leader's log",
            |s| s.last_log_index > Some(committed),
        )
        .await
        .unwrap();
    // The majority elects among itself and commits other records.
    let others: Vec<NodeId> = (1..=3).filter(|id| *id != old).collect();
    let majority = Cluster {
        net: Arc::clone(&cluster.net),
        fs: cluster.fs.clone(),
        nodes: others
            .iter()
            .map(|id| (*id, Arc::clone(&cluster.nodes[id])))
            .collect(),
    };
    let new = majority.leader(Some(old), PATIENCE).await;
    let index = propose_all(
        &cluster.nodes[&new],
        (600..605).map(config_record).collect(),
    )
    .await;
    majority.applied(index, PATIENCE).await;
    // Heal: the old leader steps down, drops its tail and follows.
    for id in others {
        cluster.net.set_link(old, id, Link::Pass);
        cluster.net.set_link(id, old, Link::Pass);
    }
    cluster.applied(index, PATIENCE).await;
    let logs = cluster.logs(0);
    assert!(logs
        .iter()
        .all(|l| l[..=index as usize] == logs[0][..=index as usize]));
    let image = cluster.nodes[&old].images().borrow().image.clone();
    let defaults = &image.broker_configs[&ConfigResource::BrokerDefault];
    assert!(
        !defaults.contains_key("key.500"),
        "the stranded record never applies"
    );
    assert!(defaults.contains_key("key.604"));
    // The stranded proposal fails (its leader lost the leadership).
    assert!(stranded.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_voter_behind_the_purged_log_gets_a_snapshot() {
    let cluster = Cluster::start().await;
    let leader = cluster.leader(None, PATIENCE).await;
    let behind = (1..=3).find(|id| *id != leader).unwrap();
    cluster.net.set_link(leader, behind, Link::Drop);
    cluster.net.set_link(behind, leader, Link::Drop);
    let last = propose_all(
        &cluster.nodes[&leader],
        (0..100).map(config_record).collect(),
    )
    .await;
    let node = &cluster.nodes[&leader];
    node.snapshot().await.unwrap();
    node.wait_until(PATIENCE, "the snapshot", |s| s.snapshot_index >= Some(last))
        .await
        .unwrap();
    assert!(cluster
        .fs
        .file_names(&dir(leader))
        .iter()
        .any(|n| n.ends_with(".checkpoint")));
    node.purge_log(last).await.unwrap();
    node.wait_until(PATIENCE, "the purge", |s| s.purged_index >= Some(last))
        .await
        .unwrap();
    assert_eq!(node.log().offsets().0, last as i64 + 1);
    // Heal: the lagging voter cannot be sent the purged entries, so it gets
    // the snapshot and starts its log after it.
    cluster.net.set_link(leader, behind, Link::Pass);
    cluster.net.set_link(behind, leader, Link::Pass);
    cluster.applied(last, PATIENCE).await;
    let image = cluster.nodes[&behind].images().borrow().image.clone();
    assert_eq!(
        image.broker_configs[&ConfigResource::BrokerDefault].len(),
        100
    );
    let (start, _) = cluster.nodes[&behind].log().offsets();
    assert!(
        start > 0,
        "the lagging voter's log starts after the snapshot ({start})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_from_another_cluster_is_refused() {
    let cluster = Cluster::start().await;
    cluster.leader(None, PATIENCE).await;
    let server = cluster.nodes[&1].server();
    let request = openraft::raft::VoteRequest {
        vote: openraft::Vote::new(1_000, 2),
        last_log_id: None,
    };
    let body = rpc::encode_vote_request("cluster-b", &request);
    let answer = server.handle(rpc::RAFT_VOTE, &body).await.unwrap();
    let (code, resp) = rpc::decode_vote_response(&answer).unwrap();
    assert_eq!(code, rpc::INCONSISTENT_CLUSTER_ID);
    assert!(!resp.vote_granted);
    // The vote did not move this node to the other cluster's term.
    assert!(cluster.nodes[&1].status().term < 1_000);
    // Garbage is an error, never a panic.
    assert!(server
        .handle(rpc::RAFT_VOTE, &bytes::Bytes::from_static(&[0xff; 3]))
        .await
        .is_err());
    assert!(server
        .handle(rpc::RAFT_APPEND_ENTRIES, &body)
        .await
        .is_err());
    assert!(server.handle(12_345, &body).await.is_err());
}
