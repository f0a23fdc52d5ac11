use argon2::password_hash::PasswordHash;

use super::checks::{check_email, check_password, check_tenant_id};
use super::signin::{hash_password, password_matches, DUMMY_HASH};
use super::tokens::{digest, new_token};
use super::API;

#[test]
fn passwords_hash_and_verify() {
    let h = hash_password("correct horse battery").unwrap();
    assert!(h.starts_with("$argon2id$"));
    assert!(password_matches("correct horse battery", &h));
    assert!(!password_matches("wrong", &h));
    assert!(PasswordHash::new(DUMMY_HASH).is_ok(), "the stand-in parses");
    assert!(check_password("short").is_err());
    assert!(check_tenant_id("acme").is_ok());
    assert!(check_tenant_id("x'; DROP TABLE profiles; --").is_err());
    assert!(check_email("Ops@Example.com").unwrap() == "ops@example.com");
    assert!(check_email("nope").is_err());
    let t = new_token(API);
    assert!(t.starts_with("scrm_api_") && t.len() > 40);
    assert_eq!(digest(&t).len(), 64);
}
