//! Making a lead cross a threshold the way reps do, for the notification tests: an engagement
//! model (added by a rep 10, a rep's edit of the contact 60) with a trigger notifying the rep at
//! 50, defined through the scoring API; a rep adds a customer on WeCom, the lead gets its owner,
//! the rep edits the contact and the lead is at 70.

use std::time::{Duration, Instant};

use fake_wechat::{FakeHandle, FakeMessage, FakeUser};
use proto::auth::Role;
use serde_json::{json, Value};

/// Where roles listen, and whom the scoring and identity APIs are asked for.
pub struct Lead<'a> {
    pub http: reqwest::Client,
    pub gateway: String,
    pub identity: String,
    pub scoring: String,
    pub internal_key: &'a str,
    pub tenant: &'a str,
}

/// Waits up to `secs` for `f` to give something.
pub async fn eventually<T, F, Fut>(what: &str, secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{what} did not happen in {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The app messages whose card leads to `user` in the sidebar under `public`.
pub fn messages_about(fake: &FakeHandle, public: &str, user: &FakeUser) -> Vec<FakeMessage> {
    let link = format!("{public}/sidebar/?external_userid={}", user.external_userid);
    fake.messages()
        .into_iter()
        .filter(|m| m.content["url"] == json!(link))
        .collect()
}

impl Lead<'_> {
    fn operator(&self) -> (&'static str, String) {
        test_support::auth::header_with(self.internal_key, self.tenant, "user:test", Role::Operator)
    }

    async fn post(&self, url: String, body: Value) -> Value {
        let (h, v) = self.operator();
        let r = self
            .http
            .post(&url)
            .header(h, v)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let v: Value = r.json().await.unwrap();
        assert!((200..300).contains(&status), "{url}: {status} {v}");
        v
    }

    async fn get(&self, url: String) -> (u16, Value) {
        let (h, v) = self.operator();
        let r = self.http.get(&url).header(h, v).send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }

    /// The engagement model, its two rules and the trigger ("Hot lead" at 50, up, notify).
    pub async fn define_scoring(&self) {
        let scoring = &self.scoring;
        let model = self
            .post(
                format!("{scoring}/v1/models"),
                json!({"key": "engagement", "name": "Engagement"}),
            )
            .await;
        let mid = model["id"].as_str().unwrap();
        for rule in [
            json!({"kind": "event", "name": "Added by a rep", "points": 10,
                   "event": "wecom.external_contact.add_external_contact"}),
            json!({"kind": "event", "name": "Edited by a rep", "points": 60,
                   "event": "wecom.external_contact.edit_external_contact"}),
        ] {
            self.post(format!("{scoring}/v1/models/{mid}/rules"), rule)
                .await;
        }
        self.post(
            format!("{scoring}/v1/triggers"),
            json!({"name": "Hot lead",
                   "on": {"type": "score", "model": "engagement", "threshold": 50, "direction": "up"},
                   "actions": [{"type": "notify", "message": "Passed 50: call today"}]}),
        )
        .await;
    }

    /// `user`'s first rep adds them (10 points); once the lead has its owner, the rep edits
    /// the contact (70): the lead crosses 50. The profile id.
    pub async fn cross_threshold(&self, fake: &FakeHandle, user: &FakeUser) -> String {
        let wecom = &fake.apps().wecom;
        let rep = &user.follows[0].userid;
        let b = fake.callbacks(wecom);
        let r = fake
            .send_wecom(
                &self.gateway,
                wecom,
                &b.add_external_contact(rep, &user.external_userid, Some("expo")),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let pid = eventually("the customer's profile", 30, || async {
            let (s, p) = self
                .get(format!(
                    "{}/v1/profiles/by-identifier?kind=wecom_external_userid&namespace={}&value={}",
                    self.identity, wecom.appid, user.external_userid
                ))
                .await;
            (s == 200).then(|| p["id"].as_str().unwrap().to_string())
        })
        .await;
        // The owner comes with the follow (`profile.updated`), the points with the event.
        eventually("the lead's owner and first points", 30, || async {
            let (s, l) = self
                .get(format!("{}/v1/profiles/{pid}/scores", self.scoring))
                .await;
            let scored = l["scores"][0]["score"].as_f64().is_some_and(|s| s > 9.99);
            (s == 200 && !l["owner"].is_null() && scored).then_some(())
        })
        .await;
        let r = fake
            .send_wecom(
                &self.gateway,
                wecom,
                &b.edit_external_contact(rep, &user.external_userid),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        pid
    }
}

/// Two customers whose first rep is the same one.
pub fn two_of_one_rep(users: &[FakeUser]) -> (FakeUser, FakeUser) {
    users
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            let rep = &a.follows.first()?.userid;
            let b = users[i + 1..]
                .iter()
                .find(|b| b.follows.first().is_some_and(|f| f.userid == *rep))?;
            Some((a.clone(), b.clone()))
        })
        .expect("two customers of one rep")
}
