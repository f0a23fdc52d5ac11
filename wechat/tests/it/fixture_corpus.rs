//! The callback corpus made by an independent implementation (tests/fixtures/gen_fixtures.py,
//! wechatpy): every entry must verify and decrypt byte for byte, and our encryption with the same
//! random prefix must reproduce its ciphertext exactly.

use std::collections::BTreeMap;

use serde::Deserialize;
use wechat::crypto::{CryptoError, MsgCrypto};
use wechat::signature;

#[derive(Deserialize)]
struct Corpus {
    implementation: String,
    apps: BTreeMap<String, App>,
    callbacks: Vec<Callback>,
}

#[derive(Deserialize)]
struct App {
    kind: String,
    token: String,
    encoding_aes_key: String,
    receive_id: String,
}

#[derive(Deserialize)]
struct Callback {
    name: String,
    app: String,
    method: String,
    query: BTreeMap<String, String>,
    body: Option<String>,
    encrypt: String,
    random: String,
    plaintext: String,
}

fn corpus() -> Corpus {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/callbacks.json");
    let text = std::fs::read_to_string(path).expect("callbacks.json is readable");
    serde_json::from_str(&text).expect("callbacks.json parses")
}

fn crypto(app: &App) -> MsgCrypto {
    MsgCrypto::new(&app.token, &app.encoding_aes_key, &app.receive_id).expect("fixture key")
}

/// The `Encrypt` value of a POST body: `<Encrypt><![CDATA[…]]></Encrypt>` or JSON `"Encrypt"`.
fn encrypt_of_body(body: &str) -> String {
    if body.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(body).expect("JSON body");
        return v["Encrypt"].as_str().expect("Encrypt field").to_owned();
    }
    let open = "<Encrypt><![CDATA[";
    let start = body.find(open).expect("Encrypt element") + open.len();
    let end = body[start..].find("]]></Encrypt>").expect("Encrypt end") + start;
    body[start..end].to_owned()
}

fn q<'a>(cb: &'a Callback, key: &str) -> &'a str {
    cb.query
        .get(key)
        .unwrap_or_else(|| panic!("{}: query has no {key}", cb.name))
}

#[test]
fn corpus_is_large_and_varied() {
    let c = corpus();
    assert!(c.implementation.starts_with("wechatpy"));
    assert!(c.callbacks.len() >= 40, "{} entries", c.callbacks.len());
    let mut pads = std::collections::BTreeSet::new();
    for cb in &c.callbacks {
        let app = &c.apps[&cb.app];
        let d = crypto(app).decrypt_detailed(&cb.encrypt).expect("decrypts");
        pads.insert(d.pad_len);
    }
    // Full 32-byte pad and a 1-byte pad are both covered.
    assert!(pads.contains(&32) && pads.contains(&1), "{pads:?}");
    for kind in ["oa", "wecom", "mp"] {
        assert!(c.apps.values().any(|a| a.kind == kind));
    }
}

#[test]
fn every_callback_verifies_and_decrypts_exactly() {
    let c = corpus();
    for cb in &c.callbacks {
        let app = &c.apps[&cb.app];
        let mc = crypto(app);
        let timestamp = q(cb, "timestamp");
        let nonce = q(cb, "nonce");
        let msg_signature = q(cb, "msg_signature");

        match cb.method.as_str() {
            "POST" => {
                let body = cb.body.as_deref().expect("POST has a body");
                assert_eq!(encrypt_of_body(body), cb.encrypt, "{}", cb.name);
                if app.kind != "wecom" {
                    // OA / MP safe mode also carries the plain signature.
                    assert!(
                        mc.verify_signature(q(cb, "signature"), timestamp, nonce),
                        "{}: plain signature",
                        cb.name
                    );
                    assert_eq!(q(cb, "encrypt_type"), "aes");
                }
                let msg = mc
                    .verify_and_decrypt(msg_signature, timestamp, nonce, &cb.encrypt)
                    .unwrap_or_else(|e| panic!("{}: {e}", cb.name));
                assert_eq!(msg.as_bytes(), cb.plaintext.as_bytes(), "{}", cb.name);
            }
            "GET" => {
                assert_eq!(q(cb, "echostr"), cb.encrypt);
                let echo = mc
                    .decrypt_echostr(msg_signature, timestamp, nonce, q(cb, "echostr"))
                    .unwrap_or_else(|e| panic!("{}: {e}", cb.name));
                assert_eq!(echo, cb.plaintext, "{}", cb.name);
            }
            other => panic!("{}: unknown method {other}", cb.name),
        }

        let d = mc.decrypt_detailed(&cb.encrypt).expect("decrypts");
        assert_eq!(&d.random[..], cb.random.as_bytes(), "{}", cb.name);
        assert_eq!(d.receive_id, app.receive_id);
    }
}

#[test]
fn our_encryption_reproduces_every_ciphertext() {
    let c = corpus();
    for cb in &c.callbacks {
        let app = &c.apps[&cb.app];
        let mc = crypto(app);
        let random: [u8; 16] = cb.random.as_bytes().try_into().expect("16-byte random");
        let sealed = mc
            .seal_reply(
                &cb.plaintext,
                q(cb, "timestamp"),
                q(cb, "nonce"),
                Some(random),
            )
            .expect("seals");
        assert_eq!(sealed.encrypt(), cb.encrypt, "{}", cb.name);
        assert_eq!(
            sealed.msg_signature(),
            q(cb, "msg_signature"),
            "{}",
            cb.name
        );
    }
}

#[test]
fn every_callback_fails_with_a_changed_nonce_or_another_app() {
    let c = corpus();
    for cb in &c.callbacks {
        let app = &c.apps[&cb.app];
        let mc = crypto(app);
        let changed = format!("{}0", q(cb, "nonce"));
        assert_eq!(
            mc.verify_and_decrypt(
                q(cb, "msg_signature"),
                q(cb, "timestamp"),
                &changed,
                &cb.encrypt
            ),
            Err(CryptoError::ValidateSignature),
            "{}",
            cb.name
        );
        assert!(!signature::verify_msg_signature(
            &app.token,
            q(cb, "timestamp"),
            &changed,
            &cb.encrypt,
            q(cb, "msg_signature")
        ));
        // The same key configured for a different receive id must refuse the message.
        let other = MsgCrypto::new(&app.token, &app.encoding_aes_key, "wx_not_this_app")
            .expect("fixture key");
        assert_eq!(
            other.decrypt(&cb.encrypt),
            Err(CryptoError::ReceiveIdMismatch),
            "{}",
            cb.name
        );
    }
}
