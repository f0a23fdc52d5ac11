//! Arbitrary bytes into the XML codecs: the outer POST body reader and the OA, WeCom and
//! mini-program inner-message parsers. Whatever parses must have a well-formed routing key, a
//! stable dedupe key and survive a round trip through its JSON bus payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::channel::{Channel, ChannelEvent};
use wechat::codec;

fn check(event: &ChannelEvent, channel: Channel) {
    assert_eq!(event.channel(), channel);
    let key = event.event_type();
    let prefix = format!("channel.{channel}.");
    assert!(key.starts_with(&prefix), "{key}");
    assert!(
        key.split('.').all(|w| !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')),
        "{key}"
    );
    assert_eq!(event.dedupe_key(), event.clone().dedupe_key());
    let json = serde_json::to_value(event).expect("an event always serialises");
    let back: ChannelEvent = serde_json::from_value(json).expect("and deserialises");
    assert_eq!(&back, event);
    assert_eq!(back.dedupe_key(), event.dedupe_key());
}

fuzz_target!(|data: &[u8]| {
    let _ = codec::parse_outer_xml(data);
    let text = String::from_utf8_lossy(data);
    if let Ok(e) = codec::parse_oa(&text) {
        check(&e, Channel::Oa);
    }
    if let Ok(e) = codec::parse_wecom(&text) {
        check(&e, Channel::WeCom);
    }
    if let Ok(e) = codec::parse_mp_xml(&text) {
        check(&e, Channel::Mp);
    }
});
