//! WXBizMsgCrypt: the AES message encryption of Official Account, mini-program and WeCom
//! callbacks.
//!
//! - Key: `base64_decode(EncodingAESKey + "=")`, 43 characters in, 32 bytes out. Real keys have
//!   non-zero trailing bits, so the decoder allows them.
//! - Cipher: AES-256-CBC, IV = the first 16 bytes of the key, no padding inside the cipher.
//! - Padding: PKCS#7 with a 32-byte block (1..=32 pad bytes, a full block when aligned), added and
//!   stripped here.
//! - Plaintext: `random(16) ‖ msg_len (u32 big-endian) ‖ msg ‖ receive_id`, where the receive id
//!   is the appid (OA/MP), the corpid (WeCom) or the suite id (third-party suites).
//!
//! Nothing in this module panics on any input: every malformed ciphertext, key or buffer is a
//! [`CryptoError`] carrying the official sample's error code.

use aes::Aes256;
use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::Engine;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};

use crate::signature;

type Aes256CbcEnc = cbc::Encryptor<Aes256>;
type Aes256CbcDec = cbc::Decryptor<Aes256>;

/// PKCS#7 block size used by WXBizMsgCrypt (not the AES block size).
pub const PAD_BLOCK: usize = 32;
/// Length of an EncodingAESKey in characters.
pub const ENCODING_AES_KEY_LEN: usize = 43;
/// Length of the random prefix of the plaintext.
pub const RANDOM_LEN: usize = 16;
/// Length of the random prefix plus the big-endian message length.
const HEADER_LEN: usize = RANDOM_LEN + 4;

/// Decoder for the EncodingAESKey: standard alphabet, canonical padding, trailing bits allowed.
const KEY_ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_allow_trailing_bits(true),
);

