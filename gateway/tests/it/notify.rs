//! The gateway's lead-notification records on MariaDB and SQLite: one claim at a time however
//! many consumers race for a notification (two pools, as two gateways), settled once with its
//! inbox record, handed back for a retry and taken over after a dead holder's lease, and the
//! rep's inbox paged newest first.

use chrono::{Duration, Utc};
use gateway::notify::store::{
    self, AttemptRecord, Claim, NewNotification, SettleError, Settlement, Status, INBOX_LIST,
};
use platform::db::inbox::Processed;
use platform::http::page::PageReq;
use test_support::db::{Backend, TestDb};
use uuid::Uuid;

async fn migrated(backend: Backend) -> TestDb {
    let t = TestDb::migrated::<gateway::store::Migrator>(backend).await;
    t
}

fn notification(tenant: &str, rep: &str, profile: &str) -> NewNotification {
    NewNotification {
        id: Uuid::now_v7(),
        tenant_id: tenant.into(),
        corp_id: Some("ww1".into()),
        user_id: Some(rep.into()),
        external_userid: Some(format!("wm-{profile}")),
        profile_id: profile.into(),
        trigger_id: "t1".into(),
        title: format!("客户 {profile}：进入 mql 阶段"),
        description: "<div class=\"normal\">hi</div>".into(),
        url: format!("https://crm.example.test/sidebar/?external_userid=wm-{profile}"),
    }
}

fn attempt(errcode: i64) -> AttemptRecord {
    AttemptRecord {
        at: Utc::now(),
        errcode: Some(errcode),
        errmsg: Some("m".into()),
        msgid: (errcode == 0).then(|| "msg-1".into()),
    }
}

fn sent(attempts: Vec<AttemptRecord>) -> Settlement {
    Settlement {
        status: Status::Sent,
        reason: None,
        msgid: attempts.last().and_then(|a| a.msgid.clone()),
        attempts,
    }
}

