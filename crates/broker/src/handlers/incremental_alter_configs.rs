//! IncrementalAlterConfigs (key 44): SET, DELETE, APPEND and SUBTRACT on single
//! keys (APPEND and SUBTRACT only on list configs), validated as a whole.

use std::collections::BTreeMap;

use bytes::Bytes;
use metadata::{ConfigResource, ControllerError};
use protocol::kafka::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use protocol::kafka::messages::{
    ApiKey, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use protocol::kafka::protocol::StrBytes;
use protocol::ErrorCode;
use storage::config::ConfigType;

use super::alter_configs::resource_of;
use super::{ApiSpec, Reply, RequestContext};
use crate::configs::def_for;
use crate::errors::controller_error;

pub const API: ApiSpec = ApiSpec::new(ApiKey::IncrementalAlterConfigs, 0, 1);

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn current_overrides(ctx: &RequestContext, resource: &ConfigResource) -> BTreeMap<String, String> {
    let image = ctx.broker.metadata.image();
    match resource {
        ConfigResource::Topic(topic) => image
            .topic(topic)
            .map(|t| t.configs.clone())
            .unwrap_or_default(),
        other => image.broker_configs.get(other).cloned().unwrap_or_default(),
    }
}

/// The list value a key has now for a resource (its override, else its effective value).
fn effective_list(
    ctx: &RequestContext,
    resource: &ConfigResource,
    name: &str,
    overrides: &BTreeMap<String, String>,
) -> Vec<String> {
    let value = overrides.get(name).cloned().or_else(|| match resource {
        ConfigResource::Topic(topic) => {
            let image = ctx.broker.metadata.image();
            image
                .topic(topic)
                .map(|t| ctx.broker.controller.log_config_for(t))
                .and_then(|c| c.values.get(name).cloned())
        }
        _ => ctx.broker.config.raw.get(name).cloned(),
    });
    value
        .map(|v| {
            v.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: IncrementalAlterConfigsRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let mut responses = Vec::with_capacity(request.resources.len());
    for resource in &request.resources {
        let outcome = async {
            let target = resource_of(ctx, resource.resource_type, &resource.resource_name)?;
            let mut overrides = current_overrides(ctx, &target);
            for config in &resource.configs {
                let name = config.name.to_string();
                if matches!(target, ConfigResource::Topic(_))
                    && super::guards::is_removed_topic_config(&resource.resource_name, &name)
                {
                    continue;
                }
                let def = def_for(&target, &name)
                    .ok_or_else(|| ControllerError::UnknownConfigName(name.clone()))?;
                let value = config.value.as_ref().map(|v| v.to_string());
                match config.config_operation {
                    SET => {
                        let value =
                            value.ok_or_else(|| ControllerError::NullAlterValue(name.clone()))?;
                        overrides.insert(name, value);
                    }
                    DELETE => {
                        overrides.remove(&name);
                    }
                    APPEND | SUBTRACT => {
                        if def.kind != ConfigType::List {
                            return Err(ControllerError::NotAListConfig(name));
                        }
                        let mut list = effective_list(ctx, &target, &name, &overrides);
                        let items: Vec<String> = value
                            .unwrap_or_default()
                            .split(',')
                            .map(|s| s.trim().to_string())
                            .filter(|s| !s.is_empty())
                            .collect();
                        if config.config_operation == APPEND {
                            for item in items {
                                if !list.contains(&item) {
                                    list.push(item);
                                }
                            }
                        } else {
                            list.retain(|item| !items.contains(item));
                        }
                        overrides.insert(name, list.join(","));
                    }
                    other => return Err(ControllerError::UnknownConfigOperation(other)),
                }
            }
            ctx.broker
                .controller
                .alter_configs(target, overrides, request.validate_only)
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
    ctx.respond(&IncrementalAlterConfigsResponse::default().with_responses(responses))
}
