//! Pure logic of the gateway: sealing secrets, SDK session tokens, tracking-event validation,
//! audience export rows, the legacy mini-program phone answer, channel-code requests.

pub mod audience;
pub mod channel_code;
pub mod keys;
pub mod mp_phone;
pub mod sdk_token;
pub mod track;
