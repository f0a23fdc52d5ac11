//! Where a customer can be reached now, per channel: what an Official Account mass send (openids
//! per app), a mini-program subscription message (openids per app) or a WeCom group send
//! (external_userid per corp, with the reps who follow the customer) needs. Decided from the
//! profile's relationship state and its identifiers, without I/O.
//!
//! - **OA**: an openid of an Official Account the customer follows now; an openid of an account
//!   they unfollowed (or never followed: a web-page authorisation) cannot be sent to and is left
//!   out.
//! - **MP**: every mini-program openid (a subscription message needs the user's own consent,
//!   which WeChat checks at send time).
//! - **WeCom**: per corp, the customer's external_userid and the reps whose follow is in force,
//!   in the order they added the customer; a corp whose every follow was deleted is left out.
//! - **Phone**: masked, as everywhere the API answers.

use std::collections::BTreeMap;

use proto::identity::{IdentifierKind, Relations};
use serde::Serialize;

/// One identifier of the profile as [`reach`] reads it: kind, namespace and the value as the
/// API may show it (clear for openids and external_userids, masked for phones).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub kind: IdentifierKind,
    pub namespace: String,
    pub shown: String,
}

/// An Official Account or mini-program openid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppOpenid {
    pub app_id: String,
    pub openid: String,
}

/// The customer as an external contact of one corp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WecomContact {
    pub corp_id: String,
    pub external_userid: String,
    /// Reps (WeCom userids) whose follow is in force, in the order they added the customer.
    pub reps: Vec<String>,
}

/// A customer's reach on every channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reach {
    pub profile_id: String,
    pub oa: Vec<AppOpenid>,
    pub mp: Vec<AppOpenid>,
    pub wecom: Vec<WecomContact>,
    /// The first phone, masked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
}

/// The reach of `profile_id` from its relationship state and identifiers.
pub fn reach(profile_id: &str, relations: &Relations, held: &[Held]) -> Reach {
    let of_kind = |k: IdentifierKind| held.iter().filter(move |h| h.kind == k);
    let following: BTreeMap<&str, bool> = relations
        .oa_subscriptions
        .iter()
        .map(|s| (s.app_id.as_str(), s.subscribed))
        .collect();
    let oa = of_kind(IdentifierKind::OaOpenid)
        .filter(|h| following.get(h.namespace.as_str()) == Some(&true))
        .map(|h| AppOpenid {
            app_id: h.namespace.clone(),
            openid: h.shown.clone(),
        })
        .collect();
    let mp = of_kind(IdentifierKind::MpOpenid)
        .map(|h| AppOpenid {
            app_id: h.namespace.clone(),
            openid: h.shown.clone(),
        })
        .collect();
    let mut follows: Vec<_> = relations
        .wecom_follows
        .iter()
        .filter(|f| f.is_active())
        .collect();
    follows.sort_by(|a, b| (a.added_at, &a.user_id).cmp(&(b.added_at, &b.user_id)));
    let mut wecom: Vec<WecomContact> = Vec::new();
    for f in follows {
        let external = f.external_userid.clone().or_else(|| {
            of_kind(IdentifierKind::WecomExternalUserid)
                .find(|h| h.namespace == f.corp_id)
                .map(|h| h.shown.clone())
        });
        let Some(external_userid) = external else {
            continue;
        };
        match wecom
            .iter_mut()
            .find(|c| c.corp_id == f.corp_id && c.external_userid == external_userid)
        {
            Some(c) if !c.reps.contains(&f.user_id) => c.reps.push(f.user_id.clone()),
            Some(_) => {}
            None => wecom.push(WecomContact {
                corp_id: f.corp_id.clone(),
                external_userid,
                reps: vec![f.user_id.clone()],
            }),
        }
    }
    Reach {
        profile_id: profile_id.to_string(),
        oa,
        mp,
        wecom,
        phone: of_kind(IdentifierKind::Phone)
            .next()
            .map(|h| h.shown.clone()),
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use proto::identity::{OaSubscription, WecomFollow};

    use super::*;

    fn held(kind: IdentifierKind, ns: &str, v: &str) -> Held {
        Held {
            kind,
            namespace: ns.into(),
            shown: v.into(),
        }
    }

    fn follow(user: &str, ext: Option<&str>, minute: u32, deleted: bool) -> WecomFollow {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 8, minute, 0).unwrap();
        WecomFollow {
            corp_id: "ww1".into(),
            user_id: user.into(),
            external_userid: ext.map(Into::into),
            remark: None,
            add_way: None,
            state: None,
            added_at: at,
            deleted_at: deleted.then_some(at),
            corp_tags: None,
        }
    }

    #[test]
    fn only_followed_accounts_and_active_follows_reach() {
        let at = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let sub = |app: &str, on: bool| OaSubscription {
            app_id: app.into(),
            subscribed: on,
            scene: None,
            changed_at: at,
        };
        let rel = Relations {
            oa_subscriptions: vec![sub("wxoa1", true), sub("wxoa2", false)],
            wecom_follows: vec![
                follow("zoe", Some("wmE"), 3, false),
                follow("amy", None, 1, false),
                follow("bob", Some("wmE"), 2, true),
            ],
            ..Relations::default()
        };
        let ids = [
            held(IdentifierKind::OaOpenid, "wxoa1", "o1"),
            held(IdentifierKind::OaOpenid, "wxoa2", "o2"),
            held(IdentifierKind::OaOpenid, "wxoa3", "o3"),
            held(IdentifierKind::MpOpenid, "wxmp", "m1"),
            held(IdentifierKind::WecomExternalUserid, "ww1", "wmE"),
            held(IdentifierKind::Phone, "86", "138****8000"),
        ];
        let r = reach("p1", &rel, &ids);
        assert_eq!(
            r.oa,
            vec![AppOpenid {
                app_id: "wxoa1".into(),
                openid: "o1".into()
            }]
        );
        assert_eq!(r.mp.len(), 1);
        assert_eq!(
            r.wecom,
            vec![WecomContact {
                corp_id: "ww1".into(),
                external_userid: "wmE".into(),
                reps: vec!["amy".into(), "zoe".into()],
            }]
        );
        assert_eq!(r.phone.as_deref(), Some("138****8000"));
    }

    #[test]
    fn a_follow_without_a_known_external_userid_is_left_out() {
        let rel = Relations {
            wecom_follows: vec![follow("amy", None, 1, false)],
            ..Relations::default()
        };
        let r = reach("p1", &rel, &[]);
        assert!(r.wecom.is_empty() && r.oa.is_empty() && r.phone.is_none());
    }
}
