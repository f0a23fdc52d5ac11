//! `channel.wecom.external_tag.*` (WeCom `change_external_tag`: a corp tag or group created,
//! renamed, deleted or reordered): recorded as a mirror sync request for the corp, once per
//! message (inbox); the mirror loop reads the library.

use chrono::Utc;
use platform::bus::HandlerError;
use platform::db::inbox;
use proto::callback::CallbackReceived;
use proto::Envelope;

use crate::store::corp_tags;
use crate::store::tagger::{Tagger, CONSUMER};

/// Routing keys handled here.
pub const PREFIX: &str = "channel.wecom.external_tag.";

/// Handles `env` when it is a corp-tag change; `None` for every other event.
pub(crate) async fn handle(tagger: &Tagger, env: &Envelope) -> Option<Result<(), HandlerError>> {
    if !env.kind.starts_with(PREFIX) {
        return None;
    }
    let cb: CallbackReceived = match env.payload_as() {
        Ok(cb) => cb,
        Err(e) => return Some(Err(HandlerError::Invalid(format!("{}: {e}", env.kind)))),
    };
    let (tenant, corp) = (env.tenant_id.clone(), cb.app_id);
    let done = inbox::process_retrying(
        &tagger.db,
        CONSUMER,
        env.id,
        tagger.cfg.tx_attempts,
        |txn| {
            let (tenant, corp) = (tenant.clone(), corp.clone());
            Box::pin(async move { corp_tags::request_sync(txn, &tenant, &corp, Utc::now()).await })
        },
    )
    .await;
    Some(match done {
        Ok(_) => {
            metrics::counter!(crate::metrics::WECOM_TAG_EVENTS).increment(1);
            Ok(())
        }
        Err(e) => Err(HandlerError::Transient(e.to_string())),
    })
}
