//! The request versions Kafka 4 removed (KIP-896) and Kafka 3.9 served.
//!
//! The current codec (`kafka_protocol::messages`, from Kafka 4.1's JSON) no longer
//! describes them; `kafka_protocol::legacy_messages` does (generated from Kafka 3.9's
//! JSON). A request below a handler's floor is decoded with the 3.9 type, encoded
//! again at the floor (the "bridge" version, which both describe), and handled there
//! by the handler like any other; its answer is decoded with the 3.9 type at the
//! bridge version and encoded at the client's version. So the handlers see current
//! requests only, and current clients pay nothing for this.
//!
//! What the bridge cannot carry is done here, per API:
//! - Produce v0-2: message sets (magic 0/1) become one v2 batch per partition;
//!   a set that does not convert fails its partition with CORRUPT_MESSAGE.
//! - Fetch v0-3: v2 batches become messages of magic 0 (v0-1) or 1 (v2-3),
//!   bounded by the partition's max bytes; zstd data is UNSUPPORTED_COMPRESSION_TYPE.
//! - ListOffsets v0: the one offset found becomes the `old_style_offsets` list
//!   (empty when none, or when `max_num_offsets` is 0). Kafka 3.9 listed segment
//!   base offsets for a timestamp; we answer the v1 lookup's offset.
//! - OffsetCommit v0 / OffsetFetch v0: Kafka 3.9 kept these offsets in ZooKeeper (and
//!   refused them in KRaft mode); with no ZooKeeper, they use the group's offsets,
//!   like v1+. The v1 commit timestamp is not kept (Kafka 3.9 ignored it as well
//!   unless it expired offsets by it).
//! - DescribeConfigs v0: `is_default` is a config whose source is the default.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use protocol::frame;
use protocol::kafka::legacy_messages as old;
use protocol::kafka::messages::ApiKey;
use protocol::kafka::protocol::{Decodable, Encodable, StrBytes};
use protocol::records::message_set::{self, MessageSetError};
use protocol::records::DecompressionBudget;
use protocol::ErrorCode;

use super::{route, Reply, RequestContext};
use crate::runtime::blocking;

/// The most bytes one request's conversion may decompress to, all its partitions
/// together (64 MiB, what `validate::max_decompressed_bytes` allows one batch at
/// the default `max.message.bytes`): on produce, what the wrappers of every
/// partition's message set decompress to; on fetch, what the batches decompress
/// to plus the messages written. Per request, not per partition: a request of
/// many partitions, each just under a per-partition bound, would cost their sum.
const MAX_DECOMPRESSED_BYTES: usize = 64 << 20;

/// What the request's conversion leaves for the response's.
#[derive(Default)]
struct Carried {
    /// Produce: partitions whose message set did not convert, removed from the
    /// bridged request, with their error.
    failed: Vec<(String, i32, ErrorCode, String)>,
    /// Fetch: each partition's max bytes and fetch offset; ListOffsets: each
    /// partition's max offsets.
    per_partition: HashMap<(String, i32), (i32, i64)>,
}

/// Serves `ctx.api_version`, below `bridge` (the handler's lowest version).
pub async fn handle(ctx: &RequestContext, bridge: i16, body: Bytes) -> Reply {
    let version = ctx.api_version;
    // Produce and Fetch convert message sets, decompressing up to
    // MAX_DECOMPRESSED_BYTES a request: off the runtime workers, as produce.rs
    // keeps compressed batches off them.
    let off_workers = matches!(ctx.api_key, ApiKey::Produce | ApiKey::Fetch);
    let api_key = ctx.api_key;
    let convert_request = move || {
        let mut carried = Carried::default();
        let bridged = bridge_request(api_key, version, bridge, body, &mut carried);
        (bridged, carried)
    };
    let (bridged, carried) = if off_workers {
        blocking(convert_request).await
    } else {
        convert_request()
    };
    let bridged = match bridged {
        Ok(bridged) => bridged,
        Err(reason) => {
            tracing::debug!(api = ?ctx.api_key, version, peer = %ctx.peer, %reason, "malformed legacy request");
            return Reply::Close(format!(
                "malformed {:?} v{version} request: {reason}",
                ctx.api_key
            ));
        }
    };
    let bridged_ctx = RequestContext {
        api_version: bridge,
        ..ctx.clone()
    };
    let mut reply = route(&bridged_ctx, bridged).await;
    // The conversion needs the answer: old clients' produces do not overlap.
    while let Reply::Later(later) = reply {
        reply = later.resolve().await;
    }
    let frame = match reply {
        Reply::Frame(frame) => frame.freeze(),
        Reply::Chunks(chunks) => {
            let mut frame = BytesMut::with_capacity(chunks.iter().map(Bytes::len).sum());
            for chunk in chunks {
                frame.extend_from_slice(&chunk);
            }
            frame.freeze()
        }
        other => return other,
    };
    let answer = frame.slice(frame::SIZE_PREFIX_LEN..);
    let answered = if off_workers {
        let ctx = ctx.clone();
        blocking(move || bridge_response(&ctx, bridge, answer, carried)).await
    } else {
        bridge_response(ctx, bridge, answer, carried)
    };
    match answered {
        Ok(reply) => reply,
        Err(reason) => {
            tracing::error!(api = ?ctx.api_key, version, %reason, "cannot answer a legacy request");
            Reply::Close(reason)
        }
    }
}

