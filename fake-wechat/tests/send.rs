//! The fake's `/fake/send/…` endpoint: a callback asked for over HTTP is built, signed and
//! encrypted like [`fake_wechat::FakeHandle::send_wecom`]'s and posted to the named gateway (here
//! a second fake's sink), and the gateway's answer comes back; bad requests are 400.

use fake_wechat::FakeWechat;

async fn get(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.expect("the fake answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect("start marker") + start.len();
    let to = from + text[from..].find(end).expect("end marker");
    &text[from..to]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wecom_add_asked_for_over_http_reaches_the_gateway_signed() {
    let fake = FakeWechat::start(0, 83).expect("fake starts");
    let gateway = FakeWechat::start(0, 84).expect("stand-in gateway starts");
    let user = fake.population().users[0].clone();
    let rep = user.follows[0].userid.clone();
    let wecom = fake.apps().wecom.clone();
    let base = fake.base_url();

    let url = format!(
        "{base}/fake/send/wecom-add?gateway={}&userid={rep}&external_userid={}&state=booth_7",
        gateway.sink_url(),
        user.external_userid
    );
    let (status, answer) = get(&url).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(answer["body"], "success");

    let sink = gateway.sink_requests();
    assert_eq!(sink.len(), 1);
    let posted = &sink[0];
    assert_eq!(posted.method, "POST");
    assert_eq!(posted.path, format!("/wechat/wecom/{}", wecom.appid));
    let query: Vec<(String, String)> = reqwest::Url::parse(&format!("http://x/?{}", posted.query))
        .expect("query")
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("{name} in {query:?}"))
    };
    let encrypt = between(&posted.body, "<Encrypt><![CDATA[", "]]></Encrypt>");
    let xml = wecom
        .crypto()
        .verify_and_decrypt(
            &param("msg_signature"),
            &param("timestamp"),
            &param("nonce"),
            encrypt,
        )
        .expect("signed and encrypted with the corp's key");
    for part in [
        "<ChangeType><![CDATA[add_external_contact]]></ChangeType>".to_string(),
        format!("<UserID><![CDATA[{rep}]]></UserID>"),
        format!(
            "<ExternalUserID><![CDATA[{}]]></ExternalUserID>",
            user.external_userid
        ),
        "<State><![CDATA[booth_7]]></State>".to_string(),
    ] {
        assert!(xml.contains(&part), "{part} in {xml}");
    }

    for bad in [
        format!("{base}/fake/send/wecom-add?userid={rep}&external_userid=wm1"),
        format!("{base}/fake/send/wecom-add?gateway=ftp://x&userid={rep}&external_userid=wm1"),
        format!(
            "{base}/fake/send/wecom-add?gateway={}&userid={rep}",
            gateway.sink_url()
        ),
    ] {
        let (status, answer) = get(&bad).await;
        assert_eq!(status, 400, "{bad}: {answer}");
    }
    let (status, _) = get(&format!(
        "{base}/fake/send/nothing?gateway={}",
        gateway.sink_url()
    ))
    .await;
    assert_eq!(status, 404);
    // Nothing was posted for the refused requests.
    assert_eq!(gateway.sink_requests().len(), 1);
    assert!(fake
        .help_lines()
        .join("\n")
        .contains("/fake/send/wecom-add"));

    fake.stop().await;
    gateway.stop().await;
}
