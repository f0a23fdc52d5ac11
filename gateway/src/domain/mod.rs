//! Pure logic of the gateway: sealing secrets, SDK session tokens, tracking-event validation.

pub mod keys;
pub mod sdk_token;
pub mod track;
