//! Reps signing in to the WeCom sidebar, on MariaDB and SQLite: a member's first sign-in makes
//! them a `rep` user mapped to (tenant, corp, userid), later ones find the same user, concurrent
//! first sign-ins make one user; the session authenticates with the member on its principal (the
//! services' actor `rep:<corp>:<userid>`); a tenant that does not let reps sign up refuses a
//! new member and still admits a mapped one; a disabled member cannot sign in.

use std::sync::Arc;

use gateway::access::{Access, MemberChange, MemberStatus, RepRefusal};
use proto::auth::Role;
use test_support::db::{Backend, TestDb};

async fn access(backend: Backend) -> (TestDb, Access) {
    let t = TestDb::migrated::<gateway::store::Migrator>(backend).await;
    let cache = Arc::new(platform::cache::MemoryCache::new("reps:", 1000));
    let a = Access::new(t.conn.clone(), cache);
    a.put_tenant("acme", "Acme", "Asia/Shanghai").await.unwrap();
    (t, a)
}

async fn first_and_later_sign_ins(backend: Backend) {
    let (t, a) = access(backend).await;
    let s1 = a
        .rep_sign_in("acme", "ww1", "zhang")
        .await
        .unwrap()
        .unwrap();
    let p = a
        .authenticate(&s1.token)
        .await
        .unwrap()
        .expect("the session signs in");
    assert_eq!(
        (p.role, p.kind.as_str()),
        (Role::Rep, gateway::access::SIDEBAR)
    );
    assert_eq!(p.actor(), "rep:ww1:zhang");
    let s2 = a
        .rep_sign_in("acme", "ww1", "zhang")
        .await
        .unwrap()
        .unwrap();
    let p2 = a.authenticate(&s2.token).await.unwrap().unwrap();
    assert_eq!(p2.user_id, p.user_id, "the same user");
    // The same userid in another corp is another member.
    let s3 = a
        .rep_sign_in("acme", "ww2", "zhang")
        .await
        .unwrap()
        .unwrap();
    let p3 = a.authenticate(&s3.token).await.unwrap().unwrap();
    assert_ne!(p3.user_id, p.user_id);
    // Racing first sign-ins of one member: one user.
    let (x, y) = tokio::join!(
        a.rep_sign_in("acme", "ww1", "li"),
        a.rep_sign_in("acme", "ww1", "li")
    );
    let (x, y) = (x.unwrap().unwrap(), y.unwrap().unwrap());
    let (px, py) = (
        a.authenticate(&x.token).await.unwrap().unwrap(),
        a.authenticate(&y.token).await.unwrap().unwrap(),
    );
    assert_eq!(px.user_id, py.user_id);
    t.cleanup().await;
}

async fn sign_up_off_and_disabled_members(backend: Backend) {
    let (t, a) = access(backend).await;
    let known = a
        .rep_sign_in("acme", "ww1", "zhang")
        .await
        .unwrap()
        .unwrap();
    let p = a.authenticate(&known.token).await.unwrap().unwrap();
    a.update_tenant("acme", None, None, Some(false))
        .await
        .unwrap();
    assert_eq!(
        a.rep_sign_in("acme", "ww1", "wang")
            .await
            .unwrap()
            .unwrap_err(),
        RepRefusal::NotAMember
    );
    assert!(a.rep_sign_in("acme", "ww1", "zhang").await.unwrap().is_ok());
    a.update_member(
        "acme",
        &p.user_id,
        MemberChange {
            role: None,
            status: Some(MemberStatus::Disabled),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        a.rep_sign_in("acme", "ww1", "zhang")
            .await
            .unwrap()
            .unwrap_err(),
        RepRefusal::Disabled
    );
    assert!(
        a.authenticate(&known.token).await.unwrap().is_none(),
        "a disabled member's session signs nothing in"
    );
    assert_eq!(
        a.rep_sign_in("nope", "ww1", "zhang")
            .await
            .unwrap()
            .unwrap_err(),
        RepRefusal::NoTenant
    );
    t.cleanup().await;
}

test_support::on_both_backends!(first_and_later_sign_ins, sign_up_off_and_disabled_members);
