//! What an event needs before its transaction begins: its identifiers extracted, hashed, sealed
//! and masked ([`Prepared`]), what it observed ([`observe`]), the tenant's custom fields for a
//! form, and the anchor of a personalised binding code — read outside the transaction, so a
//! transaction holding a pooled connection never waits for another one.

use std::sync::Arc;

use chrono::Utc;
use proto::identity::{Identifier, IdentifierKind};
use proto::Envelope;
use sea_orm::{ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::{Job, Mode, Outcome, Prepared, ResolveError, Resolver, Step};
use crate::domain::extract::{extract, Found};
use crate::domain::fields::CustomField;
use crate::domain::observe::{self, Enriched, ObserveCtx};
use crate::domain::pii::{mask, plain_hash, seal_context};
use crate::domain::Key;
use crate::store::entities::{custom_field, identifier};

impl Resolver {
    /// What `env` needs of its transaction, read before it begins (custom fields, a binding
    /// code's anchor), or what it is without one.
    pub(super) async fn prepare_job(
        &self,
        env: &Envelope,
        enriched: Option<&Enriched>,
        mode: Mode,
    ) -> Result<Step, ResolveError> {
        let policy = self.policy.for_tenant(&env.tenant_id);
        let extracted = extract(env, policy).map_err(|e| ResolveError::Invalid(e.to_string()))?;
        if let Some(g) = observe::group_change(env) {
            return Ok(Step::Group(g));
        }
        let custom = if env.kind == proto::sdk::TrackKind::FormSubmit.routing_key() {
            self.custom_fields(&env.tenant_id).await?
        } else {
            Vec::new()
        };
        // A touch through an entry key (QR scene, contact-me state, UTM campaign) is attributed
        // through the tenant's source registry (in memory).
        let sources = self.sources.get(&env.tenant_id);
        let ctx = ObserveCtx {
            default_region: &policy.default_region,
            custom: &custom,
            sources: &sources,
            now: Utc::now(),
        };
        let mut obs = observe::observe(env, enriched, &ctx);
        if mode == Mode::Enrichment {
            // The event's own refused values were logged when it was resolved.
            let own = observe::observe(env, None, &ctx).issues;
            obs.issues.retain(|i| !own.contains(i));
        }
        let mut found = extracted.identifiers;
        if let Some(u) = enriched.and_then(|e| e.unionid.as_deref()) {
            found.push(Found {
                identifier: Identifier::new(
                    IdentifierKind::Unionid,
                    policy.unionid_namespace(observe::event_app(env).as_deref()),
                    u,
                ),
                provenance: proto::identity::Provenance::Wechat,
            });
        }
        for f in &obs.identifiers {
            if !found.iter().any(|g| g.identifier == f.identifier)
                && !policy.blocklist.is_blocked(&f.identifier.value)
            {
                found.push(f.clone());
            }
        }
        let mut prepared = self.prepare(&env.tenant_id, found);
        // A binding code's link was made when the event was resolved.
        if !prepared.is_empty() && mode != Mode::Enrichment {
            if let Some(anchor) = self.binding_anchor(env).await? {
                prepared.push(anchor);
            }
        }
        if prepared.is_empty() {
            metrics::counter!(crate::metrics::EVENTS, "outcome" => "no_identifiers").increment(1);
            return Ok(Step::Done(Outcome::NoIdentifiers));
        }
        Ok(Step::Job(Arc::new(Job {
            env: env.clone(),
            prepared,
            summary: extracted.summary,
            policy: Arc::new(policy.clone()),
            obs,
            mode,
        })))
    }

    /// When the event came through a personalised binding code, an identifier of the profile
    /// the code names (its first), to be linked with the event's subject.
    async fn binding_anchor(&self, env: &Envelope) -> Result<Option<Prepared>, DbErr> {
        let Some(code) = observe::entry_code(env) else {
            return Ok(None);
        };
        let Some(target) =
            crate::store::bindings::bound_profile(&self.db, &env.tenant_id, &code, Utc::now())
                .await?
        else {
            return Ok(None);
        };
        let Some(m) = identifier::Entity::find()
            .filter(identifier::Column::ProfileId.eq(target))
            .order_by_asc(identifier::Column::Id)
            .one(&self.db)
            .await?
        else {
            return Ok(None);
        };
        let Some(kind) = IdentifierKind::parse(&m.kind) else {
            return Ok(None);
        };
        let provenance = proto::identity::Provenance::parse(&m.provenance)
            .unwrap_or(proto::identity::Provenance::Wechat);
        Ok(Some(Prepared {
            found: Found {
                identifier: Identifier::new(
                    kind,
                    m.namespace.clone(),
                    m.value.clone().unwrap_or_else(|| m.value_masked.clone()),
                ),
                provenance,
            },
            binding: true,
            key: Key {
                kind,
                namespace: m.namespace,
                hash: m.value_hash,
            },
            value: m.value,
            sealed: m.value_sealed,
            masked: m.value_masked,
        }))
    }

    /// The tenant's declared custom fields.
    pub async fn custom_fields(&self, tenant: &str) -> Result<Vec<CustomField>, DbErr> {
        Ok(custom_field::Entity::find()
            .filter(custom_field::Column::TenantId.eq(tenant))
            .order_by_asc(custom_field::Column::Name)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|c| {
                Some(CustomField {
                    value_type: crate::domain::fields::FieldType::parse(&c.value_type)?,
                    name: c.name,
                    label: c.label,
                })
            })
            .collect())
    }

    pub(super) fn prepare(&self, tenant: &str, found: Vec<Found>) -> Vec<Prepared> {
        let mut out = Vec::with_capacity(found.len());
        for f in found {
            let id = &f.identifier;
            let (hash, value, sealed, masked) = if id.kind.is_sensitive() {
                let Some(pii) = &self.pii else {
                    metrics::counter!(crate::metrics::SENSITIVE_DROPPED).increment(1);
                    continue;
                };
                (
                    pii.keyed_hash(id.kind, &id.namespace, &id.value),
                    None,
                    Some(pii.seal(&id.value, &seal_context(tenant, id.kind, &id.namespace))),
                    mask(id.kind, &id.value),
                )
            } else {
                (
                    plain_hash(&id.value),
                    Some(id.value.clone()),
                    None,
                    id.value.clone(),
                )
            };
            out.push(Prepared {
                binding: false,
                key: Key {
                    kind: id.kind,
                    namespace: id.namespace.clone(),
                    hash,
                },
                value,
                sealed,
                masked,
                found: f,
            });
        }
        out
    }
}