/// Decodes `body` as `L` at `version`, lets `fix` adjust it, encodes it at `bridge`.
fn rewrite<L: Decodable + Encodable>(
    mut body: Bytes,
    version: i16,
    bridge: i16,
    fix: impl FnOnce(&mut L),
) -> Result<Bytes, String> {
    let mut request = L::decode(&mut body, version).map_err(|e| e.to_string())?;
    if !body.is_empty() {
        return Err(format!("{} bytes after the request", body.len()));
    }
    fix(&mut request);
    let mut out = BytesMut::new();
    request
        .encode(&mut out, bridge)
        .map_err(|e| e.to_string())?;
    Ok(out.freeze())
}

fn bridge_request(
    api_key: ApiKey,
    version: i16,
    bridge: i16,
    body: Bytes,
    carried: &mut Carried,
) -> Result<Bytes, String> {
    match api_key {
        ApiKey::Produce => rewrite(body, version, bridge, |r: &mut old::ProduceRequest| {
            convert_produce(r, carried)
        }),
        ApiKey::Fetch => rewrite(body, version, bridge, |r: &mut old::FetchRequest| {
            for topic in &r.topics {
                for p in &topic.partitions {
                    carried.per_partition.insert(
                        (topic.topic.to_string(), p.partition),
                        (p.partition_max_bytes, p.fetch_offset),
                    );
                }
            }
        }),
        ApiKey::ListOffsets => rewrite(body, version, bridge, |r: &mut old::ListOffsetsRequest| {
            for topic in &r.topics {
                for p in &topic.partitions {
                    carried.per_partition.insert(
                        (topic.name.to_string(), p.partition_index),
                        (p.max_num_offsets, 0),
                    );
                }
            }
        }),
        ApiKey::OffsetCommit => {
            rewrite(body, version, bridge, |_: &mut old::OffsetCommitRequest| {})
        }
        ApiKey::OffsetFetch => rewrite(body, version, bridge, |_: &mut old::OffsetFetchRequest| {}),
        ApiKey::CreateTopics => {
            rewrite(body, version, bridge, |_: &mut old::CreateTopicsRequest| {})
        }
        ApiKey::DeleteTopics => {
            rewrite(body, version, bridge, |_: &mut old::DeleteTopicsRequest| {})
        }
        ApiKey::DescribeConfigs => rewrite(
            body,
            version,
            bridge,
            |_: &mut old::DescribeConfigsRequest| {},
        ),
        ApiKey::DescribeLogDirs => rewrite(
            body,
            version,
            bridge,
            |_: &mut old::DescribeLogDirsRequest| {},
        ),
        ApiKey::WriteTxnMarkers => rewrite(
            body,
            version,
            bridge,
            |_: &mut old::WriteTxnMarkersRequest| {},
        ),
        other => Err(format!("{other:?} has no legacy versions")),
    }
}

/// Replaces each partition's message set with a v2 batch; a partition whose set
/// does not convert leaves the request and fails with CORRUPT_MESSAGE, or with
/// MESSAGE_TOO_LARGE once the request's wrappers decompress to more than
/// [`MAX_DECOMPRESSED_BYTES`] together (that partition and every later one with
/// compressed messages: Kafka's answer to a batch too large after conversion).
fn convert_produce(request: &mut old::ProduceRequest, carried: &mut Carried) {
    let mut budget = DecompressionBudget::new(MAX_DECOMPRESSED_BYTES);
    for topic in &mut request.topic_data {
        let name = topic.name.to_string();
        topic.partition_data.retain_mut(|p| {
            let Some(records) = p.records.as_ref() else {
                return true; // null records: the handler's INVALID_RECORD
            };
            if !message_set::is_message_set(records) {
                return true; // a v2 batch: the handler validates it
            }
            match message_set::to_batch(records, &mut budget) {
                Ok(batch) => {
                    p.records = Some(Bytes::from(batch));
                    true
                }
                Err(e) => {
                    let code = match e {
                        MessageSetError::DecompressedTooLarge { .. } => ErrorCode::MessageTooLarge,
                        _ => ErrorCode::CorruptMessage,
                    };
                    carried
                        .failed
                        .push((name.clone(), p.index, code, e.to_string()));
                    false
                }
            }
        });
    }
}

/// Decodes the bridged answer `frame` (header and body, no size prefix) as `L`,
/// lets `fix` adjust it, and encodes it at the client's version.
fn answer<L: Decodable + Encodable>(
    ctx: &RequestContext,
    bridge: i16,
    frame: Bytes,
    fix: impl FnOnce(&mut L),
) -> Result<Reply, String> {
    let (_, mut response) = frame::decode_response::<L>(ctx.api_key, bridge, frame)?;
    fix(&mut response);
    frame::encode_response(ctx.api_key, ctx.api_version, ctx.correlation_id, &response)
        .map(Reply::Frame)
        .map_err(|e| e.reason)
}

