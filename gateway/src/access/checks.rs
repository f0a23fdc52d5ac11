//! Checks of what operators type: tenant ids, names and time zones, e-mail addresses and
//! passwords, each refused with the field at fault.

use super::{invalid, AccessError};

/// Checks a tenant id: `[a-z0-9][a-z0-9_-]{0,63}`.
pub fn check_tenant_id(id: &str) -> Result<(), AccessError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "invalid_tenant_id",
            "tenant_id",
            "must be 1–64 of a-z, 0-9, `_`, `-`, starting with a letter or digit",
        ))
    }
}

/// Checks a time zone: a name of the IANA database, e.g. `Asia/Shanghai`.
pub fn check_time_zone(tz: &str) -> Result<(), AccessError> {
    if tz.len() <= 64 && tz.parse::<chrono_tz::Tz>().is_ok() {
        Ok(())
    } else {
        Err(invalid(
            "invalid_time_zone",
            "time_zone",
            "must be an IANA time zone such as `Asia/Shanghai`",
        ))
    }
}

/// Checks a tenant's display name: 1–128 characters, not blank.
pub fn check_tenant_name(name: &str) -> Result<(), AccessError> {
    if name.trim().is_empty() || name.chars().count() > 128 {
        return Err(invalid("invalid_name", "name", "must be 1–128 characters"));
    }
    Ok(())
}

pub(super) fn check_email(email: &str) -> Result<String, AccessError> {
    let e = email.trim().to_lowercase();
    let ok = e.len() <= 254
        && e.split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && domain.contains('.'))
        && !e.contains(char::is_whitespace);
    if ok {
        Ok(e)
    } else {
        Err(invalid(
            "invalid_email",
            "email",
            "is not an e-mail address",
        ))
    }
}

pub(super) fn check_password(password: &str) -> Result<(), AccessError> {
    if password.chars().count() < 12 {
        return Err(invalid(
            "weak_password",
            "password",
            "must be at least 12 characters",
        ));
    }
    Ok(())
}
