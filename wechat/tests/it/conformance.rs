//! Published test vectors (wechat-protocol.md, section F) and the hardening rules of section G.

use wechat::crypto::{CryptoError, JsonReplyStyle, MsgCrypto};
use wechat::mp::{self, MpCryptoError};
use wechat::signature;

// ---------------------------------------------------------------------------------------------
// F1 — WeCom official sample (XML)
// ---------------------------------------------------------------------------------------------

const F1_TOKEN: &str = "QDG6eK";
const F1_KEY: &str = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C";
const F1_CORPID: &str = "wx5823bf96d3bd56c7";
const F1_POST_ENCRYPT: &str = "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q==";
const F1_POST_PLAINTEXT: &str = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n\
<FromUserName><![CDATA[mycreate]]></FromUserName>\n\
<CreateTime>1409659813</CreateTime>\n\
<MsgType><![CDATA[text]]></MsgType>\n\
<Content><![CDATA[hello]]></Content>\n\
<MsgId>4561255354251345929</MsgId>\n\
<AgentID>218</AgentID>\n\
</xml>";

fn f1() -> MsgCrypto {
    MsgCrypto::new(F1_TOKEN, F1_KEY, F1_CORPID).expect("F1 key is valid")
}

#[test]
fn f1_get_url_verification() {
    let echo = f1()
        .decrypt_echostr(
            "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
            "1409659589",
            "263014780",
            "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ==",
        )
        .expect("F1 GET verifies");
    assert_eq!(echo, "1616140317555161061");
}

#[test]
fn f1_post_decrypts_exactly_with_a_30_byte_pad() {
    let c = f1();
    let msg = c
        .verify_and_decrypt(
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            "1372623149",
            F1_POST_ENCRYPT,
        )
        .expect("F1 POST verifies and decrypts");
    assert_eq!(msg, F1_POST_PLAINTEXT);

    let detailed = c.decrypt_detailed(F1_POST_ENCRYPT).expect("decrypts");
    assert_eq!(detailed.pad_len, 30);
    assert_eq!(detailed.receive_id, F1_CORPID);
    assert_eq!(detailed.message, F1_POST_PLAINTEXT);
}

#[test]
fn f1_post_with_wrong_signature_or_corp_fails() {
    let err = f1()
        .verify_and_decrypt(
            "477715d11cdb4164915debcba66cb864d751f3e7",
            "1409659813",
            "1372623149",
            F1_POST_ENCRYPT,
        )
        .expect_err("tampered signature");
    assert_eq!(err, CryptoError::ValidateSignature);
    assert_eq!(err.code(), -40001);

    let other = MsgCrypto::new(F1_TOKEN, F1_KEY, "wx0000000000000000").expect("key");
    let err = other
        .verify_and_decrypt(
            "477715d11cdb4164915debcba66cb864d751f3e6",
            "1409659813",
            "1372623149",
            F1_POST_ENCRYPT,
        )
        .expect_err("wrong receive id");
    assert_eq!(err, CryptoError::ReceiveIdMismatch);
    assert_eq!(err.code(), -40005);
}

#[test]
fn f1_reply_round_trips() {
    let c = f1();
    let reply = "<xml><Content><![CDATA[收到]]></Content></xml>";
    let xml = c
        .encrypt_reply_xml(reply, "1409659813", "1372623149")
        .expect("reply");
    let between = |open: &str, close: &str| -> String {
        let start = xml.find(open).expect("open tag") + open.len();
        let end = xml[start..].find(close).expect("close tag") + start;
        xml[start..end].to_owned()
    };
    assert!(xml.starts_with("<xml><Encrypt><![CDATA["));
    assert!(xml.ends_with("]]></Nonce></xml>"));
    let encrypt = between("<Encrypt><![CDATA[", "]]></Encrypt>");
    let sig = between("<MsgSignature><![CDATA[", "]]></MsgSignature>");
    assert_eq!(between("<TimeStamp>", "</TimeStamp>"), "1409659813");
    assert_eq!(between("<Nonce><![CDATA[", "]]></Nonce>"), "1372623149");
    assert_eq!(
        c.verify_and_decrypt(&sig, "1409659813", "1372623149", &encrypt)
            .expect("own reply decrypts"),
        reply
    );
}

// ---------------------------------------------------------------------------------------------
// F3 — wechatpy WeCom tests (tests/test_crypto.py)
// ---------------------------------------------------------------------------------------------

const F3_TOKEN: &str = "123456";
const F3_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
const F3_CORPID: &str = "wx49f0ab532d5d035a";
const F3_ECHOSTR: &str =
    "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q==";

