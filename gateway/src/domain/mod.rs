//! Pure logic of the gateway: sealing secrets, SDK session tokens, tracking-event validation,
//! audience export rows.

pub mod audience;
pub mod keys;
pub mod sdk_token;
pub mod track;
