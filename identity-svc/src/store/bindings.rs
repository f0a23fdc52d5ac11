//! Personalised binding tokens (千人千面码) as resolution reads them: the live profile a QR scene
//! or contact-me `state` of the form `pb_<token>` names. Operators make the tokens
//! (`edits::Resolver::binding_token`); resolution only reads them, so it needs nothing of the
//! operator writes.

use chrono::{DateTime, Utc};
use sea_orm::{DbErr, EntityTrait};

use super::entities::{binding_token, profile};
use super::{ACTIVE, MERGED};

/// Prefix of a binding scene / state: `pb_<token>`.
pub const BINDING_PREFIX: &str = "pb_";

/// The live profile a binding scene names (following merges), if the token is known, unexpired
/// and of `tenant`.
pub(crate) async fn bound_profile<C: sea_orm::ConnectionTrait>(
    conn: &C,
    tenant: &str,
    scene: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, DbErr> {
    let Some(token) = scene.strip_prefix(BINDING_PREFIX) else {
        return Ok(None);
    };
    let Some(t) = binding_token::Entity::find_by_id(token.to_string())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    if t.tenant_id != tenant || t.expires_at < now {
        return Ok(None);
    }
    let Some(p) = profile::Entity::find_by_id(t.profile_id.clone())
        .one(conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(match (&p.status[..], p.merged_into) {
        (MERGED, Some(into)) => Some(into),
        (ACTIVE, _) => Some(p.id),
        _ => None,
    })
}