/// Errors of the message crypto, each with the code of the official WXBizMsgCrypt samples.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// -40001: the signature does not match.
    #[error("signature check failed")]
    ValidateSignature,
    /// -40002: the XML or JSON body could not be parsed.
    #[error("XML/JSON parse failed: {0}")]
    ParseBody(&'static str),
    /// -40003: computing the SHA-1 signature failed.
    #[error("SHA-1 signature computation failed")]
    ComputeSignature,
    /// -40004: the EncodingAESKey is not 43 base64 characters decoding to 32 bytes.
    #[error("invalid EncodingAESKey: {0}")]
    IllegalAesKey(&'static str),
    /// -40005: the decrypted receive id is not the configured appid / corpid / suite id.
    #[error("receive id mismatch")]
    ReceiveIdMismatch,
    /// -40006: AES encryption failed.
    #[error("AES encrypt failed: {0}")]
    EncryptAes(&'static str),
    /// -40007: AES decryption failed (ciphertext empty or not a multiple of the block size).
    #[error("AES decrypt failed: {0}")]
    DecryptAes(&'static str),
    /// -40008: the decrypted buffer is malformed (padding, length field, UTF-8).
    #[error("decrypted buffer invalid: {0}")]
    IllegalBuffer(&'static str),
    /// -40009: base64 encoding failed.
    #[error("base64 encode failed")]
    EncodeBase64,
    /// -40010: the ciphertext is not valid base64.
    #[error("base64 decode failed")]
    DecodeBase64,
    /// -40011: building the XML/JSON reply failed.
    #[error("building XML/JSON reply failed: {0}")]
    GenReturn(&'static str),
}

impl CryptoError {
    /// The error code of the official WXBizMsgCrypt samples (-40001 … -40011).
    pub fn code(&self) -> i32 {
        match self {
            CryptoError::ValidateSignature => -40001,
            CryptoError::ParseBody(_) => -40002,
            CryptoError::ComputeSignature => -40003,
            CryptoError::IllegalAesKey(_) => -40004,
            CryptoError::ReceiveIdMismatch => -40005,
            CryptoError::EncryptAes(_) => -40006,
            CryptoError::DecryptAes(_) => -40007,
            CryptoError::IllegalBuffer(_) => -40008,
            CryptoError::EncodeBase64 => -40009,
            CryptoError::DecodeBase64 => -40010,
            CryptoError::GenReturn(_) => -40011,
        }
    }
}

/// A decrypted message with the parts of the plaintext layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The 16 random bytes that prefix the plaintext.
    pub random: [u8; RANDOM_LEN],
    /// The message (XML or JSON text).
    pub message: String,
    /// The receive id found after the message.
    pub receive_id: String,
    /// Number of PKCS#7 pad bytes that were stripped (1..=32).
    pub pad_len: u8,
}

/// Which JSON field names an encrypted JSON reply uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonReplyStyle {
    /// WeCom: `{"encrypt","msgsignature","timestamp","nonce"}`.
    WeCom,
    /// Mini-program: `{"Encrypt","MsgSignature","TimeStamp","Nonce"}`.
    MiniProgram,
}

/// An encrypted, signed reply ready to be rendered as XML or JSON.
///
/// Built by [`MsgCrypto::seal_reply`], which validates the timestamp (a canonical decimal integer)
/// and the nonce (printable ASCII without `]]>`), so rendering cannot produce broken markup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedReply {
    encrypt: String,
    msg_signature: String,
    timestamp: String,
    timestamp_num: u64,
    nonce: String,
}

impl EncryptedReply {
    /// The base64 ciphertext.
    pub fn encrypt(&self) -> &str {
        &self.encrypt
    }

    /// The `msg_signature` over `[token, timestamp, nonce, encrypt]`.
    pub fn msg_signature(&self) -> &str {
        &self.msg_signature
    }

    /// The timestamp as signed.
    pub fn timestamp(&self) -> &str {
        &self.timestamp
    }

    /// The nonce as signed.
    pub fn nonce(&self) -> &str {
        &self.nonce
    }

    /// `<xml><Encrypt><![CDATA[…]]></Encrypt><MsgSignature><![CDATA[…]]></MsgSignature>
    /// <TimeStamp>…</TimeStamp><Nonce><![CDATA[…]]></Nonce></xml>` on one line.
    pub fn to_xml(&self) -> String {
        format!(
            "<xml><Encrypt><![CDATA[{}]]></Encrypt><MsgSignature><![CDATA[{}]]></MsgSignature>\
             <TimeStamp>{}</TimeStamp><Nonce><![CDATA[{}]]></Nonce></xml>",
            self.encrypt, self.msg_signature, self.timestamp, self.nonce
        )
    }

    /// The JSON form; the timestamp is a JSON number.
    pub fn to_json(&self, style: JsonReplyStyle) -> Result<String, CryptoError> {
        let (k_encrypt, k_signature, k_timestamp, k_nonce) = match style {
            JsonReplyStyle::WeCom => ("encrypt", "msgsignature", "timestamp", "nonce"),
            JsonReplyStyle::MiniProgram => ("Encrypt", "MsgSignature", "TimeStamp", "Nonce"),
        };
        let mut map = serde_json::Map::with_capacity(4);
        map.insert(k_encrypt.to_owned(), self.encrypt.clone().into());
        map.insert(k_signature.to_owned(), self.msg_signature.clone().into());
        map.insert(k_timestamp.to_owned(), self.timestamp_num.into());
        map.insert(k_nonce.to_owned(), self.nonce.clone().into());
        serde_json::to_string(&serde_json::Value::Object(map))
            .map_err(|_| CryptoError::GenReturn("JSON serialization failed"))
    }
}

/// Message crypto for one app: its token, AES key and receive id.
#[derive(Clone)]
pub struct MsgCrypto {
    token: String,
    key: [u8; 32],
    receive_id: String,
}

impl std::fmt::Debug for MsgCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token or the key.
        f.debug_struct("MsgCrypto")
            .field("receive_id", &self.receive_id)
            .finish_non_exhaustive()
    }
}

/// Decodes an EncodingAESKey (43 characters) into the 32-byte AES key.
pub fn decode_encoding_aes_key(encoding_aes_key: &str) -> Result<[u8; 32], CryptoError> {
    if encoding_aes_key.len() != ENCODING_AES_KEY_LEN {
        return Err(CryptoError::IllegalAesKey("must be exactly 43 characters"));
    }
    let mut padded = String::with_capacity(ENCODING_AES_KEY_LEN + 1);
    padded.push_str(encoding_aes_key);
    padded.push('=');
    let bytes = KEY_ENGINE
        .decode(padded.as_bytes())
        .map_err(|_| CryptoError::IllegalAesKey("not base64"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| CryptoError::IllegalAesKey("does not decode to 32 bytes"))
}

/// Checks a timestamp for a reply: ASCII digits in canonical form (no sign, no leading zero).
fn parse_reply_timestamp(timestamp: &str) -> Result<u64, CryptoError> {
    let bad = CryptoError::GenReturn("timestamp must be a canonical decimal integer");
    if timestamp.is_empty() || !timestamp.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad);
    }
    let n: u64 = timestamp.parse().map_err(|_| bad.clone())?;
    if n.to_string() != timestamp {
        return Err(bad);
    }
    Ok(n)
}

