//! The legacy mini-program phone path: a `getPhoneNumber` answer of older clients,
//! `{encryptedData, iv}` encrypted under the session key of the user's login, decrypted and
//! checked here — watermarked for this mini-program, at a time within the session it is sent
//! in — into the verified number. Pure: the caller loads the session key and publishes.

use wechat::mp::{self, MpCryptoError};

use crate::wechat_api::{e164, MpPhone};

/// Clock skew tolerated around the session's window, in seconds.
pub const SKEW_SECS: i64 = 300;

/// Longest `encryptedData` accepted (base64 characters; a phone payload is ~250).
pub const MAX_DATA_LEN: usize = 4_096;

/// Why an `encryptedData` phone answer was refused, each naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegacyPhoneError {
    /// Empty, too long or not base64.
    #[error("encrypted_data: {0}")]
    BadData(String),
    /// Not base64 of 16 bytes.
    #[error("iv: base64 of 16 bytes expected")]
    BadIv,
    /// Does not decrypt to a watermarked JSON object under this session's key.
    #[error(
        "encrypted_data: does not decrypt under this session's key ({0}); log in again and retry"
    )]
    NotThisSession(i32),
    /// Watermarked for another mini-program.
    #[error("encrypted_data: watermarked for another mini-program")]
    OtherApp,
    /// Watermarked outside the session (before its login, or in the future).
    #[error("encrypted_data: watermarked at {at}, outside this session ({from}–{to}); ask for the number again")]
    Stale { at: i64, from: i64, to: i64 },
    /// A valid payload without a phone number (user info, share info).
    #[error("encrypted_data: carries no phone number")]
    NoPhone,
}

impl LegacyPhoneError {
    /// The stable error code of the answer.
    pub fn code(&self) -> &'static str {
        match self {
            LegacyPhoneError::BadData(_) => "invalid_encrypted_data",
            LegacyPhoneError::BadIv => "invalid_iv",
            LegacyPhoneError::NotThisSession(_) => "undecryptable",
            LegacyPhoneError::OtherApp => "wrong_app",
            LegacyPhoneError::Stale { .. } => "stale_encrypted_data",
            LegacyPhoneError::NoPhone => "no_phone_number",
        }
    }
}

/// The verified number in `data`, encrypted for `appid` under `session_key` (base64) with
/// `iv`, watermarked between `session_from` and `now` (unix seconds, [`SKEW_SECS`] either way).
pub fn decide(
    appid: &str,
    session_key: &str,
    iv: &str,
    data: &str,
    session_from: i64,
    now: i64,
) -> Result<MpPhone, LegacyPhoneError> {
    if data.is_empty() || data.len() > MAX_DATA_LEN {
        return Err(LegacyPhoneError::BadData(format!(
            "1–{MAX_DATA_LEN} base64 characters"
        )));
    }
    let open = mp::decrypt_open_data(appid, session_key, iv, data).map_err(|e| match e {
        MpCryptoError::IllegalIv => LegacyPhoneError::BadIv,
        MpCryptoError::DecodeBase64 => LegacyPhoneError::BadData("not base64".into()),
        MpCryptoError::AppIdMismatch => LegacyPhoneError::OtherApp,
        other => LegacyPhoneError::NotThisSession(other.code()),
    })?;
    let (from, to) = (session_from - SKEW_SECS, now + SKEW_SECS);
    match open.watermark.timestamp {
        Some(at) if (from..=to).contains(&at) => {}
        at => {
            return Err(LegacyPhoneError::Stale {
                at: at.unwrap_or(0),
                from,
                to,
            })
        }
    }
    let country = open.country_code.as_deref().unwrap_or_default();
    let pure = open.pure_phone_number.as_deref().unwrap_or_default();
    let e164 = e164(country, pure).ok_or(LegacyPhoneError::NoPhone)?;
    Ok(MpPhone {
        e164,
        country_code: country.trim_start_matches('+').to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;

    const KEY: [u8; 16] = [7; 16];
    const IV: [u8; 16] = [9; 16];

    fn sealed(json: &str) -> String {
        mp::encrypt_open_data(KEY, IV, json)
    }

    fn run(data: &str, from: i64, now: i64) -> Result<MpPhone, LegacyPhoneError> {
        decide(
            "wxapp",
            &STANDARD.encode(KEY),
            &STANDARD.encode(IV),
            data,
            from,
            now,
        )
    }

    #[test]
    fn phone_within_the_session_is_verified() {
        let data = sealed(
            r#"{"phoneNumber":"13800138000","purePhoneNumber":"13800138000","countryCode":"86","watermark":{"appid":"wxapp","timestamp":1700000100}}"#,
        );
        let p = run(&data, 1_700_000_000, 1_700_000_200).expect("verified");
        assert_eq!(p.e164, "+8613800138000");
        assert_eq!(p.country_code, "86");
    }

    #[test]
    fn refusals_name_their_field() {
        let at = |ts: i64| {
            sealed(&format!(
                r#"{{"purePhoneNumber":"13800138000","countryCode":"86","watermark":{{"appid":"wxapp","timestamp":{ts}}}}}"#
            ))
        };
        // Before the session's login (beyond the skew), and in the future.
        let e = run(&at(1_699_999_000), 1_700_000_000, 1_700_000_200).unwrap_err();
        assert_eq!(e.code(), "stale_encrypted_data");
        let e = run(&at(1_700_001_000), 1_700_000_000, 1_700_000_200).unwrap_err();
        assert_eq!(e.code(), "stale_encrypted_data");
        // Within the skew either way.
        assert!(run(&at(1_699_999_800), 1_700_000_000, 1_700_000_200).is_ok());
        let other = sealed(r#"{"watermark":{"appid":"wxother","timestamp":1700000100}}"#);
        assert_eq!(
            run(&other, 1_700_000_000, 1_700_000_200).unwrap_err(),
            LegacyPhoneError::OtherApp
        );
        let info =
            sealed(r#"{"openId":"o1","watermark":{"appid":"wxapp","timestamp":1700000100}}"#);
        assert_eq!(
            run(&info, 1_700_000_000, 1_700_000_200).unwrap_err(),
            LegacyPhoneError::NoPhone
        );
        let e = run("!!", 0, 0).unwrap_err();
        assert!(e.to_string().starts_with("encrypted_data:"), "{e}");
        assert_eq!(run("", 0, 0).unwrap_err().code(), "invalid_encrypted_data");
        let long = "A".repeat(MAX_DATA_LEN + 4);
        assert_eq!(
            run(&long, 0, 0).unwrap_err().code(),
            "invalid_encrypted_data"
        );
        let e = decide("wxapp", &STANDARD.encode(KEY), "AAAA", &info, 0, 0).unwrap_err();
        assert_eq!(e, LegacyPhoneError::BadIv);
        let e = decide(
            "wxapp",
            &STANDARD.encode([1u8; 16]),
            &STANDARD.encode(IV),
            &info,
            0,
            0,
        )
        .unwrap_err();
        assert_eq!(e.code(), "undecryptable");
        assert!(e.to_string().starts_with("encrypted_data:"), "{e}");
    }
}
