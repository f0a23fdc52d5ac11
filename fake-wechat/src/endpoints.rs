//! The fake's endpoint paths, for the counters and the failure controls, and [`help_lines`], the
//! developer endpoints for a start-up banner.

/// OA / MP token.
pub const TOKEN: &str = "/cgi-bin/token";
/// WeCom token.
pub const GETTOKEN: &str = "/cgi-bin/gettoken";
/// OA user info.
pub const USER_INFO: &str = "/cgi-bin/user/info";
/// OA tag creation.
pub const TAGS_CREATE: &str = "/cgi-bin/tags/create";
/// OA tag list.
pub const TAGS_GET: &str = "/cgi-bin/tags/get";
/// OA tag rename.
pub const TAGS_UPDATE: &str = "/cgi-bin/tags/update";
/// OA tag deletion.
pub const TAGS_DELETE: &str = "/cgi-bin/tags/delete";
/// OA batch tagging.
pub const TAGS_BATCH_TAG: &str = "/cgi-bin/tags/members/batchtagging";
/// OA batch untagging.
pub const TAGS_BATCH_UNTAG: &str = "/cgi-bin/tags/members/batchuntagging";
/// OA tags of a user.
pub const TAGS_OF_USER: &str = "/cgi-bin/tags/getidlist";
/// WeCom external contact.
pub const EXTERNAL_CONTACT: &str = "/cgi-bin/externalcontact/get";
/// WeCom mark tag.
pub const MARK_TAG: &str = "/cgi-bin/externalcontact/mark_tag";
/// WeCom corp tag list.
pub const CORP_TAG_LIST: &str = "/cgi-bin/externalcontact/get_corp_tag_list";
/// WeCom corp tags added.
pub const ADD_CORP_TAG: &str = "/cgi-bin/externalcontact/add_corp_tag";
/// MP login.
pub const CODE2SESSION: &str = "/sns/jscode2session";
/// MP phone number.
pub const PHONE_NUMBER: &str = "/wxa/business/getuserphonenumber";
/// WeCom OAuth: who a code signed in.
pub const OAUTH_USER_INFO: &str = "/cgi-bin/auth/getuserinfo";
/// WeCom JS-SDK corp ticket (`wx.config`).
pub const JSAPI_TICKET: &str = "/cgi-bin/get_jsapi_ticket";
/// WeCom JS-SDK app ticket (`wx.agentConfig`, `type=agent_config`).
pub const AGENT_TICKET: &str = "/cgi-bin/ticket/get";
/// WeCom app message.
pub const MESSAGE_SEND: &str = "/cgi-bin/message/send";
/// OA mass send to an openid list.
pub const MASS_SEND: &str = "/cgi-bin/message/mass/send";
/// WeCom group-send task of a rep.
pub const ADD_MSG_TEMPLATE: &str = "/cgi-bin/externalcontact/add_msg_template";
/// The stand-in OAuth authorize page (on the open base URL).
pub const OAUTH_AUTHORIZE: &str = "/connect/oauth2/authorize";

/// The fake's developer endpoints under `base_url`, one line each, for a start-up banner.
pub fn help_lines(base_url: &str) -> Vec<String> {
    [
        ("GET ", "/fake/population", "the seeded people, reps, tags"),
        ("GET ", "/fake/apps", "the apps with secrets, callback tokens, keys"),
        ("GET ", "/fake/counters", "token and ticket fetches, calls per endpoint"),
        ("GET ", "/fake/messages", "WeCom app messages sent (message/send), with answers"),
        ("GET ", "/fake/mass-sends", "OA mass sends and WeCom group-send tasks, with whom each reached"),
        ("GET ", "/fake/oauth-code?corp_id=&userid=", "a single-use sidebar sign-in code (5 min); external_userid= for a customer"),
        ("GET ", "/connect/oauth2/authorize?appid=&redirect_uri=&response_type=code&scope=snsapi_base&state=&agentid=[&userid=]", "signs in (default: the first rep) and redirects with ?code=&state="),
        ("GET ", "/fake/jssdk/verify?url=&noncestr=&timestamp=&signature=", "checks a JS-SDK signature against the live tickets"),
        ("GET ", "/fake/mp/login-code?openid=|user=", "a js_code for jscode2session"),
        ("GET ", "/fake/mp/phone-code?openid=|user=[&phone=&country_code=]", "a getPhoneNumber code"),
        ("ANY ", "/fake/sink/...", "records what is posted (a stand-in gateway)"),
        ("ANY ", "/fake/send/wecom-add?gateway=&userid=&external_userid=[&state=]", "posts a signed add_external_contact callback to the gateway; answers its {status, body}"),
    ]
    .iter()
    .map(|(method, path, what)| format!("{method}{base_url}{path}  {what}"))
    .collect()
}
