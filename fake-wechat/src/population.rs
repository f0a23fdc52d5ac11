//! The fake's apps and people, generated deterministically from a seed: the same seed always
//! gives the same appids, secrets, openids, phones, reps, remarks and tags, so a test can state
//! the answers it expects.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use wechat::api::{AppCredentials, Secret};
use wechat::crypto::MsgCrypto;

/// Characters of openids, unionids, external_userids and tokens.
pub(crate) const ID_CHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Characters of secrets, callback tokens and EncodingAESKeys.
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";

/// Unix time the seeded population's timestamps are based on (2024-01-01T00:00:00Z).
pub const EPOCH: i64 = 1_704_067_200;

/// Ids of the OA system tags (immutable): 0, 1, 2 (星标组).
pub const OA_SYSTEM_TAG_IDS: [i64; 3] = [0, 1, 2];

pub(crate) fn random_string(rng: &mut impl Rng, chars: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(chars[rng.random_range(0..chars.len())]))
        .collect()
}

/// Which product a fake app is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FakeAppKind {
    /// Official Account.
    OfficialAccount,
    /// Mini-program.
    MiniProgram,
    /// A WeCom secret (customer contact or a self-built app).
    WeCom,
}

/// One fake app with everything a gateway needs to talk to it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeApp {
    /// Which product.
    pub kind: FakeAppKind,
    /// Short name: `oa`, `mp`, `wecom-contact`, `wecom-agent`.
    pub name: String,
    /// appid (OA/MP) or corpid (WeCom).
    pub appid: String,
    /// WeCom secret label (`contact` or the agent id); `None` for OA/MP.
    pub agent: Option<String>,
    /// AgentID of a WeCom self-built app.
    pub agent_id: Option<i64>,
    /// AppSecret / corpsecret.
    pub secret: String,
    /// Callback Token.
    pub token: String,
    /// Callback EncodingAESKey (43 characters).
    pub encoding_aes_key: String,
    /// Original id `gh_…` (OA/MP) or the corpid (WeCom): the `ToUserName` of callbacks.
    pub original_id: String,
}

impl FakeApp {
    /// Key of the app in the fake's counters: the appid, or `corpid:agent` for WeCom.
    pub fn key(&self) -> String {
        match &self.agent {
            Some(agent) => format!("{}:{agent}", self.appid),
            None => self.appid.clone(),
        }
    }

    /// The client credentials of this app.
    pub fn credentials(&self) -> AppCredentials {
        let secret = Secret::new(self.secret.clone());
        match self.kind {
            FakeAppKind::OfficialAccount => AppCredentials::official_account(&self.appid, secret),
            FakeAppKind::MiniProgram => AppCredentials::mini_program(&self.appid, secret),
            FakeAppKind::WeCom => {
                AppCredentials::wecom(&self.appid, self.agent.clone().unwrap_or_default(), secret)
            }
        }
    }

    /// The callback crypto of this app (receive id = appid / corpid).
    pub fn crypto(&self) -> MsgCrypto {
        match MsgCrypto::new(&self.token, &self.encoding_aes_key, &self.appid) {
            Ok(c) => c,
            // The key is generated as 43 alphanumeric characters, which always decode to 32
            // bytes; this arm is unreachable.
            Err(e) => unreachable!("generated EncodingAESKey rejected: {e}"),
        }
    }
}

/// The fake's apps: one Official Account, one mini-program and two secrets of one WeCom corp.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeApps {
    /// The Official Account.
    pub oa: FakeApp,
    /// The mini-program.
    pub mp: FakeApp,
    /// The WeCom customer-contact secret (can read contacts and write tags).
    pub wecom: FakeApp,
    /// A WeCom self-built app without customer-contact access (48001 on those APIs).
    pub wecom_agent: FakeApp,
}

impl FakeApps {
    /// Every app.
    pub fn all(&self) -> [&FakeApp; 4] {
        [&self.oa, &self.mp, &self.wecom, &self.wecom_agent]
    }

    /// The app with this counters key ([`FakeApp::key`]).
    pub fn by_key(&self, key: &str) -> Option<&FakeApp> {
        self.all().into_iter().find(|a| a.key() == key)
    }
}

/// A rep (WeCom member) who follows customers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeRep {
    /// WeCom userid.
    pub userid: String,
    /// Display name.
    pub name: String,
}

/// A user's state on the Official Account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeOaFollow {
    /// Follows the account.
    pub subscribed: bool,
    /// Unix time of the follow.
    pub subscribe_time: i64,
    /// `ADD_SCENE_…`.
    pub subscribe_scene: String,
    /// QR scene (0 unless followed through a QR code).
    pub qr_scene: i64,
    /// QR scene string (empty unless followed through a QR code).
    pub qr_scene_str: String,
    /// Operator remark.
    pub remark: String,
    /// Tag ids at start.
    pub tag_ids: Vec<i64>,
}

