//! Channel codes (渠道活码): what an operator may ask for — a WeCom contact-me code for one or
//! several reps, or an Official Account parametric QR code, temporary or permanent, each with
//! its entry key (the contact-me `state` or the QR scene, generated when not given) and the
//! source it attributes to — and the WeChat request it becomes. Pure: the caller binds the key
//! to the source, calls WeChat and keeps the code.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use wechat::api::{
    ContactWay, QrScene, MAX_CONTACT_WAY_EXPIRE, MAX_QR_EXPIRE, MAX_SCENE_STR, MAX_STATE,
};

/// Longest code name, in characters.
pub const MAX_NAME: usize = 64;
/// Most reps on one contact-me code.
pub const MAX_REPS: usize = 100;
/// Life of a temporary contact-me code when none is asked for (7 days).
pub const DEFAULT_CONTACT_WAY_EXPIRE: u32 = 7 * 86_400;

/// Which kind of code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CodeKind {
    /// A WeCom contact-me code (`add_contact_way`, as a QR code).
    WecomContactWay,
    /// An Official Account parametric QR code (`qrcode/create`, a scene string).
    OaQrcode,
}

impl CodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::WecomContactWay => "wecom_contact_way",
            CodeKind::OaQrcode => "oa_qrcode",
        }
    }

    pub fn parse(s: &str) -> Option<CodeKind> {
        [CodeKind::WecomContactWay, CodeKind::OaQrcode]
            .into_iter()
            .find(|k| k.as_str() == s)
    }

    /// The source registry's binding kind of the code's entry key.
    pub fn binding_kind(self) -> &'static str {
        match self {
            CodeKind::WecomContactWay => "wecom_state",
            CodeKind::OaQrcode => "oa_scene",
        }
    }
}

/// A channel code to create (`POST /admin/v1/channel-codes`).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChannelCode {
    pub kind: CodeKind,
    /// The WeCom corpid or the OA appid, registered to the tenant.
    pub app_id: String,
    /// The operator's name for it (1–64 characters).
    pub name: String,
    /// The source registry's node arrivals through the code are attributed to.
    #[serde(default)]
    pub source_id: Option<String>,
    /// The entry key: the contact-me `state` (≤ 30 characters) or the QR scene string (1–64);
    /// generated when absent.
    #[serde(default)]
    pub key: Option<String>,
    /// The reps' WeCom userids (contact-me codes: one, or several for a multi-rep code).
    #[serde(default)]
    pub reps: Vec<String>,
    /// Added without the rep's confirmation (contact-me codes; default true).
    #[serde(default)]
    pub skip_verify: Option<bool>,
    /// A temporary code: a contact-me code for one customer (7 days unless `expires_in`, at
    /// most 14), a QR code for `expires_in` seconds (default and at most 30 days).
    #[serde(default)]
    pub temporary: bool,
    #[serde(default)]
    pub expires_in: Option<u32>,
    /// Tags every customer arriving through the code gets (tag ids, at most
    /// [`MAX_TAGS`]): kept by an `add_only` tag rule per tag on the code's key.
    #[serde(default)]
    pub tags: Vec<String>,
}

/// Most default tags on one code.
pub const MAX_TAGS: usize = 20;

/// The condition of a code's default-tag rules: a first or latest touch through its key.
pub fn arrival_condition(key: &str) -> serde_json::Value {
    let through = |touch: &str| {
        serde_json::json!({"type": "source", "touch": touch, "field": "campaign", "op": "eq",
                           "value": key})
    };
    serde_json::json!({"version": 1, "root": {"type": "or",
        "children": [through("first"), through("latest")]}})
}

/// Why a request was refused: the field and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct CodeFieldError {
    pub field: &'static str,
    pub reason: String,
}

fn refuse(field: &'static str, reason: impl Into<String>) -> CodeFieldError {
    CodeFieldError {
        field,
        reason: reason.into(),
    }
}

