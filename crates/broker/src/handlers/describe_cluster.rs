//! DescribeCluster (key 60): the cluster id, the controller and the brokers.

use bytes::Bytes;
use protocol::kafka::messages::describe_cluster_response::DescribeClusterBroker;
use protocol::kafka::messages::{
    ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse,
};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};

pub const API: ApiSpec = ApiSpec::new(ApiKey::DescribeCluster, 0, 2);

const ENDPOINT_BROKERS: i8 = 1;
/// No authorizer: every operation Kafka defines on the cluster resource is allowed
/// (`AclEntry.supportedOperations(CLUSTER)`: CREATE 5, ALTER 7, DESCRIBE 8,
/// CLUSTER_ACTION 9, DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12).
pub const CLUSTER_OPERATIONS: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeClusterRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    if ctx.api_version >= 1 && request.endpoint_type != ENDPOINT_BROKERS {
        let response = DescribeClusterResponse::default()
            .with_error_code(ErrorCode::UnsupportedEndpointType.code())
            .with_error_message(Some(StrBytes::from_static_str(
                "Only broker endpoints can be described on this listener.",
            )))
            .with_endpoint_type(request.endpoint_type);
        return ctx.respond(&response);
    }
    let image = ctx.broker.metadata.image();
    let brokers = image
        .brokers
        .values()
        .filter_map(|b| {
            let endpoint = b.endpoints.first()?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.node_id))
                    .with_host(StrBytes::from_string(endpoint.host.clone()))
                    .with_port(i32::from(endpoint.port))
                    .with_rack(b.rack.clone().map(StrBytes::from_string))
                    .with_is_fenced(false),
            )
        })
        .collect();
    let operations = if request.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
    } else {
        i32::MIN
    };
    ctx.respond(
        &DescribeClusterResponse::default()
            .with_error_code(0)
            .with_endpoint_type(ENDPOINT_BROKERS)
            .with_cluster_id(StrBytes::from_string(ctx.broker.cluster_id.clone()))
            .with_controller_id(BrokerId(ctx.broker.node_id()))
            .with_brokers(brokers)
            .with_cluster_authorized_operations(operations),
    )
}