fn f3() -> MsgCrypto {
    MsgCrypto::new(F3_TOKEN, F3_KEY, F3_CORPID).expect("F3 key is valid")
}

#[test]
fn f3_get_url_verification() {
    let echo = f3()
        .decrypt_echostr(
            "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
            "1411443780",
            "437374425",
            F3_ECHOSTR,
        )
        .expect("F3 GET verifies");
    assert_eq!(echo, "5927782489442352469");
}

#[test]
fn f3_get_with_wrong_nonce_fails() {
    let err = f3()
        .decrypt_echostr(
            "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96",
            "1411443780",
            "437374424",
            F3_ECHOSTR,
        )
        .expect_err("nonce changed");
    assert_eq!(err, CryptoError::ValidateSignature);
}

#[test]
fn f3_post_decrypts_exactly() {
    let encrypt = "RgqEoJj5A4EMYlLvWO1F86ioRjZfaex/gePD0gOXTxpsq5Yj4GNglrBb8I2BAJVODGajiFnXBu7mCPatfjsu6IHCrsTyeDXzF6Bv283dGymzxh6ydJRvZsryDyZbLTE7rhnus50qGPMfp2wASFlzEgMW9z1ef/RD8XzaFYgm7iTdaXpXaG4+BiYyolBug/gYNx410cvkKR2/nPwBiT+P4hIiOAQqGp/TywZBtDh1yCF2KOd0gpiMZ5jSw3e29mTvmUHzkVQiMS6td7vXUaWOMZnYZlF3So2SjHnwh4jYFxdgpkHHqIrH/54SNdshoQgWYEvccTKe7FS709/5t6NMxuGhcUGAPOQipvWTT4dShyqio7mlsl5noTrb++x6En749zCpQVhDpbV6GDnTbcX2e8K9QaNWHp91eBdCRxthuL0=";
    let expected = "<xml><ToUserName><![CDATA[wx49f0ab532d5d035a]]></ToUserName>\n\
<FromUserName><![CDATA[messense]]></FromUserName>\n\
<CreateTime>1411525903</CreateTime>\n\
<MsgType><![CDATA[text]]></MsgType>\n\
<Content><![CDATA[test]]></Content>\n\
<MsgId>4363689963896700987</MsgId>\n\
<AgentID>1</AgentID>\n\
</xml>";
    let c = f3();
    let msg = c
        .verify_and_decrypt(
            "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
            "1411525903",
            "461056294",
            encrypt,
        )
        .expect("F3 POST verifies and decrypts");
    assert_eq!(msg, expected);
    let detailed = c.decrypt_detailed(encrypt).expect("decrypts");
    assert_eq!(&detailed.random, b"ec90b1530358d4d3");
    assert_eq!(detailed.pad_len, 1);
}

#[test]
fn f3_encrypt_known_answer() {
    let reply = "<xml>\n\
<MsgType><![CDATA[text]]></MsgType>\n\
<Content><![CDATA[test]]></Content>\n\
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>\n\
<ToUserName><![CDATA[messense]]></ToUserName>\n\
<AgentID>1</AgentID>\n\
<CreateTime>1411525903</CreateTime>\n\
</xml>";
    // wechatpy renders one element per line; section B's envelope is the same XML on one line.
    let expected_wechatpy = "<xml>\n\
<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>\n\
<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>\n\
<TimeStamp>1411525903</TimeStamp>\n\
<Nonce><![CDATA[461056294]]></Nonce>\n\
</xml>";
    let sealed = f3()
        .seal_reply(reply, "1411525903", "461056294", Some(*b"1234567890123456"))
        .expect("seals");
    assert_eq!(
        sealed.msg_signature(),
        "407518b7649e86ef23978113f92d27afa9296533"
    );
    assert_eq!(sealed.to_xml(), expected_wechatpy.replace('\n', ""));
    assert_eq!(
        f3().encrypt(reply, Some(*b"1234567890123456"))
            .expect("encrypts"),
        sealed.encrypt()
    );

    let wecom: serde_json::Value =
        serde_json::from_str(&sealed.to_json(JsonReplyStyle::WeCom).expect("json"))
            .expect("valid JSON");
    assert_eq!(
        wecom,
        serde_json::json!({
            "encrypt": sealed.encrypt(),
            "msgsignature": "407518b7649e86ef23978113f92d27afa9296533",
            "timestamp": 1411525903u64,
            "nonce": "461056294",
        })
    );
    let mini: serde_json::Value =
        serde_json::from_str(&sealed.to_json(JsonReplyStyle::MiniProgram).expect("json"))
            .expect("valid JSON");
    assert_eq!(
        mini,
        serde_json::json!({
            "Encrypt": sealed.encrypt(),
            "MsgSignature": "407518b7649e86ef23978113f92d27afa9296533",
            "TimeStamp": 1411525903u64,
            "Nonce": "461056294",
        })
    );
}

