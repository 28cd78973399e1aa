//! AlterConfigs (key 33): replaces a resource's whole set of config overrides.

use std::collections::BTreeMap;

use bytes::Bytes;
use metadata::{ConfigResource, ControllerError};
use protocol::kafka::messages::alter_configs_response::AlterConfigsResourceResponse;
use protocol::kafka::messages::{AlterConfigsRequest, AlterConfigsResponse, ApiKey};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};
use crate::configs::resource_type;
use crate::errors::controller_error;

pub const API: ApiSpec = ApiSpec::new(ApiKey::AlterConfigs, 0, 2);

/// The resource a (type, name) pair names, or why it does not.
pub fn resource_of(
    ctx: &RequestContext,
    kind: i8,
    name: &str,
) -> Result<ConfigResource, ControllerError> {
    match kind {
        resource_type::TOPIC => {
            super::guards::refuse_internal(&ctx.broker, name, "Altering the configs of")?;
            Ok(ConfigResource::Topic(name.to_string()))
        }
        resource_type::BROKER if name.is_empty() => Ok(ConfigResource::BrokerDefault),
        resource_type::BROKER => match name.parse::<i32>() {
            Ok(id) if ctx.broker.metadata.image().brokers.contains_key(&id) => {
                Ok(ConfigResource::Broker(id))
            }
            _ => Err(ControllerError::UnknownBroker(name.to_string())),
        },
        other => Err(ControllerError::UnsupportedResourceType(other)),
    }
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: AlterConfigsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let outcome = async {
            let target = resource_of(ctx, resource.resource_type, &resource.resource_name)?;
            let mut wanted = BTreeMap::new();
            for config in &resource.configs {
                if resource.resource_type == resource_type::TOPIC
                    && super::guards::is_removed_topic_config(
                        &resource.resource_name,
                        config.name.as_str(),
                    )
                {
                    continue;
                }
                let Some(value) = &config.value else {
                    return Err(ControllerError::NullAlterValue(config.name.to_string()));
                };
                wanted.insert(config.name.to_string(), value.to_string());
            }
            ctx.broker
                .controller
                .alter_configs(target, wanted, request.validate_only)
                .await
        }
        .await;
        let (code, message) = match outcome.map_err(|e| controller_error(&e)) {
            Ok(()) => (ErrorCode::None, None),
            Err((code, message)) => (code, Some(StrBytes::from_string(message))),
        };
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code.code())
                .with_error_message(message)
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone()),
        );
    }
    ctx.respond(&AlterConfigsResponse::default().with_responses(responses))
}
