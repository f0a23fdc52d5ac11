//! Arbitrary bytes into the JSON codecs: the mini-program outer body reader and the JSON
//! inner-message parser (for every channel). Whatever parses must have a well-formed routing
//! key, a stable dedupe key and survive a round trip through its JSON bus payload.
#![no_main]

use libfuzzer_sys::fuzz_target;
use proto::channel::{Channel, ChannelEvent};
use wechat::codec::{self, Limits};

fuzz_target!(|data: &[u8]| {
    let _ = codec::parse_outer_json(data);
    let text = String::from_utf8_lossy(data);
    for channel in [Channel::Mp, Channel::Oa, Channel::WeCom] {
        let Ok(event) = codec::parse_json_with(channel, &text, &Limits::DEFAULT) else {
            continue;
        };
        let key = event.event_type();
        assert!(key.starts_with(&format!("channel.{channel}.")), "{key}");
        assert!(
            key.split('.').all(|w| !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')),
            "{key}"
        );
        let json = serde_json::to_value(&event).expect("an event always serialises");
        let back: ChannelEvent = serde_json::from_value(json).expect("and deserialises");
        assert_eq!(back, event);
        assert_eq!(back.dedupe_key(), event.dedupe_key());
    }
    let _ = codec::parse_mp_json(&text);
});