/// Checks a nonce for a reply: non-empty printable ASCII without `]]>` (it goes into CDATA).
fn check_reply_nonce(nonce: &str) -> Result<(), CryptoError> {
    if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_graphic()) || nonce.contains("]]>") {
        return Err(CryptoError::GenReturn(
            "nonce must be non-empty printable ASCII without ]]>",
        ));
    }
    Ok(())
}

impl MsgCrypto {
    /// Builds the crypto for one app. `encoding_aes_key` is the 43-character EncodingAESKey;
    /// `receive_id` is the appid (OA/MP), corpid (WeCom) or suite id (third-party suite).
    pub fn new(
        token: impl Into<String>,
        encoding_aes_key: &str,
        receive_id: impl Into<String>,
    ) -> Result<Self, CryptoError> {
        let key = decode_encoding_aes_key(encoding_aes_key)?;
        Ok(MsgCrypto {
            token: token.into(),
            key,
            receive_id: receive_id.into(),
        })
    }

    /// The configured receive id.
    pub fn receive_id(&self) -> &str {
        &self.receive_id
    }

    /// The configured token.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn iv(&self) -> [u8; 16] {
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&self.key[..16]);
        iv
    }

    /// Checks the plain `signature` of a GET verification or plaintext push (constant time).
    pub fn verify_signature(&self, signature_hex: &str, timestamp: &str, nonce: &str) -> bool {
        signature::verify_signature(&self.token, timestamp, nonce, signature_hex)
    }

    /// `msg_signature` over `[token, timestamp, nonce, encrypt]`.
    pub fn msg_signature(&self, timestamp: &str, nonce: &str, encrypt: &str) -> String {
        signature::msg_signature(&self.token, timestamp, nonce, encrypt)
    }

    /// Checks a `msg_signature` in constant time.
    pub fn verify_msg_signature(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt: &str,
    ) -> Result<(), CryptoError> {
        if signature::verify_msg_signature(&self.token, timestamp, nonce, encrypt, msg_signature) {
            Ok(())
        } else {
            Err(CryptoError::ValidateSignature)
        }
    }

    /// Decrypts the base64 `Encrypt` value without looking at the receive id.
    fn open(&self, encrypt_b64: &str) -> Result<Decrypted, CryptoError> {
        let mut buf = STANDARD
            .decode(encrypt_b64.as_bytes())
            .map_err(|_| CryptoError::DecodeBase64)?;
        if buf.is_empty() || buf.len() % PAD_BLOCK != 0 {
            return Err(CryptoError::DecryptAes(
                "ciphertext length is not a positive multiple of 32",
            ));
        }
        let decryptor = Aes256CbcDec::new_from_slices(&self.key, &self.iv())
            .map_err(|_| CryptoError::DecryptAes("invalid key or IV length"))?;
        let plain = decryptor
            .decrypt_padded_mut::<NoPadding>(&mut buf)
            .map_err(|_| CryptoError::DecryptAes("ciphertext is not block aligned"))?;

        // PKCS#7 with a 32-byte block.
        let pad = match plain.last() {
            Some(&p) if (1..=PAD_BLOCK as u8).contains(&p) => p,
            _ => return Err(CryptoError::IllegalBuffer("invalid padding byte")),
        };
        let content_len = plain.len() - usize::from(pad); // pad <= 32 <= plain.len()
        let (content, padding) = plain.split_at(content_len);
        if padding.iter().any(|&b| b != pad) {
            return Err(CryptoError::IllegalBuffer("inconsistent padding"));
        }

        if content.len() < HEADER_LEN {
            return Err(CryptoError::IllegalBuffer(
                "plaintext shorter than its header",
            ));
        }
        let (random_part, rest) = content.split_at(RANDOM_LEN);
        let (len_part, body) = rest.split_at(4);
        let mut random = [0u8; RANDOM_LEN];
        random.copy_from_slice(random_part);
        let mut len_bytes = [0u8; 4];
        len_bytes.copy_from_slice(len_part);
        let msg_len = usize::try_from(u32::from_be_bytes(len_bytes))
            .map_err(|_| CryptoError::IllegalBuffer("message length overflows"))?;
        if msg_len > body.len() {
            return Err(CryptoError::IllegalBuffer(
                "message length exceeds the plaintext",
            ));
        }
        let (msg, receive_id) = body.split_at(msg_len);
        let message = std::str::from_utf8(msg)
            .map_err(|_| CryptoError::IllegalBuffer("message is not UTF-8"))?
            .to_owned();
        let receive_id = std::str::from_utf8(receive_id)
            .map_err(|_| CryptoError::IllegalBuffer("receive id is not UTF-8"))?
            .to_owned();
        Ok(Decrypted {
            random,
            message,
            receive_id,
            pad_len: pad,
        })
    }

    /// Decrypts and returns every part of the plaintext; the receive id must equal the
    /// configured one.
    pub fn decrypt_detailed(&self, encrypt_b64: &str) -> Result<Decrypted, CryptoError> {
        let receive_id = self.receive_id.as_str();
        self.decrypt_with(encrypt_b64, |found| found == receive_id)
    }

    /// Decrypts and lets `accept` decide whether the decrypted receive id is acceptable (for
    /// example a third-party suite whose data callbacks carry the authorizing corp's id).
    pub fn decrypt_with(
        &self,
        encrypt_b64: &str,
        accept: impl FnOnce(&str) -> bool,
    ) -> Result<Decrypted, CryptoError> {
        let decrypted = self.open(encrypt_b64)?;
        if accept(&decrypted.receive_id) {
            Ok(decrypted)
        } else {
            Err(CryptoError::ReceiveIdMismatch)
        }
    }

    /// Decrypts the base64 `Encrypt` value into the message text. The receive id must equal
    /// the configured one. The signature is not checked here: see
    /// [`verify_and_decrypt`](Self::verify_and_decrypt).
    pub fn decrypt(&self, encrypt_b64: &str) -> Result<String, CryptoError> {
        self.decrypt_detailed(encrypt_b64).map(|d| d.message)
    }

    /// Checks `msg_signature` (constant time), then decrypts.
    pub fn verify_and_decrypt(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        encrypt_b64: &str,
    ) -> Result<String, CryptoError> {
        self.verify_msg_signature(msg_signature, timestamp, nonce, encrypt_b64)?;
        self.decrypt(encrypt_b64)
    }

    /// WeCom URL verification (GET): checks `msg_signature` over the (URL-decoded) `echostr`
    /// and returns the decrypted message to answer with, as is.
    pub fn decrypt_echostr(
        &self,
        msg_signature: &str,
        timestamp: &str,
        nonce: &str,
        echostr: &str,
    ) -> Result<String, CryptoError> {
        self.verify_and_decrypt(msg_signature, timestamp, nonce, echostr)
    }

    /// Encrypts `msg` for the configured receive id and returns the base64 ciphertext.
    /// `random16` fixes the random prefix (tests); `None` draws it from the thread RNG.
    ///
    /// Fails only for a message longer than `u32::MAX` bytes.
    pub fn encrypt(&self, msg: &str, random16: Option<[u8; 16]>) -> Result<String, CryptoError> {
        let random = random16.unwrap_or_else(rand::random);
        let msg_len = u32::try_from(msg.len())
            .map_err(|_| CryptoError::EncryptAes("message longer than 4 GiB"))?;
        let content_len = HEADER_LEN + msg.len() + self.receive_id.len();
        let pad = PAD_BLOCK - content_len % PAD_BLOCK; // 1..=32
        let mut buf = Vec::with_capacity(content_len + pad);
        buf.extend_from_slice(&random);
        buf.extend_from_slice(&msg_len.to_be_bytes());
        buf.extend_from_slice(msg.as_bytes());
        buf.extend_from_slice(self.receive_id.as_bytes());
        // pad <= 32, so the cast is lossless.
        buf.resize(content_len + pad, pad as u8);

        let total = buf.len();
        let encryptor = Aes256CbcEnc::new_from_slices(&self.key, &self.iv())
            .map_err(|_| CryptoError::EncryptAes("invalid key or IV length"))?;
        let ciphertext = encryptor
            .encrypt_padded_mut::<NoPadding>(&mut buf, total)
            .map_err(|_| CryptoError::EncryptAes("buffer is not block aligned"))?;
        Ok(STANDARD.encode(ciphertext))
    }

    /// Encrypts and signs a reply. `timestamp` must be a canonical decimal integer and `nonce`
    /// printable ASCII without `]]>` (usually the callback's own nonce).
    pub fn seal_reply(
        &self,
        reply: &str,
        timestamp: &str,
        nonce: &str,
        random16: Option<[u8; 16]>,
    ) -> Result<EncryptedReply, CryptoError> {
        let timestamp_num = parse_reply_timestamp(timestamp)?;
        check_reply_nonce(nonce)?;
        let encrypt = self.encrypt(reply, random16)?;
        let msg_signature = self.msg_signature(timestamp, nonce, &encrypt);
        Ok(EncryptedReply {
            encrypt,
            msg_signature,
            timestamp: timestamp.to_owned(),
            timestamp_num,
            nonce: nonce.to_owned(),
        })
    }

    /// Encrypts a passive reply and renders the XML envelope (OA, WeCom, MP XML).
    pub fn encrypt_reply_xml(
        &self,
        reply: &str,
        timestamp: &str,
        nonce: &str,
    ) -> Result<String, CryptoError> {
        Ok(self.seal_reply(reply, timestamp, nonce, None)?.to_xml())
    }

    /// Encrypts a passive reply and renders the JSON envelope (WeCom or mini-program JSON).
    pub fn encrypt_reply_json(
        &self,
        reply: &str,
        timestamp: &str,
        nonce: &str,
        style: JsonReplyStyle,
    ) -> Result<String, CryptoError> {
        self.seal_reply(reply, timestamp, nonce, None)?
            .to_json(style)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

    #[test]
    fn key_length_is_enforced() {
        assert_eq!(
            MsgCrypto::new("t", &KEY[..42], "id").map(|_| ()),
            Err(CryptoError::IllegalAesKey("must be exactly 43 characters"))
        );
        assert!(MsgCrypto::new("t", &format!("{KEY}A"), "id").is_err());
        assert!(MsgCrypto::new("t", "abcdefghijklmnopqrstuvwxyz0123456789ABCDE*G", "id").is_err());
        // Multi-byte characters never reach the decoder as a 43-byte key.
        assert!(MsgCrypto::new("t", "é", "id").is_err());
    }

    #[test]
    fn non_canonical_key_bits_are_accepted() {
        // 'G' at the end leaves non-zero trailing bits.
        let key = decode_encoding_aes_key(KEY).expect("key decodes");
        assert_eq!(key.len(), 32);
    }

    #[test]
    fn codes_are_official() {
        let all = [
            (CryptoError::ValidateSignature, -40001),
            (CryptoError::ParseBody(""), -40002),
            (CryptoError::ComputeSignature, -40003),
            (CryptoError::IllegalAesKey(""), -40004),
            (CryptoError::ReceiveIdMismatch, -40005),
            (CryptoError::EncryptAes(""), -40006),
            (CryptoError::DecryptAes(""), -40007),
            (CryptoError::IllegalBuffer(""), -40008),
            (CryptoError::EncodeBase64, -40009),
            (CryptoError::DecodeBase64, -40010),
            (CryptoError::GenReturn(""), -40011),
        ];
        for (err, code) in all {
            assert_eq!(err.code(), code, "{err}");
        }
    }

    #[test]
    fn round_trip_and_aligned_pad() {
        let c = MsgCrypto::new("token", KEY, "wx0123456789abcdef").expect("crypto");
        // 16 + 4 + 8 + 18 = 46 -> pad 18; 16 + 4 + 26 + 18 = 64 -> full 32-byte pad.
        for msg in ["12345678", "abcdefghijklmnopqrstuvwxyz"] {
            let enc = c.encrypt(msg, Some([7; 16])).expect("encrypt");
            let d = c.decrypt_detailed(&enc).expect("decrypt");
            assert_eq!(d.message, msg);
            assert_eq!(d.random, [7; 16]);
        }
        let enc = c
            .encrypt("abcdefghijklmnopqrstuvwxyz", None)
            .expect("encrypt");
        assert_eq!(c.decrypt_detailed(&enc).expect("decrypt").pad_len, 32);
    }

    #[test]
    fn reply_validation() {
        let c = MsgCrypto::new("token", KEY, "wx0123456789abcdef").expect("crypto");
        assert!(c.encrypt_reply_xml("x", "0123", "n").is_err());
        assert!(c.encrypt_reply_xml("x", "", "n").is_err());
        assert!(c.encrypt_reply_xml("x", "-1", "n").is_err());
        assert!(c.encrypt_reply_xml("x", "1", "a]]>b").is_err());
        assert!(c.encrypt_reply_xml("x", "1", "a b").is_err());
        assert!(c.encrypt_reply_xml("x", "1", "").is_err());
        assert!(c.encrypt_reply_xml("x", "0", "n").is_ok());
    }

    #[test]
    fn debug_hides_secrets() {
        let c = MsgCrypto::new("secret-token", KEY, "wxid").expect("crypto");
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret-token"));
        assert!(shown.contains("wxid"));
    }
}
