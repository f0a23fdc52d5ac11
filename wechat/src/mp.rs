//! Mini-program legacy `encryptedData` decryption (user info, phone number, share info).
//!
//! AES-128-CBC with key = base64(session_key) (16 bytes), IV = base64(iv) (16 bytes), PKCS#7
//! padding with the AES block (16 bytes). The plaintext is JSON whose `watermark.appid` must be
//! the mini-program's own appid.
//!
//! Nothing in this module panics on any input: every malformed input is an [`MpCryptoError`]
//! carrying the official WXBizDataCrypt sample's error code.

use aes::Aes128;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cbc::cipher::block_padding::Pkcs7;
use cbc::cipher::{BlockDecryptMut, KeyIvInit};
use serde_json::Value;

type Aes128CbcDec = cbc::Decryptor<Aes128>;

const AES_BLOCK: usize = 16;

/// Errors of `encryptedData` decryption, each with the official sample's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MpCryptoError {
    /// -41001: the session key is not base64 of 16 bytes.
    #[error("invalid session key")]
    IllegalSessionKey,
    /// -41002: the IV is not base64 of 16 bytes.
    #[error("invalid iv")]
    IllegalIv,
    /// -41003: the ciphertext does not decrypt to a well-padded buffer.
    #[error("decrypt failed: {0}")]
    Decrypt(&'static str),
    /// -41003: the plaintext is not a JSON object with a watermark.
    #[error("decrypted data is not valid: {0}")]
    IllegalBuffer(&'static str),
    /// -41003: `watermark.appid` is not the expected appid.
    #[error("watermark appid mismatch")]
    AppIdMismatch,
    /// -41004: the encrypted data is not valid base64.
    #[error("base64 decode of encrypted data failed")]
    DecodeBase64,
}

impl MpCryptoError {
    /// The code of the official WXBizDataCrypt samples (-41001 … -41004).
    pub fn code(&self) -> i32 {
        match self {
            MpCryptoError::IllegalSessionKey => -41001,
            MpCryptoError::IllegalIv => -41002,
            MpCryptoError::Decrypt(_)
            | MpCryptoError::IllegalBuffer(_)
            | MpCryptoError::AppIdMismatch => -41003,
            MpCryptoError::DecodeBase64 => -41004,
        }
    }
}

/// The watermark every decrypted payload carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    /// The appid the data was encrypted for.
    pub appid: String,
    /// Unix time of the encryption, when present.
    pub timestamp: Option<i64>,
}

/// The commonly used fields of a decrypted payload; all optional except the watermark.
/// `raw` keeps the whole JSON object.
#[derive(Debug, Clone, PartialEq)]
pub struct MpOpenData {
    /// `openId` (user info payloads).
    pub open_id: Option<String>,
    /// `unionId` (user info payloads, when the UnionID conditions hold).
    pub union_id: Option<String>,
    /// `phoneNumber` with country code (phone payloads).
    pub phone_number: Option<String>,
    /// `purePhoneNumber` without country code (phone payloads).
    pub pure_phone_number: Option<String>,
    /// `countryCode` (phone payloads).
    pub country_code: Option<String>,
    /// `watermark`.
    pub watermark: Watermark,
    /// The whole decrypted JSON object.
    pub raw: Value,
}

fn decode_16(b64: &str, err: MpCryptoError) -> Result<[u8; 16], MpCryptoError> {
    let bytes = STANDARD.decode(b64.as_bytes()).map_err(|_| err.clone())?;
    <[u8; 16]>::try_from(bytes.as_slice()).map_err(|_| err)
}

