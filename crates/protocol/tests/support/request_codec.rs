//! Decode-and-round-trip checks over every request type the vendored codec knows.
//!
//! Shared by `tests/decoder_fuzz.rs` (stable, runs in `cargo test`) and the
//! cargo-fuzz target `fuzz/fuzz_targets/request_decoder.rs` (included there with
//! `#[path]`), so both exercise exactly the same paths.
//!
//! The property: bytes either fail to decode (an `Err`, never a panic, abort or
//! huge allocation), or what decoded re-encodes to bytes that decode to the same
//! message, and re-encoding that gives the same bytes again.

#![allow(dead_code)]

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use protocol::frame::{self, FrameError};
use protocol::kafka::messages::*;
use protocol::kafka::protocol::{Decodable, Encodable, Message, Request, VersionRange};

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// The frame header did not parse (too short, unknown key, bad header).
    HeaderRejected,
    /// The header parsed; the body did not decode at that version.
    BodyRejected,
    /// Header and body decoded, and both round-tripped exactly.
    RoundTripped,
}

fn encode_message<M: Encodable>(message: &M, version: i16, what: &str) -> Result<BytesMut, String> {
    let size = message
        .compute_size(version)
        .map_err(|e| format!("{what}: compute_size failed after a successful decode: {e}"))?;
    let mut out = BytesMut::with_capacity(size);
    message
        .encode(&mut out, version)
        .map_err(|e| format!("{what}: encode failed after a successful decode: {e}"))?;
    if out.len() != size {
        return Err(format!(
            "{what}: compute_size said {size} bytes, encode wrote {}",
            out.len()
        ));
    }
    Ok(out)
}

/// Equal, or (for messages holding a NaN f64) equal when printed.
fn same<M: PartialEq + Debug>(a: &M, b: &M) -> bool {
    a == b || format!("{a:?}") == format!("{b:?}")
}

/// Encode `first` (decoded from the wire), decode the result, and check both agree.
fn round_trip_decoded<M: Encodable + Decodable + PartialEq + Debug>(
    first: &M,
    version: i16,
    what: &str,
) -> Result<(), String> {
    let encoded = encode_message(first, version, what)?;
    let mut again = encoded.clone().freeze();
    let second = M::decode(&mut again, version).map_err(|e| format!("{what}: re-encoded bytes do not decode: {e}\n  first: {first:?}\n  bytes: {encoded:02x?}"))?;
    if !again.is_empty() {
        return Err(format!(
            "{what}: {} bytes left over after decoding the re-encoded message",
            again.len()
        ));
    }
    if !same(first, &second) {
        return Err(format!(
            "{what}: round trip changed the message\n  first:  {first:?}\n  second: {second:?}"
        ));
    }
    let encoded_again = encode_message(&second, version, what)?;
    if encoded_again != encoded {
        return Err(format!(
            "{what}: re-encoding is not stable\n  {encoded:02x?}\n  {encoded_again:02x?}"
        ));
    }
    Ok(())
}

fn body_round_trip<R: Request + PartialEq + Debug>(
    version: i16,
    mut body: Bytes,
) -> Result<Checked, String> {
    let Ok(first) = R::decode(&mut body, version) else {
        return Ok(Checked::BodyRejected);
    };
    round_trip_decoded(&first, version, std::any::type_name::<R>())?;
    Ok(Checked::RoundTripped)
}

fn encode_default<R: Request + Default>(version: i16) -> Result<Bytes, String> {
    encode_message(&R::default(), version, std::any::type_name::<R>()).map(BytesMut::freeze)
}

macro_rules! all_requests {
    ($($ty:ident),* $(,)?) => {
        /// Every API key with a request type in the vendored crate.
        pub const KEYS: &[i16] = &[$(<$ty as Request>::KEY),*];

        /// Decodes `body` as the request of `api_key` at `version` and, if it
        /// decodes, checks the round trip. `None` for a key no request type has.
        pub fn check_body(api_key: i16, version: i16, body: Bytes) -> Option<Result<Checked, String>> {
            $(
                if api_key == <$ty as Request>::KEY {
                    return Some(body_round_trip::<$ty>(version, body));
                }
            )*
            None
        }

        /// The versions the vendored crate knows for `api_key`'s request.
        pub fn versions(api_key: i16) -> Option<VersionRange> {
            $(
                if api_key == <$ty as Request>::KEY {
                    return Some(<$ty as Message>::VERSIONS);
                }
            )*
            None
        }

        /// The default request of `api_key` encoded at `version`: a valid body.
        pub fn default_body(api_key: i16, version: i16) -> Option<Result<Bytes, String>> {
            $(
                if api_key == <$ty as Request>::KEY {
                    return Some(encode_default::<$ty>(version));
                }
            )*
            None
        }
    };
}

