//! Official Account messages: follows and unfollows (with a QR scene), scans, menu clicks and
//! links, location reports, text messages. Mini-programs send the same XML envelope.

use super::{cdata, next_msg_id, CallbackBuilder};

impl CallbackBuilder<'_> {
    /// A plain follow (empty `EventKey`).
    pub fn subscribe(&self, openid: &str) -> String {
        self.oa_event(
            openid,
            "subscribe",
            &format!("<EventKey>{}</EventKey>", cdata("")),
        )
    }

    /// A follow through a parametric QR code: `EventKey` = `qrscene_{scene}`, plus `Ticket`.
    pub fn subscribe_with_scene(&self, openid: &str, scene: &str) -> String {
        self.oa_event(
            openid,
            "subscribe",
            &format!(
                "<EventKey>{}</EventKey><Ticket>{}</Ticket>",
                cdata(&format!("qrscene_{scene}")),
                cdata(&format!("gQH{scene}fakeTicket"))
            ),
        )
    }

    /// An unfollow.
    pub fn unsubscribe(&self, openid: &str) -> String {
        self.oa_event(
            openid,
            "unsubscribe",
            &format!("<EventKey>{}</EventKey>", cdata("")),
        )
    }

    /// A follower scanning a parametric QR code: `EventKey` = scene, plus `Ticket`.
    pub fn scan(&self, openid: &str, scene: &str) -> String {
        self.oa_event(
            openid,
            "SCAN",
            &format!(
                "<EventKey>{}</EventKey><Ticket>{}</Ticket>",
                cdata(scene),
                cdata(&format!("gQH{scene}fakeTicket"))
            ),
        )
    }

    /// A click on a menu button.
    pub fn click(&self, openid: &str, key: &str) -> String {
        self.oa_event(
            openid,
            "CLICK",
            &format!("<EventKey>{}</EventKey>", cdata(key)),
        )
    }

    /// A click on a menu link.
    pub fn view(&self, openid: &str, url: &str) -> String {
        self.oa_event(
            openid,
            "VIEW",
            &format!("<EventKey>{}</EventKey>", cdata(url)),
        )
    }

    /// A location report.
    pub fn location(&self, openid: &str, latitude: f64, longitude: f64, precision: f64) -> String {
        self.oa_event(
            openid,
            "LOCATION",
            &format!(
                "<Latitude>{latitude}</Latitude><Longitude>{longitude}</Longitude><Precision>{precision}</Precision>"
            ),
        )
    }

    /// A text message with a fresh `MsgId`.
    pub fn text(&self, openid: &str, content: &str) -> String {
        self.envelope(
            openid,
            "text",
            &format!(
                "<Content>{}</Content><MsgId>{}</MsgId>",
                cdata(content),
                next_msg_id()
            ),
        )
    }
}
