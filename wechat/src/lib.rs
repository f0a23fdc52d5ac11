//! The WeChat protocol: signatures, message crypto (WXBizMsgCrypt), mini-program data
//! decryption, XML/JSON codecs into typed proto events and the API client.
//!
//! Owns: byte-exact protocol algorithms. Must not touch: business logic, storage, the bus.

pub mod api;
pub mod codec;
pub mod crypto;
pub mod mp;
pub mod signature;

pub use crypto::{CryptoError, Decrypted, EncryptedReply, JsonReplyStyle, MsgCrypto};
pub use mp::{MpCryptoError, MpOpenData};
