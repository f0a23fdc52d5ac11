//! Arbitrary input into the mini-program `encryptedData` decryption: as three text fields
//! (session key, iv, data) and as raw key ‖ iv ‖ ciphertext bytes.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use wechat::mp;

const APPID: &str = "wx4f4bc4dec97d474b";

fuzz_target!(|data: &[u8]| {
    // Text form: three fields separated by newlines.
    let text = String::from_utf8_lossy(data);
    let mut fields = text.splitn(3, '\n');
    let key = fields.next().unwrap_or_default();
    let iv = fields.next().unwrap_or_default();
    let encrypted = fields.next().unwrap_or_default();
    let _ = mp::decrypt_encrypted_data(APPID, key, iv, encrypted);
    let _ = mp::decrypt_open_data(APPID, key, iv, encrypted);

    // Raw form: 16-byte key, 16-byte iv, ciphertext.
    if data.len() >= 32 {
        let (key, rest) = data.split_at(16);
        let (iv, ciphertext) = rest.split_at(16);
        let _ = mp::decrypt_open_data(
            APPID,
            &STANDARD.encode(key),
            &STANDARD.encode(iv),
            &STANDARD.encode(ciphertext),
        );
    }
});
