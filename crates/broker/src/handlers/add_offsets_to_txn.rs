//! AddOffsetsToTxn (key 25): the group's offsets become part of the transaction.

use bytes::Bytes;
use protocol::kafka::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, ApiKey};
use protocol::ErrorCode;

use super::{ApiSpec, Reply, RequestContext};

pub const API: ApiSpec = ApiSpec::new(ApiKey::AddOffsetsToTxn, 0, 4);

pub async fn handle(ctx: &RequestContext, body: Bytes) -> Reply {
    let request: AddOffsetsToTxnRequest = match ctx.decode(body) {
        Ok(request) => request,
        Err(reply) => return reply,
    };
    let error = match ctx.broker.controller.ensure_offsets_topic().await {
        Err(code) => code,
        Ok(()) => {
            let id = request.transactional_id.to_string();
            let group = request.group_id.to_string();
            let (pid, epoch) = (request.producer_id.0, request.producer_epoch);
            match ctx
                .broker
                .transactions
                .ask(|core, respond| core.add_offsets(&id, pid, epoch, &group, respond))
                .await
            {
                Ok(()) => ErrorCode::None,
                Err(ErrorCode::ProducerFenced) if ctx.api_version < 2 => {
                    ErrorCode::InvalidProducerEpoch
                }
                Err(code) => code,
            }
        }
    };
    ctx.respond(&AddOffsetsToTxnResponse::default().with_error_code(error.code()))
}