all_requests!(
    ProduceRequest,
    FetchRequest,
    ListOffsetsRequest,
    MetadataRequest,
    OffsetCommitRequest,
    OffsetFetchRequest,
    FindCoordinatorRequest,
    JoinGroupRequest,
    HeartbeatRequest,
    LeaveGroupRequest,
    SyncGroupRequest,
    DescribeGroupsRequest,
    ListGroupsRequest,
    SaslHandshakeRequest,
    ApiVersionsRequest,
    CreateTopicsRequest,
    DeleteTopicsRequest,
    DeleteRecordsRequest,
    InitProducerIdRequest,
    OffsetForLeaderEpochRequest,
    AddPartitionsToTxnRequest,
    AddOffsetsToTxnRequest,
    EndTxnRequest,
    WriteTxnMarkersRequest,
    TxnOffsetCommitRequest,
    DescribeAclsRequest,
    CreateAclsRequest,
    DeleteAclsRequest,
    DescribeConfigsRequest,
    AlterConfigsRequest,
    AlterReplicaLogDirsRequest,
    DescribeLogDirsRequest,
    SaslAuthenticateRequest,
    CreatePartitionsRequest,
    CreateDelegationTokenRequest,
    RenewDelegationTokenRequest,
    ExpireDelegationTokenRequest,
    DescribeDelegationTokenRequest,
    DeleteGroupsRequest,
    ElectLeadersRequest,
    IncrementalAlterConfigsRequest,
    AlterPartitionReassignmentsRequest,
    ListPartitionReassignmentsRequest,
    OffsetDeleteRequest,
    DescribeClientQuotasRequest,
    AlterClientQuotasRequest,
    DescribeUserScramCredentialsRequest,
    AlterUserScramCredentialsRequest,
    VoteRequest,
    BeginQuorumEpochRequest,
    EndQuorumEpochRequest,
    DescribeQuorumRequest,
    AlterPartitionRequest,
    UpdateFeaturesRequest,
    EnvelopeRequest,
    FetchSnapshotRequest,
    DescribeClusterRequest,
    DescribeProducersRequest,
    BrokerRegistrationRequest,
    BrokerHeartbeatRequest,
    UnregisterBrokerRequest,
    DescribeTransactionsRequest,
    ListTransactionsRequest,
    AllocateProducerIdsRequest,
    ConsumerGroupHeartbeatRequest,
    ConsumerGroupDescribeRequest,
    ControllerRegistrationRequest,
    GetTelemetrySubscriptionsRequest,
    PushTelemetryRequest,
    AssignReplicasToDirsRequest,
    ListConfigResourcesRequest,
    DescribeTopicPartitionsRequest,
    ShareGroupHeartbeatRequest,
    ShareGroupDescribeRequest,
    ShareFetchRequest,
    ShareAcknowledgeRequest,
    AddRaftVoterRequest,
    RemoveRaftVoterRequest,
    UpdateRaftVoterRequest,
    InitializeShareGroupStateRequest,
    ReadShareGroupStateRequest,
    WriteShareGroupStateRequest,
    DeleteShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest,
    DescribeShareGroupOffsetsRequest,
    AlterShareGroupOffsetsRequest,
    DeleteShareGroupOffsetsRequest,
);

/// One request frame without its size prefix, as the broker's reader hands it
/// over: `parse_request`, then the header and the body round trips.
pub fn check_frame(frame: Bytes) -> Result<Checked, String> {
    let request = match frame::parse_request(frame) {
        Ok(request) => request,
        Err(
            FrameError::TooShort(_)
            | FrameError::UnknownApiKey { .. }
            | FrameError::MalformedHeader { .. },
        ) => {
            return Ok(Checked::HeaderRejected);
        }
    };
    let key = request.api_key as i16;
    let version = request.api_version();
    if request.header.request_api_key != key || request.header.request_api_version != version {
        return Err(format!(
            "header decoded as key {} v{}, the frame says {key} v{version}",
            request.header.request_api_key, request.header.request_api_version
        ));
    }
    let header_version = request.api_key.request_header_version(version);
    round_trip_decoded(&request.header, header_version, "RequestHeader")?;
    match check_body(key, version, request.body) {
        Some(result) => result,
        None => Err(format!(
            "parse_request accepted api key {key}, which has no request type"
        )),
    }
}

/// What the fuzz target does with one input: [`check_frame`], then the body (the
/// bytes after the fixed 8-byte prefix) under every version of the frame's key, so
/// a body written for one version is read as every other.
pub fn check_input(data: &[u8]) -> Result<(), String> {
    check_frame(Bytes::copy_from_slice(data))?;
    if data.len() >= 8 {
        let key = i16::from_be_bytes([data[0], data[1]]);
        if let Some(range) = versions(key) {
            let body = Bytes::copy_from_slice(&data[8..]);
            for version in range.min..=range.max {
                if let Some(Err(failure)) = check_body(key, version, body.clone()) {
                    return Err(format!("v{version} body: {failure}"));
                }
            }
        }
    }
    Ok(())
}

/// A whole request frame (header and body, no size prefix) for `api_key` at
/// `version` with a default body, or `None` where the default does not encode.
pub fn default_frame(api_key: i16, version: i16, correlation_id: i32) -> Option<Bytes> {
    let body = default_body(api_key, version)?.ok()?;
    let key = ApiKey::try_from(api_key).ok()?;
    let header = RequestHeader::default()
        .with_request_api_key(api_key)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(protocol::kafka::protocol::StrBytes::from_static_str(
            "fuzz",
        )));
    let header_version = key.request_header_version(version);
    let mut out = BytesMut::new();
    header.encode(&mut out, header_version).ok()?;
    out.extend_from_slice(&body);
    Some(out.freeze())
}