// ---------------------------------------------------------------------------------------------
// F4 — Official Account official sample (compatible mode)
// ---------------------------------------------------------------------------------------------

#[test]
fn f4_official_account_compatible_mode() {
    let token = "spamtest";
    let c = MsgCrypto::new(
        token,
        "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
        "wx2c2769f8efd9abc2",
    )
    .expect("F4 key is valid");
    let encrypt = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE=";
    let expected = "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n\
<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n\
<CreateTime>1409735668</CreateTime>\n\
<MsgType><![CDATA[text]]></MsgType>\n\
<Content><![CDATA[abcdteT]]></Content>\n\
<MsgId>6054768590064713728</MsgId>\n\
</xml>";
    let msg = c
        .verify_and_decrypt(
            "5d197aaffba7e9b25a30732f161a50dee96bd5fa",
            "1409735669",
            "1320562132",
            encrypt,
        )
        .expect("F4 verifies and decrypts");
    assert_eq!(msg, expected);

    // The plain signature of the same request.
    let plain = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a";
    assert_eq!(
        signature::signature(token, "1409735669", "1320562132"),
        plain
    );
    assert!(signature::verify_signature(
        token,
        "1409735669",
        "1320562132",
        plain
    ));
    assert!(c.verify_signature(plain, "1409735669", "1320562132"));
    assert!(!c.verify_signature(plain, "1409735669", "1320562133"));
}

// ---------------------------------------------------------------------------------------------
// F6 — mini-program encryptedData and rawData
// ---------------------------------------------------------------------------------------------

const F6_APPID: &str = "wx4f4bc4dec97d474b";
const F6_SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
const F6_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
const F6_ENCRYPTED_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

#[test]
fn f6_encrypted_data_decrypts() {
    let data = mp::decrypt_open_data(F6_APPID, F6_SESSION_KEY, F6_IV, F6_ENCRYPTED_DATA)
        .expect("F6 decrypts");
    assert_eq!(
        data.open_id.as_deref(),
        Some("oGZUI0egBJY1zhBYw2KhdUfwVJJE")
    );
    assert_eq!(
        data.union_id.as_deref(),
        Some("ocMvos6NjeKLIBqg5Mr9QjxrP1FA")
    );
    assert_eq!(data.watermark.appid, F6_APPID);
    assert_eq!(data.watermark.timestamp, Some(1_477_314_187));
    let expected: serde_json::Value = serde_json::from_str(
        r#"{"openId":"oGZUI0egBJY1zhBYw2KhdUfwVJJE","nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/aSKcBBPpibyKNicHNTMM0qJVh8Kjgiak2AHWr8MHM4WgMEm7GFhsf8OYrySdbvAMvTsw3mo8ibKicsnfN5pRjl1p8HQ/0","unionId":"ocMvos6NjeKLIBqg5Mr9QjxrP1FA","watermark":{"timestamp":1477314187,"appid":"wx4f4bc4dec97d474b"}}"#,
    )
    .expect("expected JSON");
    assert_eq!(data.raw, expected);
}

#[test]
fn f6_other_appid_or_key_is_rejected() {
    let err = mp::decrypt_encrypted_data(
        "wx0000000000000000",
        F6_SESSION_KEY,
        F6_IV,
        F6_ENCRYPTED_DATA,
    )
    .expect_err("watermark belongs to another app");
    assert_eq!(err, MpCryptoError::AppIdMismatch);
    assert_eq!(err.code(), -41003);

    // Another session key decrypts to garbage: a padding or JSON error, never a panic.
    let err = mp::decrypt_encrypted_data(
        F6_APPID,
        "HyVFkGl5F5OQWJZZaNzBBg==",
        F6_IV,
        F6_ENCRYPTED_DATA,
    )
    .expect_err("wrong key");
    assert_eq!(err.code(), -41003);
}

#[test]
fn f6_raw_data_signature() {
    let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
    let key = "HyVFkGl5F5OQWJZZaNzBBg==";
    let expected = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";
    assert_eq!(signature::raw_data_signature(raw, key), expected);
    assert!(signature::verify_raw_data_signature(raw, key, expected));
    assert!(!signature::verify_raw_data_signature(
        raw,
        "tiihtNczf5v6AKRyjwEUhQ==",
        expected
    ));
}

// ---------------------------------------------------------------------------------------------
// F7 — plain and JS-SDK signatures
// ---------------------------------------------------------------------------------------------