/// A rep following a customer, as `externalcontact/get` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeFollow {
    /// The rep's userid.
    pub userid: String,
    /// Remark.
    pub remark: String,
    /// Description.
    pub description: String,
    /// Unix time added.
    pub createtime: i64,
    /// `add_way` code.
    pub add_way: i32,
    /// Contact-me QR `state`.
    pub state: Option<String>,
    /// Corp tag ids at start.
    pub tag_ids: Vec<String>,
    /// Personal tag names (type 2, no id).
    pub personal_tags: Vec<String>,
    /// Phones the rep noted.
    pub remark_mobiles: Vec<String>,
}

/// One person with every identifier the ecosystem gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeUser {
    /// Position in [`Population::users`].
    pub index: usize,
    /// Display name.
    pub name: String,
    /// 0 unknown, 1 male, 2 female.
    pub gender: i32,
    /// openid under the Official Account.
    pub oa_openid: String,
    /// openid under the mini-program.
    pub mp_openid: String,
    /// UnionID, when the person's accounts are bound (most are).
    pub unionid: Option<String>,
    /// external_userid in the WeCom corp.
    pub external_userid: String,
    /// Mobile number (mainland China, 11 digits).
    pub phone: String,
    /// State on the Official Account.
    pub oa: FakeOaFollow,
    /// Reps who have the person as a contact (empty: not a contact, 84061).
    pub follows: Vec<FakeFollow>,
}

/// A corp tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeCorpTag {
    /// Tag id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Unix creation time.
    pub create_time: i64,
    /// Sort order.
    pub order: i64,
}

/// A corp tag group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeCorpTagGroup {
    /// Group id.
    pub group_id: String,
    /// Name.
    pub group_name: String,
    /// Unix creation time.
    pub create_time: i64,
    /// Sort order.
    pub order: i64,
    /// Tags.
    pub tags: Vec<FakeCorpTag>,
}

/// An Official Account tag at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeOaTag {
    /// Tag id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// Everyone and every tag the fake knows at start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Population {
    /// The people.
    pub users: Vec<FakeUser>,
    /// The reps.
    pub reps: Vec<FakeRep>,
    /// The corp tag library.
    pub corp_tag_groups: Vec<FakeCorpTagGroup>,
    /// The Official Account's tags (system tag 2 included).
    pub oa_tags: Vec<FakeOaTag>,
}

impl Population {
    /// The user with this OA openid.
    pub fn by_oa_openid(&self, openid: &str) -> Option<&FakeUser> {
        self.users.iter().find(|u| u.oa_openid == openid)
    }

    /// The user with this MP openid.
    pub fn by_mp_openid(&self, openid: &str) -> Option<&FakeUser> {
        self.users.iter().find(|u| u.mp_openid == openid)
    }

    /// The user with this external_userid.
    pub fn by_external_userid(&self, external_userid: &str) -> Option<&FakeUser> {
        self.users
            .iter()
            .find(|u| u.external_userid == external_userid)
    }

    /// The corp tag with this id and its group.
    pub fn corp_tag(&self, id: &str) -> Option<(&FakeCorpTagGroup, &FakeCorpTag)> {
        self.corp_tag_groups
            .iter()
            .find_map(|g| g.tags.iter().find(|t| t.id == id).map(|t| (g, t)))
    }

    /// The users who follow the OA now (`user/info` answers them in full).
    pub fn oa_followers(&self) -> impl Iterator<Item = &FakeUser> {
        self.users.iter().filter(|u| u.oa.subscribed)
    }

    /// A user who follows the OA and has at least one rep (the first such user).
    pub fn typical_user(&self) -> Option<&FakeUser> {
        self.users
            .iter()
            .find(|u| u.oa.subscribed && !u.follows.is_empty() && u.unionid.is_some())
    }
}

fn app(
    rng: &mut StdRng,
    kind: FakeAppKind,
    name: &str,
    corp: Option<&str>,
    agent: Option<(&str, Option<i64>)>,
) -> FakeApp {
    let appid = match corp {
        Some(c) => c.to_owned(),
        None => format!("wx{}", random_string(rng, HEX, 16)),
    };
    let original_id = match corp {
        Some(c) => c.to_owned(),
        None => format!("gh_{}", random_string(rng, HEX, 12)),
    };
    let secret_len = if kind == FakeAppKind::WeCom { 43 } else { 32 };
    FakeApp {
        kind,
        name: name.to_owned(),
        appid,
        agent: agent.map(|(a, _)| a.to_owned()),
        agent_id: agent.and_then(|(_, id)| id),
        secret: random_string(rng, ALNUM, secret_len),
        token: random_string(rng, ALNUM, 32),
        encoding_aes_key: random_string(rng, ALNUM, 43),
        original_id,
    }
}

