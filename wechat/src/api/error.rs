//! Errors of the WeChat / WeCom server APIs: one variant per errcode the system meets, a
//! catch-all [`ApiError::Other`], and the failures around a call (transport, undecodable answer,
//! cache, a token another process did not finish refreshing).
//!
//! Messages never carry a secret or an access token: the client redacts both from every
//! `errmsg` and transport message before building an error.

use std::fmt;

/// Declares the errcode variants once: the enum arms, the errcode table and the descriptions.
macro_rules! errcodes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $text:literal; )*) => {
        /// A failed WeChat / WeCom API call.
        #[derive(Debug, Clone, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum ApiError {
            $( $(#[$doc])* $variant {
                /// WeChat's `errmsg` (secrets redacted).
                errmsg: String,
            }, )*
            /// An errcode without a variant of its own.
            Other {
                /// WeChat's `errcode`.
                errcode: i64,
                /// WeChat's `errmsg` (secrets redacted).
                errmsg: String,
            },
            /// The request did not complete (connect, TLS, timeout, reading the body).
            Transport {
                /// The API path, without host or query.
                endpoint: String,
                /// What went wrong (no URL, no query string).
                message: String,
            },
            /// WeChat answered, but not with the JSON the endpoint documents (HTTP error status,
            /// not JSON, wrong shape, a watermark for another app).
            InvalidResponse {
                /// The API path, without host or query.
                endpoint: String,
                /// The HTTP status when it was not a success.
                status: Option<u16>,
                /// What was wrong.
                message: String,
            },
            /// Another caller holds the refresh lock of this app's token and no token appeared
            /// within the wait bound.
            TokenUnavailable {
                /// The app, e.g. `oa:wx…` (never the secret).
                app: String,
            },
            /// The token cache failed.
            Cache(String),
            /// The central token keeper (the gateway's internal token endpoint) refused or failed
            /// without a WeChat errcode: bad internal key, unknown app, not the app's tenant, or
            /// the keeper unavailable.
            TokenKeeper {
                /// HTTP status of the keeper's answer.
                status: u16,
                /// The keeper's stable error code, e.g. `unknown_app`.
                code: String,
                /// The keeper's message.
                message: String,
            },
            /// The credentials are of another kind of app than the endpoint serves.
            WrongAppKind {
                /// The app, e.g. `oa:wx…`.
                app: String,
                /// The kind the endpoint needs.
                expected: &'static str,
            },
        }

        impl ApiError {
            /// The error for a non-zero `errcode`.
            pub fn from_errcode(errcode: i64, errmsg: impl Into<String>) -> Self {
                let errmsg = errmsg.into();
                match errcode {
                    $( $code => ApiError::$variant { errmsg }, )*
                    _ => ApiError::Other { errcode, errmsg },
                }
            }

            /// WeChat's `errcode`, when the error came from one.
            pub fn errcode(&self) -> Option<i64> {
                match self {
                    $( ApiError::$variant { .. } => Some($code), )*
                    ApiError::Other { errcode, .. } => Some(*errcode),
                    _ => None,
                }
            }

            /// WeChat's `errmsg`, when the error came from one.
            pub fn errmsg(&self) -> Option<&str> {
                match self {
                    $( ApiError::$variant { errmsg } )|* | ApiError::Other { errmsg, .. } => {
                        Some(errmsg)
                    }
                    _ => None,
                }
            }

            fn description(&self) -> Option<&'static str> {
                match self {
                    $( ApiError::$variant { .. } => Some($text), )*
                    _ => None,
                }
            }
        }
    };
}

