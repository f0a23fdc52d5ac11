//! Signing a rep in to the WeCom sidebar through the fake WeChat's OAuth, as a browser would:
//! the start (a `state` and its nonce cookie), the fake's authorize page (it signs in the member
//! its query names), the callback with and without the nonce cookie. Shared by the sidebar's
//! end-to-end test and the customers benchmark.

// Each user takes its own subset.
#![allow(dead_code)]

/// The value of cookie `name` the response sets.
pub fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let first = v.split(';').next()?;
            let (k, val) = first.split_once('=')?;
            (k.trim() == name && !val.is_empty()).then(|| val.to_string())
        })
}

/// Walks the OAuth sign-in as `userid`; the sidebar session token.
pub async fn sign_in(
    c: &reqwest::Client,
    gw: &str,
    corp: &str,
    agent: i64,
    userid: &str,
) -> String {
    let r = c
        .get(format!(
            "{gw}/sidebar/v1/oauth/start?corp_id={corp}&agent_id={agent}&redirect=/sidebar/"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 302, "{:?}", r.text().await);
    let nonce = set_cookie(&r, "scrm_sidebar_state").expect("the state cookie");
    let authorize = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        authorize.contains("/connect/oauth2/authorize?appid="),
        "{authorize}"
    );
    assert!(authorize.ends_with("#wechat_redirect"), "{authorize}");
    // The fake's authorize page signs in whoever the query names.
    let authorize = authorize.replace("#wechat_redirect", &format!("&userid={userid}"));
    let r = c.get(&authorize).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 302);
    let callback = r.headers()["location"].to_str().unwrap().to_string();
    assert!(
        callback.contains("/sidebar/v1/oauth/callback?code="),
        "{callback}"
    );
    // Another browser (no state cookie) cannot finish it.
    let r = c.get(&callback).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 400, "state bound to the browser");
    let r = c
        .get(&callback)
        .header("cookie", format!("scrm_sidebar_state={nonce}"))
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let token = set_cookie(&r, "scrm_sidebar");
    assert_eq!(status, 302, "{:?}", r.text().await);
    assert_eq!(r.headers()["location"], "/sidebar/");
    token.expect("the session cookie")
}