/// Generates the apps of a seed.
pub(crate) fn generate_apps(seed: u64) -> FakeApps {
    let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed_a995);
    let oa = app(&mut rng, FakeAppKind::OfficialAccount, "oa", None, None);
    let mp = app(&mut rng, FakeAppKind::MiniProgram, "mp", None, None);
    let corpid = format!("ww{}", random_string(&mut rng, HEX, 16));
    let wecom = app(
        &mut rng,
        FakeAppKind::WeCom,
        "wecom-contact",
        Some(&corpid),
        Some(("contact", None)),
    );
    let wecom_agent = app(
        &mut rng,
        FakeAppKind::WeCom,
        "wecom-agent",
        Some(&corpid),
        Some(("1000002", Some(1_000_002))),
    );
    FakeApps {
        oa,
        mp,
        wecom,
        wecom_agent,
    }
}

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明", "超",
    "秀英", "海燕", "建华", "晓东", "志强",
];
const REP_NAMES: &[&str] = &["张销售", "李顾问", "王经理", "赵专员", "钱主管", "孙客服"];
const SCENES: &[&str] = &[
    "ADD_SCENE_SEARCH",
    "ADD_SCENE_QR_CODE",
    "ADD_SCENE_PROFILE_CARD",
    "ADD_SCENE_ACCOUNT_MIGRATION",
    "ADD_SCENE_OTHERS",
];
const REMARKS: &[&str] = &["", "老客户", "展会认识", "意向强", "价格敏感"];
const DESCRIPTIONS: &[&str] = &["", "对接采购事务", "技术负责人", "老板"];
const PERSONAL_TAGS: &[&str] = &["重点跟进", "已报价", "回访"];
const ADD_WAYS: &[i32] = &[1, 1, 1, 2, 3, 4, 6, 7, 201];