errcodes! {
    /// `-1`: WeChat is busy; retry later.
    Busy = -1, "WeChat system busy";
    /// `40001`: the access token is invalid or superseded by a newer one (WeCom's `gettoken`
    /// also answers it for a wrong secret).
    InvalidCredential = 40001, "invalid credential or superseded access token";
    /// `40003`: the openid is not a user of this app.
    InvalidOpenid = 40003, "invalid openid";
    /// `40013`: unknown appid / corpid.
    InvalidAppId = 40013, "invalid appid or corpid";
    /// `40014`: the access token is malformed or belongs to another app.
    InvalidAccessToken = 40014, "invalid access token";
    /// `40029`: the login or phone code is unknown, used or expired.
    InvalidCode = 40029, "invalid code";
    /// `40032`: the openid list is empty or too long.
    InvalidOpenidList = 40032, "invalid openid list length";
    /// `40056`: the agentid is not the app the access token belongs to.
    InvalidAgentId = 40056, "invalid agentid";
    /// `40068`: unknown corp tag id.
    InvalidCorpTagId = 40068, "invalid corp tag id";
    /// `40071`: a corp tag of that name is already in the group.
    DuplicateCorpTagName = 40071, "corp tag name already exists";
    /// `40096`: malformed external_userid.
    InvalidExternalUserId = 40096, "invalid external_userid";
    /// `40125`: wrong app secret.
    InvalidSecret = 40125, "invalid app secret";
    /// `40163`: the code was already used.
    CodeUsed = 40163, "code already used";
    /// `41001`: the access token is missing.
    MissingAccessToken = 41001, "access token missing";
    /// `42001`: the access token expired.
    AccessTokenExpired = 42001, "access token expired";
    /// `45009`: the endpoint's daily quota is used up.
    ApiLimit = 45009, "API daily quota reached";
    /// `45011`: too many calls in a short time (per user or per app).
    RateLimited = 45011, "API rate limit reached";
    /// `45033`: too many concurrent calls of the API (WeCom).
    ConcurrencyLimited = 45033, "API concurrency limit reached";
    /// `45056`: the account already has the maximum number of tags.
    TooManyTags = 45056, "too many tags";
    /// `45058`: system tags cannot be changed.
    SystemTag = 45058, "system tag cannot be changed";
    /// `45059`: the user already carries the maximum number of tags.
    UserTooManyTags = 45059, "user has too many tags";
    /// `45157`: a tag with this name exists.
    TagNameDuplicate = 45157, "tag name already exists";
    /// `45158`: the tag name is longer than 30 bytes.
    TagNameTooLong = 45158, "tag name too long";
    /// `45159`: unknown tag id.
    InvalidTagId = 45159, "invalid tag id";
    /// `48001`: the app is not authorised for this API.
    Unauthorized = 48001, "API unauthorized for this app";
    /// `60020`: the calling server's IP is not on the app's trusted IP list (WeCom).
    IpNotAllowed = 60020, "IP not allowed";
    /// `60111`: the WeCom userid does not exist.
    UserNotFound = 60111, "userid not found";
    /// `81013`: none of an app message's recipients is valid (WeCom `message/send`).
    NoValidRecipient = 81013, "no valid recipient";
    /// `84061`: the customer is not an external contact (of this rep / corp).
    NoExternalContact = 84061, "not an external contact";
    /// `301002`: the app may only change what it created.
    NoPrivilege = 301002, "app has no privilege on this object";
}

impl ApiError {
    /// `true` for the errcodes that mean "fetch a new access token and retry": 40001, 40014,
    /// 42001.
    pub fn is_token_error(&self) -> bool {
        matches!(
            self,
            ApiError::InvalidCredential { .. }
                | ApiError::InvalidAccessToken { .. }
                | ApiError::AccessTokenExpired { .. }
        )
    }

    /// `true` for the errcodes of a limit on calls — 45009 (quota), 45011 (rate), 45033
    /// (concurrency) — which a queue of outgoing calls retries later, after backing off. (45009
    /// is not [`is_transient`](Self::is_transient): a daily quota does not recover within a
    /// retry or two.)
    pub fn is_rate_limited(&self) -> bool {
        matches!(
            self,
            ApiError::ApiLimit { .. }
                | ApiError::RateLimited { .. }
                | ApiError::ConcurrencyLimited { .. }
        )
    }

