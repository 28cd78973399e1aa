//! ApiVersions (key 18): which APIs and versions this broker serves.
//!
//! Built from the handler registry. KIP-511: a version newer than we know is
//! answered with a v0 body, UNSUPPORTED_VERSION and our ApiVersions range, so the
//! client can retry with a version we speak. v3+ requests name the client software;
//! names outside Kafka's pattern get INVALID_REQUEST. v3+ responses carry the
//! supported and finalized features (`metadata.version`), as a KRaft broker does.

use bytes::Bytes;
use protocol::kafka::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use protocol::kafka::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{spec_for, ApiSpec, Reply, RequestContext, APIS};

pub const API: ApiSpec = ApiSpec::new(ApiKey::ApiVersions, 0, 4);

/// `metadata.version` levels: 7 (3.3-IV3) is the oldest KRaft level Kafka 4
/// supports; 27 is 4.1-IV1, the level whose API versions we advertise.
const METADATA_VERSION_MIN: i16 = 7;
const METADATA_VERSION: i16 = 27;

fn api_entries(legacy_enabled: bool) -> Vec<ApiVersion> {
    APIS.iter()
        .map(|spec| {
            ApiVersion::default()
                .with_api_key(spec.key as i16)
                .with_min_version(spec.advertised_min(legacy_enabled))
                .with_max_version(spec.max)
        })
        .collect()
}

/// The KIP-511 answer to a too-new ApiVersions request.
pub fn unsupported_version(ctx: &RequestContext) -> Reply {
    let spec = spec_for(ApiKey::ApiVersions).expect("ApiVersions is registered");
    let body = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UnsupportedVersion.code())
        .with_api_keys(vec![ApiVersion::default()
            .with_api_key(ApiKey::ApiVersions as i16)
            .with_min_version(spec.min)
            .with_max_version(spec.max)]);
    match protocol::frame::encode_response(ApiKey::ApiVersions, 0, ctx.correlation_id, &body) {
        Ok(frame) => Reply::Frame(frame),
        Err(e) => Reply::Close(e.to_string()),
    }
}

/// Kafka's pattern for client software names and versions.
fn valid_software_field(value: &str) -> bool {
    let bytes = value.as_bytes();
    let edge_ok = |b: u8| b.is_ascii_alphanumeric();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) => {
            edge_ok(first)
                && edge_ok(last)
                && bytes
                    .iter()
                    .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }
        _ => false,
    }
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: ApiVersionsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    if ctx.api_version >= 3
        && (!valid_software_field(&request.client_software_name)
            || !valid_software_field(&request.client_software_version))
    {
        return ctx.respond(
            &ApiVersionsResponse::default().with_error_code(ErrorCode::InvalidRequest.code()),
        );
    }
    let mut response = ApiVersionsResponse::default()
        .with_api_keys(api_entries(ctx.broker.config.legacy_api_versions_enable));
    if ctx.api_version >= 3 {
        response.supported_features = vec![SupportedFeatureKey::default()
            .with_name(StrBytes::from_static_str("metadata.version"))
            .with_min_version(METADATA_VERSION_MIN)
            .with_max_version(METADATA_VERSION)];
        response.finalized_features_epoch = ctx.broker.metadata.image().last_offset.max(0);
        response.finalized_features = vec![FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str("metadata.version"))
            .with_max_version_level(METADATA_VERSION)
            .with_min_version_level(METADATA_VERSION)];
    }
    ctx.respond(&response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn software_names_follow_kafkas_pattern() {
        assert!(valid_software_field("librdkafka"));
        assert!(valid_software_field("apache-kafka-java"));
        assert!(valid_software_field("2.12.1"));
        assert!(!valid_software_field(""));
        assert!(!valid_software_field("-x"));
        assert!(!valid_software_field("x."));
        assert!(!valid_software_field("has space"));
    }

    #[test]
    fn the_registry_is_advertised_with_produce_from_zero() {
        let entries = api_entries(false);
        let produce = entries.iter().find(|e| e.api_key == 0).unwrap();
        assert_eq!((produce.min_version, produce.max_version), (0, 13));
        let keys: Vec<i16> = entries.iter().map(|e| e.api_key).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "advertised in key order");
    }

    /// Kafka 3.9's floors with `legacy.api.versions.enable` (the default), Kafka
    /// 4.1's without (KIP-896).
    #[test]
    fn the_floors_follow_the_legacy_setting() {
        let floors = |legacy: bool| -> Vec<(i16, i16)> {
            api_entries(legacy)
                .iter()
                .filter(|e| [1, 2, 8, 9, 19, 20, 32, 35].contains(&e.api_key))
                .map(|e| (e.api_key, e.min_version))
                .collect()
        };
        assert_eq!(
            floors(true),
            vec![
                (1, 0),
                (2, 0),
                (8, 0),
                (9, 0),
                (19, 0),
                (20, 0),
                (32, 0),
                (35, 0)
            ]
        );
        assert_eq!(
            floors(false),
            vec![
                (1, 4),
                (2, 1),
                (8, 2),
                (9, 1),
                (19, 2),
                (20, 1),
                (32, 1),
                (35, 1)
            ]
        );
    }
}