/// Generates the population of a seed: `users` people followed by `reps` reps.
pub(crate) fn generate_population(seed: u64, users: usize, reps: usize) -> Population {
    let mut rng = StdRng::seed_from_u64(seed);
    let reps: Vec<FakeRep> = (0..reps.max(1))
        .map(|i| FakeRep {
            userid: format!("rep{:02}", i + 1),
            name: REP_NAMES[i % REP_NAMES.len()].to_owned(),
        })
        .collect();

    let group_specs: [(&str, &[&str]); 3] = [
        ("客户等级", &["A级", "B级", "C级"]),
        ("客户来源", &["展会", "官网", "转介绍", "广告投放"]),
        ("购买意向", &["高", "中", "低"]),
    ];
    let corp_tag_groups: Vec<FakeCorpTagGroup> = group_specs
        .iter()
        .enumerate()
        .map(|(gi, (gname, tags))| FakeCorpTagGroup {
            group_id: format!("et{}", random_string(&mut rng, ID_CHARS, 30)),
            group_name: (*gname).to_owned(),
            create_time: EPOCH - 86_400 * (30 - gi as i64),
            order: (group_specs.len() - gi) as i64,
            tags: tags
                .iter()
                .enumerate()
                .map(|(ti, name)| FakeCorpTag {
                    id: format!("et{}", random_string(&mut rng, ID_CHARS, 30)),
                    name: (*name).to_owned(),
                    create_time: EPOCH - 86_400 * (30 - gi as i64) + ti as i64,
                    order: (tags.len() - ti) as i64,
                })
                .collect(),
        })
        .collect();
    let all_corp_tags: Vec<String> = corp_tag_groups
        .iter()
        .flat_map(|g| g.tags.iter().map(|t| t.id.clone()))
        .collect();

    let oa_tags = vec![
        FakeOaTag {
            id: 2,
            name: "星标组".to_owned(),
        },
        FakeOaTag {
            id: 100,
            name: "VIP客户".to_owned(),
        },
        FakeOaTag {
            id: 101,
            name: "潜在客户".to_owned(),
        },
        FakeOaTag {
            id: 102,
            name: "已购客户".to_owned(),
        },
    ];

    let users = (0..users)
        .map(|index| {
            let name = format!(
                "{}{}",
                SURNAMES.choose(&mut rng).copied().unwrap_or("王"),
                GIVEN.choose(&mut rng).copied().unwrap_or("伟")
            );
            let gender = rng.random_range(0..=2);
            let oa_openid = format!("o{}", random_string(&mut rng, ID_CHARS, 27));
            let mp_openid = format!("o{}", random_string(&mut rng, ID_CHARS, 27));
            let unionid_value = format!("o{}", random_string(&mut rng, ID_CHARS, 27));
            // Every seventh person has no Open Platform binding.
            let unionid = (index % 7 != 6).then_some(unionid_value);
            let external_userid = format!("wm{}", random_string(&mut rng, ID_CHARS, 30));
            let phone = format!(
                "13{:05}{:04}",
                rng.random_range(0..100_000u32),
                index % 10_000
            );

            let scene = SCENES.choose(&mut rng).copied().unwrap_or(SCENES[0]);
            let (qr_scene, qr_scene_str) = if scene == "ADD_SCENE_QR_CODE" {
                let n = rng.random_range(1..1000);
                (n, format!("campaign_{n}"))
            } else {
                (0, String::new())
            };
            let mut oa_tag_ids: Vec<i64> = oa_tags
                .iter()
                .map(|t| t.id)
                .filter(|_| rng.random_bool(0.3))
                .collect();
            oa_tag_ids.sort_unstable();
            let oa = FakeOaFollow {
                // Every fourth person has unfollowed.
                subscribed: index % 4 != 3,
                subscribe_time: EPOCH + 3_600 * index as i64,
                subscribe_scene: scene.to_owned(),
                qr_scene,
                qr_scene_str,
                remark: REMARKS.choose(&mut rng).copied().unwrap_or("").to_owned(),
                tag_ids: oa_tag_ids,
            };

            // Every fifth person is nobody's contact; the others have one to three reps.
            let follow_count = if index % 5 == 4 {
                0
            } else {
                rng.random_range(1..=3.min(reps.len()))
            };
            let first_rep = rng.random_range(0..reps.len());
            let follows = (0..follow_count)
                .map(|k| {
                    let rep = &reps[(first_rep + k) % reps.len()];
                    let mut tag_ids: Vec<String> = all_corp_tags
                        .iter()
                        .filter(|_| rng.random_bool(0.25))
                        .cloned()
                        .collect();
                    tag_ids.dedup();
                    let personal_tags: Vec<String> = PERSONAL_TAGS
                        .iter()
                        .filter(|_| rng.random_bool(0.2))
                        .map(|s| (*s).to_owned())
                        .collect();
                    FakeFollow {
                        userid: rep.userid.clone(),
                        remark: REMARKS.choose(&mut rng).copied().unwrap_or("").to_owned(),
                        description: DESCRIPTIONS
                            .choose(&mut rng)
                            .copied()
                            .unwrap_or("")
                            .to_owned(),
                        createtime: EPOCH + 86_400 + 3_600 * index as i64 + 60 * k as i64,
                        add_way: ADD_WAYS.choose(&mut rng).copied().unwrap_or(1),
                        state: rng
                            .random_bool(0.5)
                            .then(|| format!("qr_{}", rng.random_range(1..50))),
                        tag_ids,
                        personal_tags,
                        remark_mobiles: if rng.random_bool(0.5) {
                            vec![phone.clone()]
                        } else {
                            Vec::new()
                        },
                    }
                })
                .collect();

            FakeUser {
                index,
                name,
                gender,
                oa_openid,
                mp_openid,
                unionid,
                external_userid,
                phone,
                oa,
                follows,
            }
        })
        .collect();

    Population {
        users,
        reps,
        corp_tag_groups,
        oa_tags,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world() {
        assert_eq!(generate_apps(7), generate_apps(7));
        assert_ne!(generate_apps(7), generate_apps(8));
        assert_eq!(generate_population(7, 30, 4), generate_population(7, 30, 4));
        assert_ne!(
            generate_population(7, 30, 4).users[0].oa_openid,
            generate_population(8, 30, 4).users[0].oa_openid
        );
    }

    #[test]
    fn shapes() {
        let apps = generate_apps(1);
        for app in apps.all() {
            assert_eq!(app.encoding_aes_key.len(), 43);
            let c = app.crypto();
            let enc = c.encrypt("<xml/>", None).expect("encrypts");
            assert_eq!(c.decrypt(&enc).expect("decrypts"), "<xml/>");
        }
        let pop = generate_population(1, 40, 4);
        assert_eq!(pop.users.len(), 40);
        for u in &pop.users {
            assert_eq!(u.oa_openid.len(), 28);
            assert_eq!(u.external_userid.len(), 32);
            assert_eq!(u.phone.len(), 11);
        }
        assert!(pop.users.iter().any(|u| u.follows.is_empty()));
        assert!(pop.users.iter().any(|u| u.unionid.is_none()));
        assert!(pop.users.iter().any(|u| !u.oa.subscribed));
        assert!(pop.typical_user().is_some());
    }
}