/// The WeChat request a code becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WechatCode {
    ContactWay(ContactWay),
    QrCode {
        scene: QrScene,
        expire_seconds: Option<u32>,
    },
}

/// A checked request: its name, entry key and WeChat request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub name: String,
    pub key: String,
    pub wechat: WechatCode,
}

/// Checks `req`, taking `generated` as the entry key when it names none.
pub fn plan(req: &NewChannelCode, generated: &str) -> Result<Plan, CodeFieldError> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(refuse("name", format!("1–{MAX_NAME} characters")));
    }
    if req.tags.len() > MAX_TAGS || req.tags.iter().any(|t| t.trim().is_empty() || t.len() > 64) {
        return Err(refuse("tags", format!("at most {MAX_TAGS} tag ids")));
    }
    let key = req
        .key
        .as_deref()
        .map(str::trim)
        .unwrap_or(generated)
        .to_string();
    let max_key = match req.kind {
        CodeKind::WecomContactWay => MAX_STATE,
        CodeKind::OaQrcode => MAX_SCENE_STR,
    };
    if key.is_empty()
        || key.chars().count() > max_key
        || !key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(refuse(
            "key",
            format!("1–{max_key} characters of letters, digits, `_`, `-`, `.`"),
        ));
    }
    let wechat = match req.kind {
        CodeKind::WecomContactWay => {
            let reps: Vec<String> = req.reps.iter().map(|r| r.trim().to_string()).collect();
            if reps.is_empty() || reps.len() > MAX_REPS {
                return Err(refuse("reps", format!("1–{MAX_REPS} reps' userids")));
            }
            if reps.iter().any(|r| r.is_empty() || r.len() > 64) {
                return Err(refuse("reps", "userids of 1–64 bytes"));
            }
            let expires_in = match (req.temporary, req.expires_in) {
                (false, None) => None,
                (false, Some(_)) => return Err(refuse("expires_in", "only for a temporary code")),
                (true, e) => {
                    let e = e.unwrap_or(DEFAULT_CONTACT_WAY_EXPIRE);
                    if e == 0 || e > MAX_CONTACT_WAY_EXPIRE {
                        return Err(refuse(
                            "expires_in",
                            format!("1–{MAX_CONTACT_WAY_EXPIRE} seconds"),
                        ));
                    }
                    Some(e)
                }
            };
            WechatCode::ContactWay(ContactWay {
                kind: if reps.len() == 1 { 1 } else { 2 },
                scene: 2,
                remark: Some(name.chars().take(30).collect()),
                skip_verify: req.skip_verify.unwrap_or(true),
                state: key.clone(),
                user: reps,
                is_temp: req.temporary,
                expires_in,
            })
        }
        CodeKind::OaQrcode => {
            if !req.reps.is_empty() {
                return Err(refuse("reps", "an Official Account QR code has no reps"));
            }
            if req.skip_verify.is_some() {
                return Err(refuse("skip_verify", "only for a contact-me code"));
            }
            let expire_seconds = match (req.temporary, req.expires_in) {
                (false, None) => None,
                (false, Some(_)) => return Err(refuse("expires_in", "only for a temporary code")),
                (true, e) => {
                    let e = e.unwrap_or(MAX_QR_EXPIRE);
                    if !(60..=MAX_QR_EXPIRE).contains(&e) {
                        return Err(refuse("expires_in", format!("60–{MAX_QR_EXPIRE} seconds")));
                    }
                    Some(e)
                }
            };
            WechatCode::QrCode {
                scene: QrScene::Str(key.clone()),
                expire_seconds,
            }
        }
    };
    Ok(Plan {
        name: name.to_string(),
        key,
        wechat,
    })
}