fn string_field(value: &Value, name: &str) -> Option<String> {
    match value.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Decrypts `encryptedData` and returns the JSON object after checking `watermark.appid`.
pub fn decrypt_encrypted_data(
    appid: &str,
    session_key_b64: &str,
    iv_b64: &str,
    encrypted_data_b64: &str,
) -> Result<Value, MpCryptoError> {
    let key = decode_16(session_key_b64, MpCryptoError::IllegalSessionKey)?;
    let iv = decode_16(iv_b64, MpCryptoError::IllegalIv)?;
    let mut buf = STANDARD
        .decode(encrypted_data_b64.as_bytes())
        .map_err(|_| MpCryptoError::DecodeBase64)?;
    if buf.is_empty() || buf.len() % AES_BLOCK != 0 {
        return Err(MpCryptoError::Decrypt(
            "ciphertext length is not a positive multiple of 16",
        ));
    }
    let decryptor = Aes128CbcDec::new_from_slices(&key, &iv)
        .map_err(|_| MpCryptoError::Decrypt("invalid key or IV length"))?;
    let plain = decryptor
        .decrypt_padded_mut::<Pkcs7>(&mut buf)
        .map_err(|_| MpCryptoError::Decrypt("invalid PKCS#7 padding"))?;
    let value: Value = serde_json::from_slice(plain)
        .map_err(|_| MpCryptoError::IllegalBuffer("plaintext is not JSON"))?;
    if !value.is_object() {
        return Err(MpCryptoError::IllegalBuffer(
            "plaintext is not a JSON object",
        ));
    }
    let found = value
        .get("watermark")
        .and_then(|w| w.get("appid"))
        .and_then(Value::as_str)
        .ok_or(MpCryptoError::IllegalBuffer("watermark.appid missing"))?;
    if found != appid {
        return Err(MpCryptoError::AppIdMismatch);
    }
    Ok(value)
}

/// Decrypts `encryptedData` and extracts the commonly used fields.
pub fn decrypt_open_data(
    appid: &str,
    session_key_b64: &str,
    iv_b64: &str,
    encrypted_data_b64: &str,
) -> Result<MpOpenData, MpCryptoError> {
    let raw = decrypt_encrypted_data(appid, session_key_b64, iv_b64, encrypted_data_b64)?;
    let watermark = raw.get("watermark").cloned().unwrap_or(Value::Null);
    Ok(MpOpenData {
        open_id: string_field(&raw, "openId"),
        union_id: string_field(&raw, "unionId"),
        phone_number: string_field(&raw, "phoneNumber"),
        pure_phone_number: string_field(&raw, "purePhoneNumber"),
        country_code: string_field(&raw, "countryCode"),
        watermark: Watermark {
            appid: string_field(&watermark, "appid").unwrap_or_default(),
            timestamp: watermark.get("timestamp").and_then(Value::as_i64),
        },
        raw,
    })
}

/// What WeChat does to hand a client `encryptedData`: `plain` (the JSON with its watermark)
/// encrypted under the session key and `iv`, base64. For WeChat stand-ins and tests; the
/// service itself only decrypts.
pub fn encrypt_open_data(session_key: [u8; 16], iv: [u8; 16], plain: &str) -> String {
    use cbc::cipher::BlockEncryptMut;
    let sealed = cbc::Encryptor::<Aes128>::new(&session_key.into(), &iv.into())
        .encrypt_padded_vec_mut::<Pkcs7>(plain.as_bytes());
    STANDARD.encode(sealed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seal(key: [u8; 16], iv: [u8; 16], plain: &str) -> String {
        encrypt_open_data(key, iv, plain)
    }

    #[test]
    fn phone_payload() {
        let key = [1u8; 16];
        let iv = [2u8; 16];
        let json = r#"{"phoneNumber":"+8613800000000","purePhoneNumber":"13800000000","countryCode":"86","watermark":{"appid":"wxapp","timestamp":1700000000}}"#;
        let data = seal(key, iv, json);
        let k = STANDARD.encode(key);
        let i = STANDARD.encode(iv);
        let got = decrypt_open_data("wxapp", &k, &i, &data).expect("decrypts");
        assert_eq!(got.pure_phone_number.as_deref(), Some("13800000000"));
        assert_eq!(got.country_code.as_deref(), Some("86"));
        assert_eq!(got.watermark.timestamp, Some(1_700_000_000));
        assert_eq!(got.open_id, None);
        assert_eq!(
            decrypt_open_data("other", &k, &i, &data),
            Err(MpCryptoError::AppIdMismatch)
        );
        let no_mark = seal(key, iv, r#"{"openId":"x"}"#);
        assert_eq!(
            decrypt_open_data("wxapp", &k, &i, &no_mark).map_err(|e| e.code()),
            Err(-41003)
        );
        let not_object = seal(key, iv, "[1]");
        assert!(decrypt_encrypted_data("wxapp", &k, &i, &not_object).is_err());
    }

    #[test]
    fn bad_inputs_have_codes() {
        let k = STANDARD.encode([1u8; 16]);
        let i = STANDARD.encode([2u8; 16]);
        let short = STANDARD.encode([1u8; 15]);
        let code = |r: Result<Value, MpCryptoError>| r.map_err(|e| e.code()).err();
        assert_eq!(
            code(decrypt_encrypted_data("a", &short, &i, "AAAA")),
            Some(-41001)
        );
        assert_eq!(
            code(decrypt_encrypted_data("a", &k, &short, "AAAA")),
            Some(-41002)
        );
        assert_eq!(
            code(decrypt_encrypted_data("a", &k, &i, "!!")),
            Some(-41004)
        );
        assert_eq!(code(decrypt_encrypted_data("a", &k, &i, "")), Some(-41003));
        assert_eq!(
            code(decrypt_encrypted_data("a", &k, &i, "AAAA")),
            Some(-41003)
        );
        let block = STANDARD.encode([0u8; 16]);
        assert_eq!(
            code(decrypt_encrypted_data("a", &k, &i, &block)),
            Some(-41003)
        );
    }
}
