//! Arbitrary input into `MsgCrypto::decrypt` / `verify_and_decrypt`, three ways:
//! as the base64 text itself, as raw ciphertext bytes, and as a plaintext buffer encrypted
//! under the key (so the padding, length and receive-id checks see hostile plaintexts).
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockEncryptMut, KeyIvInit};
use libfuzzer_sys::fuzz_target;
use wechat::crypto::{decode_encoding_aes_key, MsgCrypto};

const TOKEN: &str = "QDG6eK";
const KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const RECEIVE_ID: &str = "wx5823bf96d3bd56c7";

fuzz_target!(|data: &[u8]| {
    let Ok(crypto) = MsgCrypto::new(TOKEN, KEY, RECEIVE_ID) else {
        return;
    };
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => {
            // The input is the Encrypt text.
            let text = String::from_utf8_lossy(rest);
            let _ = crypto.decrypt(&text);
            let sig = crypto.msg_signature("1409659813", "1372623149", &text);
            let _ = crypto.verify_and_decrypt(&sig, "1409659813", "1372623149", &text);
            let _ = crypto.verify_and_decrypt(&text, &text, &text, &text);
            let _ = crypto.decrypt_echostr(&sig, "1409659813", "1372623149", &text);
        }
        1 => {
            // The input is the raw ciphertext.
            let _ = crypto.decrypt(&STANDARD.encode(rest));
        }
        _ => {
            // The input is the plaintext, padded with zeros to a multiple of 32 bytes.
            let Ok(key) = decode_encoding_aes_key(KEY) else {
                return;
            };
            let mut plain = rest.to_vec();
            let len = plain.len().div_ceil(32).max(1) * 32;
            plain.resize(len, 0);
            let Ok(enc) = cbc::Encryptor::<aes::Aes256>::new_from_slices(&key, &key[..16]) else {
                return;
            };
            let Ok(ciphertext) = enc.encrypt_padded_mut::<NoPadding>(&mut plain, len) else {
                return;
            };
            if let Ok(decrypted) = crypto.decrypt_detailed(&STANDARD.encode(ciphertext)) {
                assert_eq!(decrypted.receive_id, RECEIVE_ID);
            }
        }
    }
});
