//! What a failed WeChat lookup means for the caller: retry later ([`LookupError::Transient`]) or
//! give up until someone changes the configuration ([`LookupError::Permanent`]); and which
//! WeChat answers mean "no such user / contact" (not an error at all).

use wechat::api::ApiError;

/// A lookup that did not produce an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// WeChat or the gateway is down, busy or rate-limiting, or a token could not be had right
    /// now (transport failures, 5xx, errcode -1 / 45011, a token keeper that is busy): the same
    /// lookup may succeed later.
    #[error("WeChat lookup failed for now, retry later: {source}")]
    Transient {
        /// What the client saw (tokens and secrets redacted).
        source: ApiError,
    },
    /// It will fail again until the configuration changes: an unknown or secret-less app, a
    /// tenant asking for another tenant's app, a wrong internal key, an app not authorised for
    /// the API (48001), a daily quota used up (45009), a malformed id.
    #[error("WeChat lookup cannot succeed as configured: {source}")]
    Permanent {
        /// What the client saw (tokens and secrets redacted).
        source: ApiError,
    },
}

impl LookupError {
    /// `true` when retrying later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, LookupError::Transient { .. })
    }

    /// The underlying client error (its `errcode()` when WeChat answered one).
    pub fn api_error(&self) -> &ApiError {
        match self {
            LookupError::Transient { source } | LookupError::Permanent { source } => source,
        }
    }

    /// Metrics label: `transient` or `permanent`.
    pub(crate) fn outcome(&self) -> &'static str {
        match self {
            LookupError::Transient { .. } => "transient",
            LookupError::Permanent { .. } => "permanent",
        }
    }
}

/// WeChat says the user or contact does not exist for this app: 40003 (openid not a user of
/// this Official Account), 84061 (not an external contact of the corp).
pub(crate) fn is_not_found(e: &ApiError) -> bool {
    matches!(e.errcode(), Some(40003 | 84061))
}

impl From<ApiError> for LookupError {
    fn from(source: ApiError) -> Self {
        if source.is_transient() {
            LookupError::Transient { source }
        } else {
            LookupError::Permanent { source }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let of = |code| LookupError::from(ApiError::from_errcode(code, "m"));
        assert!(of(-1).is_transient());
        assert!(of(45011).is_transient());
        assert!(!of(48001).is_transient());
        assert!(!of(40013).is_transient());
        assert!(!of(45009).is_transient());
        let keeper = |status| {
            LookupError::from(ApiError::TokenKeeper {
                status,
                code: "c".into(),
                message: "m".into(),
            })
        };
        assert!(keeper(503).is_transient());
        assert!(!keeper(401).is_transient());
        assert!(!keeper(404).is_transient());
        assert!(!keeper(403).is_transient());
        let transport = LookupError::from(ApiError::Transport {
            endpoint: "/x".into(),
            message: "refused".into(),
        });
        assert!(transport.is_transient());
        assert_eq!(transport.outcome(), "transient");
        assert!(is_not_found(&ApiError::from_errcode(40003, "")));
        assert!(is_not_found(&ApiError::from_errcode(84061, "")));
        assert!(!is_not_found(&ApiError::from_errcode(40096, "")));
        assert_eq!(of(84061).api_error().errcode(), Some(84061));
    }
}