#[test]
fn f7_plain_signatures() {
    let sig = "f464b24fc39322e44b38aa78f5edd27bd1441696";
    assert_eq!(
        signature::signature("AAAAA", "1714036504", "1514711492"),
        sig
    );
    assert!(signature::verify_signature(
        "AAAAA",
        "1714036504",
        "1514711492",
        sig
    ));

    let sig = "f21891de399b4e33a1a93c9a7b8a8fffb5a443ff";
    assert_eq!(signature::signature("test", "1410685589", "test"), sig);
    assert!(signature::verify_signature(
        "test",
        "1410685589",
        "test",
        sig
    ));
    // wechatpy's failing case: last digit changed.
    assert!(!signature::verify_signature(
        "test",
        "1410685589",
        "test",
        "f21891de399b4e33a1a93c9a7b8a8fffb5a443fe"
    ));
}

#[test]
fn f7_jssdk_signature() {
    let ticket =
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg";
    let expected = "0f9de62fce790f9a083d5c99e95740ceb90c27ed";
    let url = "http://mp.weixin.qq.com?params=value";
    assert_eq!(
        signature::jsapi_signature(ticket, "Wm3WZYTPz0wzccnW", "1414587457", url),
        expected
    );
    // The fragment is not signed.
    let with_fragment = "http://mp.weixin.qq.com?params=value#wechat_redirect";
    assert_eq!(
        signature::jsapi_signature(ticket, "Wm3WZYTPz0wzccnW", "1414587457", with_fragment),
        expected
    );
    assert!(signature::verify_jsapi_signature(
        ticket,
        "Wm3WZYTPz0wzccnW",
        "1414587457",
        with_fragment,
        expected
    ));
    assert!(!signature::verify_jsapi_signature(
        ticket,
        "Wm3WZYTPz0wzccnW",
        "1414587458",
        url,
        expected
    ));
}

// ---------------------------------------------------------------------------------------------
// G — hardening
// ---------------------------------------------------------------------------------------------

#[test]
fn g_message_for_another_app_with_a_valid_signature_is_rejected() {
    // Same token and key, different appid: a correctly signed message for app B must not be
    // accepted by app A.
    let key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";
    let app_a = MsgCrypto::new("tok", key, "wxaaaaaaaaaaaaaaaa").expect("key");
    let app_b = MsgCrypto::new("tok", key, "wxbbbbbbbbbbbbbbbb").expect("key");
    let sealed = app_b
        .seal_reply("<xml/>", "1700000000", "42", None)
        .expect("seals");
    let err = app_a
        .verify_and_decrypt(sealed.msg_signature(), "1700000000", "42", sealed.encrypt())
        .expect_err("receive id differs");
    assert_eq!(err, CryptoError::ReceiveIdMismatch);
    // A suite can accept a set of receive ids explicitly.
    let opened = app_a
        .decrypt_with(sealed.encrypt(), |id| id.starts_with("wx"))
        .expect("accepted by the predicate");
    assert_eq!(opened.receive_id, "wxbbbbbbbbbbbbbbbb");
}

#[test]
fn g_tampered_ciphertext_with_valid_signature_is_an_error() {
    let c = f1();
    let mut bytes = F1_POST_ENCRYPT.as_bytes().to_vec();
    // Flip characters in the first block: the whole plaintext header is garbled.
    for b in bytes.iter_mut().take(8) {
        *b = if *b == b'A' { b'B' } else { b'A' };
    }
    let tampered = String::from_utf8(bytes).expect("ASCII");
    let sig = c.msg_signature("1409659813", "1372623149", &tampered);
    let err = c
        .verify_and_decrypt(&sig, "1409659813", "1372623149", &tampered)
        .expect_err("tampered");
    assert!(matches!(
        err,
        CryptoError::IllegalBuffer(_) | CryptoError::ReceiveIdMismatch
    ));

    // Truncated to a non-multiple of 32 bytes, or not base64 at all.
    let truncated = &F1_POST_ENCRYPT[..F1_POST_ENCRYPT.len() - 24];
    assert!(c.decrypt(truncated).is_err());
    assert_eq!(c.decrypt("not base64!"), Err(CryptoError::DecodeBase64));
    assert_eq!(c.decrypt("").map_err(|e| e.code()), Err(-40007));
    assert_eq!(
        c.decrypt("AAAAAAAAAAAAAAAAAAAAAA==").map_err(|e| e.code()),
        Err(-40007)
    );
}

#[test]
fn g_invalid_keys_are_rejected_with_40004() {
    for key in [
        "",
        "short",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2CC",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2=",
        "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B-_",
    ] {
        let err = MsgCrypto::new("t", key, "id").expect_err(key);
        assert_eq!(err.code(), -40004, "{key}");
    }
}