fn bridge_response(
    ctx: &RequestContext,
    bridge: i16,
    frame: Bytes,
    carried: Carried,
) -> Result<Reply, String> {
    let version = ctx.api_version;
    match ctx.api_key {
        ApiKey::Produce => answer(ctx, bridge, frame, |r: &mut old::ProduceResponse| {
            add_failed_partitions(r, carried.failed)
        }),
        ApiKey::Fetch => answer(ctx, bridge, frame, |r: &mut old::FetchResponse| {
            down_convert_fetch(r, version, &carried)
        }),
        ApiKey::ListOffsets => answer(ctx, bridge, frame, |r: &mut old::ListOffsetsResponse| {
            for topic in &mut r.topics {
                for p in &mut topic.partitions {
                    let max = carried
                        .per_partition
                        .get(&(topic.name.to_string(), p.partition_index))
                        .map_or(1, |&(max, _)| max);
                    p.old_style_offsets = if p.error_code == 0 && p.offset >= 0 && max > 0 {
                        vec![p.offset]
                    } else {
                        Vec::new()
                    };
                }
            }
        }),
        ApiKey::OffsetCommit => answer(ctx, bridge, frame, |_: &mut old::OffsetCommitResponse| {}),
        ApiKey::OffsetFetch => answer(ctx, bridge, frame, |_: &mut old::OffsetFetchResponse| {}),
        ApiKey::CreateTopics => answer(ctx, bridge, frame, |_: &mut old::CreateTopicsResponse| {}),
        ApiKey::DeleteTopics => answer(ctx, bridge, frame, |_: &mut old::DeleteTopicsResponse| {}),
        ApiKey::DescribeConfigs => answer(
            ctx,
            bridge,
            frame,
            |r: &mut old::DescribeConfigsResponse| {
                for result in &mut r.results {
                    for config in &mut result.configs {
                        config.is_default = config.config_source == CONFIG_SOURCE_DEFAULT;
                    }
                }
            },
        ),
        ApiKey::DescribeLogDirs => answer(
            ctx,
            bridge,
            frame,
            |_: &mut old::DescribeLogDirsResponse| {},
        ),
        ApiKey::WriteTxnMarkers => answer(
            ctx,
            bridge,
            frame,
            |_: &mut old::WriteTxnMarkersResponse| {},
        ),
        other => Err(format!("{other:?} has no legacy versions")),
    }
}

/// `DEFAULT_CONFIG` in DescribeConfigs' config sources.
const CONFIG_SOURCE_DEFAULT: i8 = 5;

fn add_failed_partitions(
    response: &mut old::ProduceResponse,
    failed: Vec<(String, i32, ErrorCode, String)>,
) {
    use old::produce_response::{PartitionProduceResponse, TopicProduceResponse};
    for (topic, index, code, message) in failed {
        tracing::debug!(%topic, partition = index, %message, "legacy produce refused");
        let partition = PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(code.code())
            .with_base_offset(-1);
        match response
            .responses
            .iter_mut()
            .find(|t| t.name.as_str() == topic)
        {
            Some(t) => t.partition_responses.push(partition),
            None => response.responses.push(
                TopicProduceResponse::default()
                    .with_name(StrBytes::from_string(topic).into())
                    .with_partition_responses(vec![partition]),
            ),
        }
    }
}

/// Rewrites each partition's v2 batches as messages of the client's format,
/// within one budget for the whole response: once it is spent, the partitions
/// after are answered without records, as when a fetch reaches its max bytes.
fn down_convert_fetch(response: &mut old::FetchResponse, version: i16, carried: &Carried) {
    let magic = if version >= 2 { 1 } else { 0 };
    let mut budget = DecompressionBudget::new(MAX_DECOMPRESSED_BYTES);
    for topic in &mut response.responses {
        let name = topic.topic.to_string();
        for p in &mut topic.partitions {
            let Some(records) = p.records.as_ref().filter(|r| !r.is_empty()) else {
                continue;
            };
            let (max_bytes, first_offset) = carried
                .per_partition
                .get(&(name.clone(), p.partition_index))
                .map_or((usize::MAX, 0), |&(max, offset)| {
                    (usize::try_from(max).unwrap_or(0), offset)
                });
            let converted =
                message_set::down_convert(records, magic, first_offset, max_bytes, &mut budget);
            match converted {
                Ok(set) => p.records = Some(Bytes::from(set)),
                Err(e) => {
                    tracing::debug!(topic = %name, partition = p.partition_index, error = %e, "down-conversion failed");
                    p.error_code = match e {
                        MessageSetError::UnsupportedCompression(_) => {
                            ErrorCode::UnsupportedCompressionType.code()
                        }
                        _ => ErrorCode::CorruptMessage.code(),
                    };
                    p.records = Some(Bytes::new());
                }
            }
        }
    }
}