    /// `true` when the same call may succeed later without anyone changing configuration or
    /// input: busy, rate or concurrency limit, a superseded or expired token (the next call
    /// refreshes it), transport failures, server errors, cache failures, a refresh still in
    /// progress, a token keeper that is down or busy (5xx, 408, 429).
    ///
    /// Not transient: the daily quota (45009), wrong ids, codes or secrets. A wrong WeCom secret
    /// shows as 40001 from `gettoken` and so reads as transient: check the credentials when it
    /// persists.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Busy { .. }
            | ApiError::RateLimited { .. }
            | ApiError::ConcurrencyLimited { .. }
            | ApiError::InvalidCredential { .. }
            | ApiError::AccessTokenExpired { .. }
            | ApiError::Transport { .. }
            | ApiError::TokenUnavailable { .. }
            | ApiError::Cache(_) => true,
            ApiError::InvalidResponse { status, .. } => status.is_none_or(|s| s >= 500),
            ApiError::TokenKeeper { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            _ => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let (Some(text), Some(code), Some(msg)) =
            (self.description(), self.errcode(), self.errmsg())
        {
            return write!(f, "WeChat API error {code} ({text}): {msg}");
        }
        match self {
            ApiError::Other { errcode, errmsg } => {
                write!(f, "WeChat API error {errcode}: {errmsg}")
            }
            ApiError::Transport { endpoint, message } => {
                write!(f, "cannot reach WeChat ({endpoint}): {message}")
            }
            ApiError::InvalidResponse {
                endpoint,
                status,
                message,
            } => match status {
                Some(s) => write!(f, "unexpected answer from WeChat ({endpoint}, HTTP {s}): {message}"),
                None => write!(f, "unexpected answer from WeChat ({endpoint}): {message}"),
            },
            ApiError::TokenUnavailable { app } => write!(
                f,
                "no access token for {app}: another caller is refreshing it and did not finish in time"
            ),
            ApiError::Cache(msg) => write!(f, "token cache error: {msg}"),
            ApiError::TokenKeeper {
                status,
                code,
                message,
            } => write!(f, "token keeper answered HTTP {status} ({code}): {message}"),
            ApiError::WrongAppKind { app, expected } => {
                write!(f, "{app} cannot call this API: it needs a {expected} app")
            }
            // Every errcode variant was written above.
            _ => write!(f, "WeChat API error"),
        }
    }
}

impl std::error::Error for ApiError {}

impl From<platform::cache::CacheError> for ApiError {
    fn from(e: platform::cache::CacheError) -> Self {
        ApiError::Cache(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errcode_table_round_trips() {
        for code in [
            -1, 40001, 40003, 40013, 40014, 40029, 40032, 40056, 40068, 40071, 40096, 40125, 40163,
            41001, 42001, 45009, 45011, 45033, 45056, 45058, 45059, 45157, 45158, 45159, 48001,
            60020, 60111, 81013, 84061, 301002,
        ] {
            let e = ApiError::from_errcode(code, "m");
            assert!(!matches!(e, ApiError::Other { .. }), "{code} has a variant");
            assert_eq!(e.errcode(), Some(code));
            assert_eq!(e.errmsg(), Some("m"));
            assert!(e.to_string().contains(&code.to_string()));
        }
        let other = ApiError::from_errcode(12345, "x");
        assert_eq!(
            other,
            ApiError::Other {
                errcode: 12345,
                errmsg: "x".into()
            }
        );
        assert_eq!(other.to_string(), "WeChat API error 12345: x");
    }

    #[test]
    fn classification() {
        assert!(ApiError::from_errcode(40001, "").is_token_error());
        assert!(ApiError::from_errcode(40014, "").is_token_error());
        assert!(ApiError::from_errcode(42001, "").is_token_error());
        assert!(!ApiError::from_errcode(40029, "").is_token_error());
        assert!(ApiError::from_errcode(-1, "").is_transient());
        assert!(ApiError::from_errcode(45011, "").is_transient());
        assert!(ApiError::from_errcode(45033, "").is_transient());
        assert!(!ApiError::from_errcode(45009, "").is_transient());
        for limit in [45009, 45011, 45033] {
            assert!(
                ApiError::from_errcode(limit, "").is_rate_limited(),
                "{limit}"
            );
        }
        assert!(!ApiError::from_errcode(-1, "").is_rate_limited());
        assert!(!ApiError::from_errcode(81013, "").is_transient());
        assert!(!ApiError::from_errcode(60020, "").is_transient());
        assert!(!ApiError::from_errcode(40125, "").is_transient());
        let server = ApiError::InvalidResponse {
            endpoint: "/x".into(),
            status: Some(502),
            message: "m".into(),
        };
        assert!(server.is_transient());
        let client = ApiError::InvalidResponse {
            endpoint: "/x".into(),
            status: Some(404),
            message: "m".into(),
        };
        assert!(!client.is_transient());
        let keeper = |status| ApiError::TokenKeeper {
            status,
            code: "c".into(),
            message: "m".into(),
        };
        assert!(keeper(503).is_transient());
        assert!(keeper(429).is_transient());
        assert!(!keeper(401).is_transient());
        assert!(!keeper(404).is_transient());
        assert!(keeper(404).to_string().contains("404 (c): m"));
    }
}
