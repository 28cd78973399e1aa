//! Kafka framing: every request and response is `[i32 size][size bytes]`.
//!
//! ```text
//! request:  api_key i16, api_version i16, correlation_id i32,
//!           client_id nullable string (header v1+), tagged fields (header v2), body
//! response: correlation_id i32, tagged fields (header v1), body
//! ```
//!
//! The header version follows from the API and its version (flexible versions use
//! header v2 / v1). ApiVersions answers always use response header v0, so a client
//! can read the answer before it knows what the broker speaks.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

/// Bytes of the size prefix.
pub const SIZE_PREFIX_LEN: usize = 4;

/// A request frame with its header decoded and its body still bytes.
#[derive(Debug, Clone)]
pub struct RequestFrame {
    pub api_key: ApiKey,
    pub header: RequestHeader,
    /// The request body, after the header.
    pub body: Bytes,
}

impl RequestFrame {
    pub fn api_version(&self) -> i16 {
        self.header.request_api_version
    }

    pub fn correlation_id(&self) -> i32 {
        self.header.correlation_id
    }
}

/// Why a frame could not be turned into a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {0} bytes is too short for a request header")]
    TooShort(usize),
    #[error("unknown api key {api_key} (correlation id {correlation_id})")]
    UnknownApiKey { api_key: i16, correlation_id: i32 },
    #[error("malformed request header for {api_key:?} v{api_version}: {reason}")]
    MalformedHeader {
        api_key: ApiKey,
        api_version: i16,
        reason: String,
    },
}

/// The fixed first 8 bytes of every request header.
pub fn peek_request_ids(frame: &[u8]) -> Result<(i16, i16, i32), FrameError> {
    if frame.len() < 8 {
        return Err(FrameError::TooShort(frame.len()));
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let api_version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    Ok((api_key, api_version, correlation_id))
}

/// Decodes the request header of `frame` (a frame without its size prefix).
pub fn parse_request(mut frame: Bytes) -> Result<RequestFrame, FrameError> {
    let (key, api_version, correlation_id) = peek_request_ids(&frame)?;
    let api_key = ApiKey::try_from(key).map_err(|_| FrameError::UnknownApiKey {
        api_key: key,
        correlation_id,
    })?;
    let header_version = api_key.request_header_version(api_version);
    let header = RequestHeader::decode(&mut frame, header_version).map_err(|e| {
        FrameError::MalformedHeader {
            api_key,
            api_version,
            reason: e.to_string(),
        }
    })?;
    Ok(RequestFrame {
        api_key,
        header,
        body: frame,
    })
}

/// Why a response could not be encoded (a bug or a version the message lacks).
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{api_version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub api_version: i16,
    pub reason: String,
}

/// Encodes a whole response frame, size prefix included.
pub fn encode_response<M: Encodable>(
    api_key: ApiKey,
    api_version: i16,
    correlation_id: i32,
    body: &M,
) -> Result<BytesMut, EncodeError> {
    let fail = |e: anyhow::Error| EncodeError {
        api_key,
        api_version,
        reason: e.to_string(),
    };
    let header_version = response_header_version(api_key, api_version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_size = header.compute_size(header_version).map_err(fail)?;
    let body_size = body.compute_size(api_version).map_err(fail)?;
    let size = header_size + body_size;
    let mut out = BytesMut::with_capacity(SIZE_PREFIX_LEN + size);
    out.put_i32(size as i32);
    header.encode(&mut out, header_version).map_err(fail)?;
    body.encode(&mut out, api_version).map_err(fail)?;
    debug_assert_eq!(out.len(), SIZE_PREFIX_LEN + size);
    Ok(out)
}

/// The response header version: v0 for ApiVersions whatever its version (KIP-511),
/// otherwise what the message spec says.
pub fn response_header_version(api_key: ApiKey, api_version: i16) -> i16 {
    if api_key == ApiKey::ApiVersions {
        0
    } else {
        api_key.response_header_version(api_version)
    }
}

/// Encodes a request frame, size prefix included (for clients and tests).
pub fn encode_request<M: Encodable>(
    header: &RequestHeader,
    body: &M,
) -> Result<BytesMut, EncodeError> {
    let api_key = ApiKey::try_from(header.request_api_key).map_err(|_| EncodeError {
        api_key: ApiKey::ApiVersions,
        api_version: header.request_api_version,
        reason: format!("unknown api key {}", header.request_api_key),
    })?;
    let api_version = header.request_api_version;
    let fail = |e: anyhow::Error| EncodeError {
        api_key,
        api_version,
        reason: e.to_string(),
    };
    let header_version = api_key.request_header_version(api_version);
    let size = header.compute_size(header_version).map_err(fail)?
        + body.compute_size(api_version).map_err(fail)?;
    let mut out = BytesMut::with_capacity(SIZE_PREFIX_LEN + size);
    out.put_i32(size as i32);
    header.encode(&mut out, header_version).map_err(fail)?;
    body.encode(&mut out, api_version).map_err(fail)?;
    Ok(out)
}

/// Decodes a response frame (without its size prefix): the correlation id and body.
pub fn decode_response<M: Decodable>(
    api_key: ApiKey,
    api_version: i16,
    mut frame: Bytes,
) -> Result<(i32, M), String> {
    let header_version = response_header_version(api_key, api_version);
    let header = ResponseHeader::decode(&mut frame, header_version).map_err(|e| e.to_string())?;
    let body = M::decode(&mut frame, api_version).map_err(|e| e.to_string())?;
    Ok((header.correlation_id, body))
}
