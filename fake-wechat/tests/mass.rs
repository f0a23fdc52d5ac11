//! The fake's sends to many, through the project's API client: an OA mass send takes 2 to
//! 10 000 of the account's openids, reaches only followers and refuses a repeated
//! `clientmsgid`; a WeCom group-send task reaches the sender's customers and lists the others in
//! `fail_list`; every accepted send is recorded with whom it reached.

use std::sync::Arc;

use fake_wechat::FakeWechat;
use wechat::api::{ApiBaseUrls, ApiClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_sends_follow_wechats_rules() {
    let fake = FakeWechat::start(0, 131).expect("fake starts");
    let cache = Arc::new(platform::cache::MemoryCache::new("mass:", 100));
    let client = ApiClient::new(
        cache,
        ApiBaseUrls::single(fake.base_url()),
        reqwest::Client::new(),
    );
    let apps = fake.apps().clone();
    let users = fake.population().users.clone();
    let oa = apps.oa.credentials();
    let follower = users.iter().find(|u| u.oa.subscribed).unwrap();
    let gone = users.iter().find(|u| !u.oa.subscribed).unwrap();

    fn code<T>(r: Result<T, wechat::api::ApiError>) -> Option<i64> {
        r.err().and_then(|e| e.errcode())
    }
    // One openid, an unknown one, too many, another message type's missing content.
    assert_eq!(
        code(
            client
                .oa_mass_send_text(&oa, &[&follower.oa_openid], "hi", None)
                .await
        ),
        Some(40130)
    );
    assert_eq!(
        code(
            client
                .oa_mass_send_text(&oa, &[&follower.oa_openid, "o-nobody"], "hi", None)
                .await
        ),
        Some(40003)
    );
    let many: Vec<&str> = std::iter::repeat_n(follower.oa_openid.as_str(), 10_001).collect();
    assert_eq!(
        code(client.oa_mass_send_text(&oa, &many, "hi", None).await),
        Some(40032)
    );
    assert_eq!(
        code(
            client
                .oa_mass_send_text(&oa, &[&follower.oa_openid, &gone.oa_openid], " ", None)
                .await
        ),
        Some(44004)
    );
    // Accepted: the unfollower is not reached; the same clientmsgid again is refused.
    let to = [follower.oa_openid.as_str(), gone.oa_openid.as_str()];
    let sent = client
        .oa_mass_send_text(&oa, &to, "hi", Some("c-1"))
        .await
        .expect("accepted");
    assert!(sent.msg_id > 0);
    assert_eq!(
        code(client.oa_mass_send_text(&oa, &to, "hi", Some("c-1")).await),
        Some(45065)
    );
    // A mini-program's token is not the account's.
    assert!(client
        .oa_mass_send_text(&apps.mp.credentials(), &to, "hi", None)
        .await
        .is_err());

    // WeCom: the sender's customer is reached, another rep's is in fail_list; an unknown sender
    // is refused.
    let contact = users.iter().find(|u| !u.follows.is_empty()).unwrap();
    let rep = contact.follows[0].userid.clone();
    let stranger = users
        .iter()
        .find(|u| !u.follows.is_empty() && u.follows.iter().all(|f| f.userid != rep))
        .unwrap();
    let wecom = apps.wecom.credentials();
    let added = client
        .wecom_add_msg_template_text(
            &wecom,
            &rep,
            &[&contact.external_userid, &stranger.external_userid],
            "hi",
        )
        .await
        .expect("accepted");
    assert_eq!(added.fail_list, vec![stranger.external_userid.clone()]);
    assert_eq!(
        code(
            client
                .wecom_add_msg_template_text(&wecom, "nobody", &[&contact.external_userid], "hi")
                .await
        ),
        Some(60111)
    );

    let sends = fake.mass_sends();
    assert_eq!(sends.len(), 2);
    assert_eq!(sends[0].channel, "oa");
    assert_eq!(sends[0].delivered_to, vec![follower.oa_openid.clone()]);
    assert_eq!(sends[1].sender.as_deref(), Some(rep.as_str()));
    assert_eq!(sends[1].delivered_to, vec![contact.external_userid.clone()]);
    fake.stop().await;
}
