//! Property tests: round trips, receive-id checks, no panics on hostile input, and the JS-SDK
//! signature's indifference to a URL fragment.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use proptest::prelude::*;
use wechat::crypto::{CryptoError, MsgCrypto};
use wechat::{mp, signature};

const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";

/// Encrypts an arbitrary plaintext buffer (a multiple of 32 bytes) under `KEY` with no
/// padding, so the decryption's buffer checks see hostile plaintexts.
fn encrypt_raw(mut plain: Vec<u8>) -> String {
    let key = wechat::crypto::decode_encoding_aes_key(KEY).expect("key");
    let len = plain.len();
    let enc = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &key[..16])
        .expect("key and iv lengths")
        .encrypt_padded_mut::<NoPadding>(&mut plain, len)
        .expect("aligned")
        .to_vec();
    STANDARD.encode(enc)
}

fn key_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec(any::<[u8; 32]>(), 1).prop_map(|v| {
        // 32 random bytes -> 44 base64 characters ending in '='; the key is the first 43.
        let encoded = STANDARD.encode(v[0]);
        encoded[..43].to_owned()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encrypt_decrypt_round_trip(
        key in key_strategy(),
        token in "[A-Za-z0-9]{1,32}",
        receive_id in "\\PC{0,40}",
        msg in "\\PC{0,600}",
        random in any::<[u8; 16]>(),
        timestamp in 0u64..=4_000_000_000,
        nonce in "[0-9]{1,12}",
    ) {
        let c = MsgCrypto::new(token, &key, receive_id.clone()).expect("generated key is valid");
        let enc = c.encrypt(&msg, Some(random)).expect("encrypts");
        let d = c.decrypt_detailed(&enc).expect("decrypts");
        prop_assert_eq!(&d.message, &msg);
        prop_assert_eq!(&d.receive_id, &receive_id);
        prop_assert_eq!(d.random, random);
        prop_assert!((1..=32).contains(&d.pad_len));
        prop_assert_eq!((20 + msg.len() + receive_id.len() + usize::from(d.pad_len)) % 32, 0);

        let ts = timestamp.to_string();
        let sealed = c.seal_reply(&msg, &ts, &nonce, None).expect("seals");
        prop_assert_eq!(
            c.verify_and_decrypt(sealed.msg_signature(), &ts, &nonce, sealed.encrypt()).expect("verifies"),
            msg
        );
    }

    #[test]
    fn receive_id_mismatch_is_detected(
        a in "[a-z0-9]{1,20}",
        b in "[a-z0-9]{1,20}",
        msg in "\\PC{0,100}",
    ) {
        prop_assume!(a != b);
        let ca = MsgCrypto::new("t", KEY, a).expect("key");
        let cb = MsgCrypto::new("t", KEY, b).expect("key");
        let enc = cb.encrypt(&msg, None).expect("encrypts");
        prop_assert_eq!(ca.decrypt(&enc), Err(CryptoError::ReceiveIdMismatch));
    }

    #[test]
    fn decrypt_never_panics_on_strings(s in "\\PC{0,400}") {
        let c = MsgCrypto::new("t", KEY, "wx5823bf96d3bd56c7").expect("key");
        let _ = c.decrypt(&s);
        let _ = c.verify_and_decrypt("0000000000000000000000000000000000000000", "1", "2", &s);
        let _ = MsgCrypto::new("t", &s, "id");
        let _ = mp::decrypt_encrypted_data("wx", &s, &s, &s);
    }

    #[test]
    fn decrypt_never_panics_on_base64_of_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let c = MsgCrypto::new("t", KEY, "wx5823bf96d3bd56c7").expect("key");
        let b64 = STANDARD.encode(&bytes);
        let _ = c.decrypt(&b64);
        let key16 = STANDARD.encode([7u8; 16]);
        let _ = mp::decrypt_encrypted_data("wx", &key16, &key16, &b64);
    }

    #[test]
    fn tampered_ciphertext_fails_the_signature_and_never_panics(
        msg in "\\PC{0,300}",
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        truncate in any::<Option<prop::sample::Index>>(),
    ) {
        let c = MsgCrypto::new("t", KEY, "wx5823bf96d3bd56c7").expect("key");
        let enc = c.encrypt(&msg, None).expect("encrypts");
        let mut raw = STANDARD.decode(&enc).expect("own base64");
        for (idx, mask) in &flips {
            let i = idx.index(raw.len());
            raw[i] ^= mask;
        }
        if let Some(t) = truncate {
            let keep = t.index(raw.len());
            raw.truncate(keep);
        }
        let tampered = STANDARD.encode(&raw);
        prop_assume!(tampered != enc);
        // The signature of the original text no longer matches.
        let original_sig = c.msg_signature("1", "2", &enc);
        prop_assert_eq!(
            c.verify_and_decrypt(&original_sig, "1", "2", &tampered),
            Err(CryptoError::ValidateSignature)
        );
        // With a valid signature over the tampered text only the decryption can object. CBC has
        // no integrity of its own (the signature provides it), so a flip may also survive as a
        // different but well-formed message; what matters is that nothing panics and every
        // failure carries a decrypt-side code.
        let sig = c.msg_signature("1", "2", &tampered);
        if let Err(e) = c.verify_and_decrypt(&sig, "1", "2", &tampered) {
            prop_assert!((-40010..=-40005).contains(&e.code()), "{:?}", e);
        }
    }

    #[test]
    fn hostile_plaintexts_never_panic(
        blocks in proptest::collection::vec(any::<[u8; 32]>(), 1..8),
        len_field in any::<Option<u32>>(),
        pad in 0u8..=40,
    ) {
        let mut plain: Vec<u8> = blocks.concat();
        let n = plain.len();
        if let Some(len) = len_field {
            plain[16..20].copy_from_slice(&len.to_be_bytes());
        }
        // Often give it a plausible pad so the length and UTF-8 checks are reached.
        let p = usize::from(pad.min(32));
        if p > 0 {
            for b in &mut plain[n - p..] {
                *b = pad;
            }
        }
        let c = MsgCrypto::new("t", KEY, "wx5823bf96d3bd56c7").expect("key");
        match c.decrypt_detailed(&encrypt_raw(plain)) {
            Ok(d) => prop_assert_eq!(d.receive_id, "wx5823bf96d3bd56c7"),
            Err(e) => prop_assert!(matches!(
                e,
                CryptoError::IllegalBuffer(_) | CryptoError::ReceiveIdMismatch
            ), "{:?}", e),
        }
    }

    #[test]
    fn jsapi_signature_ignores_the_fragment(
        ticket in "[A-Za-z0-9_-]{1,100}",
        noncestr in "[A-Za-z0-9]{1,32}",
        timestamp in 0u64..=4_000_000_000,
        url in "https?://[a-z0-9.]{1,20}(/[A-Za-z0-9._~%/-]{0,30})?(\\?[A-Za-z0-9=&%._-]{0,30})?",
        fragment in "\\PC{0,40}",
    ) {
        let ts = timestamp.to_string();
        let bare = signature::jsapi_signature(&ticket, &noncestr, &ts, &url);
        let with_fragment = format!("{url}#{fragment}");
        prop_assert_eq!(
            signature::jsapi_signature(&ticket, &noncestr, &ts, &with_fragment),
            bare.clone()
        );
        prop_assert!(signature::verify_jsapi_signature(&ticket, &noncestr, &ts, &with_fragment, &bare));
        // The part before the fragment is signed: changing it changes the signature.
        let other = format!("{url}x#{fragment}");
        prop_assert_ne!(signature::jsapi_signature(&ticket, &noncestr, &ts, &other), bare);
    }
}