/// A change to a code (`PATCH /admin/v1/channel-codes/{id}`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeChange {
    #[serde(default)]
    pub name: Option<String>,
    /// A contact-me code's reps (a single-rep code keeps exactly one).
    #[serde(default)]
    pub reps: Option<Vec<String>>,
    /// A contact-me code's verification.
    #[serde(default)]
    pub skip_verify: Option<bool>,
}

/// A code as it stands, for [`change`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub kind: CodeKind,
    pub name: String,
    pub key: String,
    pub reps: Vec<String>,
    pub skip_verify: bool,
}

/// What a checked change leaves: the new name, reps and verification, and the contact-me code
/// WeChat must be told of (`None`: nothing to tell it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changed {
    pub name: String,
    pub reps: Vec<String>,
    pub skip_verify: bool,
    pub wechat: Option<ContactWay>,
}

/// Checks `edit` of the code `cur`.
pub fn change(cur: &Current, edit: &CodeChange) -> Result<Changed, CodeFieldError> {
    if edit.name.is_none() && edit.reps.is_none() && edit.skip_verify.is_none() {
        return Err(refuse(
            "name",
            "nothing to change: name, reps or skip_verify",
        ));
    }
    let name = match &edit.name {
        Some(n) if n.trim().is_empty() || n.trim().chars().count() > MAX_NAME => {
            return Err(refuse("name", format!("1–{MAX_NAME} characters")))
        }
        Some(n) => n.trim().to_string(),
        None => cur.name.clone(),
    };
    if cur.kind == CodeKind::OaQrcode {
        if edit.reps.is_some() {
            return Err(refuse("reps", "an Official Account QR code has no reps"));
        }
        if edit.skip_verify.is_some() {
            return Err(refuse("skip_verify", "only for a contact-me code"));
        }
        return Ok(Changed {
            name,
            reps: Vec::new(),
            skip_verify: false,
            wechat: None,
        });
    }
    let reps: Vec<String> = match &edit.reps {
        Some(r) => r.iter().map(|u| u.trim().to_string()).collect(),
        None => cur.reps.clone(),
    };
    let single = cur.reps.len() == 1;
    if reps.is_empty() || reps.len() > MAX_REPS || reps.iter().any(|r| r.is_empty() || r.len() > 64)
    {
        return Err(refuse("reps", format!("1–{MAX_REPS} reps' userids")));
    }
    if single && reps.len() != 1 {
        return Err(refuse("reps", "a single-rep code keeps exactly one rep"));
    }
    let skip_verify = edit.skip_verify.unwrap_or(cur.skip_verify);
    let wechat =
        (reps != cur.reps || skip_verify != cur.skip_verify || name != cur.name).then(|| {
            ContactWay {
                kind: if single { 1 } else { 2 },
                scene: 2,
                remark: Some(name.chars().take(30).collect()),
                skip_verify,
                state: cur.key.clone(),
                user: reps.clone(),
                is_temp: false,
                expires_in: None,
            }
        });
    Ok(Changed {
        name,
        reps,
        skip_verify,
        wechat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(kind: CodeKind) -> NewChannelCode {
        NewChannelCode {
            kind,
            app_id: "app".into(),
            name: " Expo booth 7 ".into(),
            source_id: None,
            key: None,
            reps: Vec::new(),
            skip_verify: None,
            temporary: false,
            expires_in: None,
            tags: Vec::new(),
        }
    }

    #[test]
    fn a_contact_me_code_for_one_rep() {
        let mut r = req(CodeKind::WecomContactWay);
        r.reps = vec!["alice".into()];
        let p = plan(&r, "cc_k3y").unwrap();
        assert_eq!(
            (p.name.as_str(), p.key.as_str()),
            ("Expo booth 7", "cc_k3y")
        );
        let WechatCode::ContactWay(w) = p.wechat else {
            panic!("a contact way")
        };
        assert_eq!((w.kind, w.scene, w.state.as_str()), (1, 2, "cc_k3y"));
        assert!(w.skip_verify && !w.is_temp);
        r.reps.push("bob".into());
        r.temporary = true;
        r.key = Some("booth_7".into());
        let WechatCode::ContactWay(w) = plan(&r, "x").unwrap().wechat else {
            panic!("a contact way")
        };
        assert_eq!((w.kind, w.state.as_str()), (2, "booth_7"));
        assert_eq!(w.expires_in, Some(DEFAULT_CONTACT_WAY_EXPIRE));
    }

    #[test]
    fn a_qr_code_temporary_or_permanent() {
        let mut r = req(CodeKind::OaQrcode);
        r.key = Some("booth_7".into());
        let p = plan(&r, "x").unwrap();
        assert_eq!(
            p.wechat,
            WechatCode::QrCode {
                scene: QrScene::Str("booth_7".into()),
                expire_seconds: None
            }
        );
        r.temporary = true;
        r.expires_in = Some(3_600);
        let WechatCode::QrCode { expire_seconds, .. } = plan(&r, "x").unwrap().wechat else {
            panic!("a QR code")
        };
        assert_eq!(expire_seconds, Some(3_600));
    }

    #[test]
    fn changes_keep_the_codes_shape() {
        let cur = Current {
            kind: CodeKind::WecomContactWay,
            name: "Expo".into(),
            key: "booth_7".into(),
            reps: vec!["alice".into()],
            skip_verify: true,
        };
        let c = change(
            &cur,
            &CodeChange {
                reps: Some(vec!["bob".into()]),
                ..Default::default()
            },
        )
        .unwrap();
        let w = c.wechat.expect("WeChat is told");
        assert_eq!(
            (w.kind, w.state.as_str(), w.user.as_slice()),
            (1, "booth_7", &["bob".to_string()][..])
        );
        let two = CodeChange {
            reps: Some(vec!["a".into(), "b".into()]),
            ..Default::default()
        };
        assert_eq!(change(&cur, &two).unwrap_err().field, "reps");
        assert_eq!(
            change(&cur, &CodeChange::default()).unwrap_err().field,
            "name"
        );
        let same = CodeChange {
            skip_verify: Some(true),
            ..Default::default()
        };
        assert_eq!(change(&cur, &same).unwrap().wechat, None);
        let qr = Current {
            kind: CodeKind::OaQrcode,
            reps: Vec::new(),
            ..cur
        };
        let renamed = CodeChange {
            name: Some(" Poster ".into()),
            ..Default::default()
        };
        let c = change(&qr, &renamed).unwrap();
        assert_eq!((c.name.as_str(), c.wechat), ("Poster", None));
        assert_eq!(change(&qr, &two).unwrap_err().field, "reps");
    }

    #[test]
    fn refusals_name_the_field() {
        let field = |r: &NewChannelCode| plan(r, "k").unwrap_err().field;
        let mut r = req(CodeKind::WecomContactWay);
        assert_eq!(field(&r), "reps");
        r.reps = vec!["alice".into()];
        r.key = Some("s".repeat(31));
        assert_eq!(field(&r), "key");
        r.key = Some("bad key".into());
        assert_eq!(field(&r), "key");
        r.key = None;
        r.expires_in = Some(60);
        assert_eq!(field(&r), "expires_in");
        r.temporary = true;
        r.expires_in = Some(MAX_CONTACT_WAY_EXPIRE + 1);
        assert_eq!(field(&r), "expires_in");
        r.name = " ".into();
        assert_eq!(field(&r), "name");
        r.name = "n".into();
        r.tags = vec![" ".into()];
        assert_eq!(field(&r), "tags");
        let mut q = req(CodeKind::OaQrcode);
        q.reps = vec!["alice".into()];
        assert_eq!(field(&q), "reps");
        q.reps.clear();
        q.key = Some("s".repeat(65));
        assert_eq!(field(&q), "key");
        q.key = None;
        q.temporary = true;
        q.expires_in = Some(30);
        assert_eq!(field(&q), "expires_in");
    }
}
