//! DescribeConfigs (key 32): configs of topics and brokers with their values,
//! sources, synonyms (v1+), types and documentation (v3+).

use bytes::Bytes;
use metadata::ControllerError;
use protocol::kafka::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use protocol::kafka::messages::{ApiKey, DescribeConfigsRequest, DescribeConfigsResponse};
use protocol::kafka::protocol::StrBytes;

use super::{ApiSpec, Reply, RequestContext};
use crate::configs::{describe_broker, describe_topic, resource_type, type_id, ConfigEntry};
use crate::errors::controller_error;

/// Kafka 3.9 served from v0: lower versions go through [`super::legacy`].
pub const API: ApiSpec = ApiSpec::new(ApiKey::DescribeConfigs, 1, 4).with_legacy_min(0);

fn entry(e: ConfigEntry, synonyms: bool, docs: bool) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(StrBytes::from_string(e.name))
        .with_value(e.value.map(StrBytes::from_string))
        .with_read_only(e.read_only)
        .with_config_source(e.source)
        .with_is_sensitive(false)
        .with_synonyms(if synonyms {
            e.synonyms
                .into_iter()
                .map(|(name, value, source)| {
                    DescribeConfigsSynonym::default()
                        .with_name(StrBytes::from_string(name))
                        .with_value(value.map(StrBytes::from_string))
                        .with_source(source)
                })
                .collect()
        } else {
            Vec::new()
        })
        .with_config_type(type_id(e.def.kind))
        .with_documentation(docs.then(|| StrBytes::from_static_str(e.def.doc)))
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: DescribeConfigsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let broker = &ctx.broker;
    let image = broker.metadata.image();
    let results = request
        .resources
        .iter()
        .map(|resource| {
            let keys: Option<Vec<String>> = resource
                .configuration_keys
                .as_ref()
                .map(|k| k.iter().map(|s| s.to_string()).collect());
            let base = DescribeConfigsResult::default()
                .with_resource_type(resource.resource_type)
                .with_resource_name(resource.resource_name.clone());
            let entries: Result<Vec<ConfigEntry>, ControllerError> = match resource.resource_type {
                resource_type::TOPIC => match image.topic(&resource.resource_name) {
                    Some(topic) => Ok(describe_topic(&broker.config, &image, topic)),
                    None => Err(ControllerError::NoSuchConfigTopic(
                        resource.resource_name.to_string(),
                    )),
                },
                resource_type::BROKER => {
                    let name = resource.resource_name.as_str();
                    if name.is_empty() {
                        Ok(describe_broker(&broker.config, &image, None))
                    } else if name.parse::<i32>().ok() == Some(broker.node_id()) {
                        Ok(describe_broker(
                            &broker.config,
                            &image,
                            Some(broker.node_id()),
                        ))
                    } else {
                        Err(ControllerError::NotThisBroker {
                            expected: broker.node_id(),
                            received: name.to_string(),
                        })
                    }
                }
                resource_type::BROKER_LOGGER => Ok(Vec::new()),
                other => Err(ControllerError::UnsupportedResourceType(other)),
            };
            match entries {
                Ok(entries) => {
                    let configs = entries
                        .into_iter()
                        .filter(|e| keys.as_ref().is_none_or(|k| k.contains(&e.name)))
                        .map(|e| entry(e, request.include_synonyms, request.include_documentation))
                        .collect();
                    base.with_error_code(0).with_configs(configs)
                }
                Err(error) => {
                    let (code, message) = controller_error(&error);
                    base.with_error_code(code.code())
                        .with_error_message(Some(StrBytes::from_string(message)))
                }
            }
        })
        .collect();
    ctx.respond(&DescribeConfigsResponse::default().with_results(results))
}