async fn one_claim_among_racing_consumers(backend: Backend) {
    let t = migrated(backend).await;
    let other = t.another_connection().await;
    let n = notification("t1", "rep01", "p1");
    let lease = Duration::seconds(60);
    let races = (0..8).map(|i| {
        let db = if i % 2 == 0 {
            t.conn.clone()
        } else {
            other.clone()
        };
        let n = n.clone();
        tokio::spawn(async move {
            // A busy SQLite or a deadlock is the loser's transient failure: it asks again.
            loop {
                match store::claim(&db, &n, Utc::now(), lease).await {
                    Ok(c) => return c,
                    Err(e) if platform::db::is_contention(&e) => {
                        tokio::time::sleep(std::time::Duration::from_millis(5)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        })
    });
    let outcomes: Vec<Claim> = futures_util::future::join_all(races)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut claimed: Vec<_> = outcomes
        .iter()
        .filter_map(|c| match c {
            Claim::Claimed(c) => Some(c.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(claimed.len(), 1, "{outcomes:?}");
    assert!(outcomes
        .iter()
        .all(|c| matches!(c, Claim::Claimed(_) | Claim::InFlight)));
    let holder = claimed.pop().unwrap();
    assert!(holder.attempts.is_empty());

    // Settled with its inbox record: every later copy is a duplicate at the first look.
    assert!(!store::settled(&t.conn, n.id).await.unwrap());
    let done = store::settle(&other, n.id, &holder, &sent(vec![attempt(0)]), Utc::now())
        .await
        .unwrap();
    assert_eq!(done, Processed::Done(()));
    assert!(store::settled(&t.conn, n.id).await.unwrap());
    assert_eq!(
        store::claim(&t.conn, &n, Utc::now(), lease).await.unwrap(),
        Claim::Settled(Status::Sent)
    );
    let again = store::settle(&t.conn, n.id, &holder, &sent(vec![]), Utc::now())
        .await
        .unwrap();
    assert_eq!(again, Processed::Duplicate);
    let row = store::get(&t.conn, "t1", &n.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status, row.attempts.len(), row.msgid.as_deref()),
        (Status::Sent, 1, Some("msg-1"))
    );
    assert!(store::get(&t.conn, "t2", &n.id.to_string())
        .await
        .unwrap()
        .is_none());
    drop(other);
    t.cleanup().await;
}

async fn a_retry_or_a_dead_holder_hands_the_claim_on(backend: Backend) {
    let t = migrated(backend).await;
    let lease = Duration::seconds(60);
    let n = notification("t1", "rep01", "p1");
    let Claim::Claimed(first) = store::claim(&t.conn, &n, Utc::now(), lease).await.unwrap() else {
        panic!("the first claim")
    };
    // Handed back for a retry with the try recorded: the next copy takes it with the tries.
    store::release(&t.conn, n.id, &first, &[attempt(-1)], Utc::now())
        .await
        .unwrap();
    let row = store::get(&t.conn, "t1", &n.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, Status::Retrying);
    let Claim::Claimed(second) = store::claim(&t.conn, &n, Utc::now(), lease).await.unwrap() else {
        panic!("a retrying notification is claimed again")
    };
    assert_eq!(second.attempts, vec![row.attempts[0].clone()]);
    // The first holder's claim is gone.
    assert!(matches!(
        store::settle(&t.conn, n.id, &first, &sent(vec![]), Utc::now()).await,
        Err(SettleError::ClaimLost(_))
    ));
    assert!(matches!(
        store::release(&t.conn, n.id, &first, &[], Utc::now()).await,
        Err(SettleError::ClaimLost(_))
    ));
    // While the second holds it, nobody else does; once its lease ran out, another takes over.
    assert_eq!(
        store::claim(&t.conn, &n, Utc::now(), lease).await.unwrap(),
        Claim::InFlight
    );
    let later = Utc::now() + Duration::seconds(61);
    let Claim::Claimed(third) = store::claim(&t.conn, &n, later, lease).await.unwrap() else {
        panic!("an expired lease is taken over")
    };
    assert!(matches!(
        store::settle(&t.conn, n.id, &second, &sent(vec![]), Utc::now()).await,
        Err(SettleError::ClaimLost(_))
    ));
    let mut tries = third.attempts.clone();
    tries.push(attempt(0));
    let failed = Settlement {
        status: Status::Failed,
        reason: Some("wechat_refused".into()),
        attempts: tries,
        msgid: None,
    };
    assert_eq!(
        store::settle(&t.conn, n.id, &third, &failed, Utc::now())
            .await
            .unwrap(),
        Processed::Done(())
    );
    let row = store::get(&t.conn, "t1", &n.id.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.status, row.reason.as_deref(), row.attempts.len()),
        (Status::Failed, Some("wechat_refused"), 2)
    );
    t.cleanup().await;
}

async fn a_reps_inbox_pages_newest_first(backend: Backend) {
    let t = migrated(backend).await;
    let lease = Duration::seconds(60);
    let mut ids = Vec::new();
    for (tenant, rep, profile) in [
        ("t1", "rep01", "p1"),
        ("t1", "rep02", "p2"),
        ("t1", "rep01", "p3"),
        ("t2", "rep01", "p4"),
        ("t1", "rep01", "p5"),
    ] {
        let n = notification(tenant, rep, profile);
        assert!(matches!(
            store::claim(&t.conn, &n, Utc::now(), lease).await.unwrap(),
            Claim::Claimed(_)
        ));
        ids.push(n.id.to_string());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let req: PageReq<i64> = PageReq::parse(INBOX_LIST, cursor.as_deref(), Some(2)).unwrap();
        let page = store::inbox(&t.conn, "t1", "ww1", "rep01", &req)
            .await
            .unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.into_iter().map(|n| n.profile_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, vec!["p5", "p3", "p1"]);
    // A cursor of another list is not this one's.
    assert!(PageReq::<i64>::parse(INBOX_LIST, Some("bm90aGluZw"), None).is_err());
    let empty = store::inbox(
        &t.conn,
        "t1",
        "ww2",
        "rep01",
        &PageReq::parse(INBOX_LIST, None, None).unwrap(),
    )
    .await
    .unwrap();
    assert!(empty.items.is_empty() && empty.next_cursor.is_none());
    t.cleanup().await;
}

test_support::on_both_backends!(
    one_claim_among_racing_consumers,
    a_retry_or_a_dead_holder_hands_the_claim_on,
    a_reps_inbox_pages_newest_first,
);
