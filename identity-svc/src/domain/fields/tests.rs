//! Tests of the field catalogue.

use super::*;

fn now() -> DateTime<Utc> {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

#[test]
fn aliases_and_custom_fields_resolve() {
    assert_eq!(
        lookup("company", &[]),
        Some(("company.name".into(), Kind::Plain(FieldType::String)))
    );
    assert_eq!(lookup("custom.level", &[]), None);
    let custom = [CustomField {
        name: "level".into(),
        value_type: FieldType::Number,
        label: String::new(),
    }];
    assert_eq!(
        lookup("custom.level", &custom),
        Some(("custom.level".into(), Kind::Plain(FieldType::Number)))
    );
    assert_eq!(lookup("whatever", &custom), None);
    assert!(valid_custom_name("vip_level2"));
    assert!(!valid_custom_name("2x") && !valid_custom_name("A") && !valid_custom_name(""));
}

#[test]
fn cleaning_types_and_plausibility() {
    let n = now();
    let s = Kind::Plain(FieldType::String);
    assert_eq!(clean(s, &json!("  Acme "), n), Ok(Some(json!("Acme"))));
    assert_eq!(clean(s, &json!(""), n), Ok(None));
    assert_eq!(clean(s, &json!({"a": 1}), n), Err(Rejection::WrongType));
    let num = Kind::Plain(FieldType::Number);
    assert_eq!(clean(num, &json!("42"), n), Ok(Some(json!(42.0))));
    assert_eq!(clean(num, &json!("many"), n), Err(Rejection::WrongType));
    let date = Kind::Plain(FieldType::Date);
    assert_eq!(
        clean(date, &json!("1990/02/03"), n),
        Ok(Some(json!("1990-02-03")))
    );
    assert_eq!(
        clean(date, &json!("1990-02-31"), n),
        Err(Rejection::InvalidDate)
    );
    assert_eq!(
        plausible("contact.birthday", &json!("2030-01-01"), n),
        Err(Rejection::FutureDate)
    );
    assert_eq!(
        plausible("contact.age", &json!(-3.0), n),
        Err(Rejection::ImpossibleAge)
    );
    assert_eq!(plausible("contact.age", &json!(30.0), n), Ok(()));
    assert_eq!(clean(Kind::Gender, &json!(2), n), Ok(Some(json!("female"))));
    assert_eq!(
        clean(Kind::Gender, &json!("男"), n),
        Ok(Some(json!("male")))
    );
    assert_eq!(
        clean(Kind::Gender, &json!("x"), n),
        Err(Rejection::InvalidGender)
    );
    let dt = Kind::Plain(FieldType::Datetime);
    assert_eq!(
        clean(dt, &json!("2026-01-01T08:00:00+08:00"), n),
        Ok(Some(json!("2026-01-01T00:00:00Z")))
    );
}

#[test]
fn touches_from_properties_and_objects() {
    let p = std::collections::BTreeMap::from([
        ("utm_source".to_string(), json!("wechat")),
        ("utm_campaign".to_string(), json!("spring")),
        ("source_levels".to_string(), json!("online > wechat > oa")),
        ("other".to_string(), json!("x")),
    ]);
    let t: Touch = serde_json::from_value(touch_from_properties(&p).unwrap()).unwrap();
    assert_eq!(t.channel.as_deref(), Some("wechat"));
    assert_eq!(t.campaign.as_deref(), Some("spring"));
    assert_eq!(t.levels, vec!["online", "wechat", "oa"]);
    assert_eq!(touch_from_properties(&Default::default()), None);
    let mut flat = std::collections::BTreeMap::new();
    t.flatten("source.first", &mut flat);
    assert_eq!(flat["source.first.level3"], json!("oa"));
    assert_eq!(flat["source.first.channel"], json!("wechat"));
}

#[test]
fn phones_become_e164() {
    for (raw, want) in [
        ("138 0013 8001", Some(("+8613800138001", "86"))),
        ("+86 138-0013-8001", Some(("+8613800138001", "86"))),
        ("008613800138001", Some(("+8613800138001", "86"))),
        ("+1 (415) 555-0134", Some(("+14155550134", "1"))),
        ("+852 9123 4567", Some(("+85291234567", "852"))),
        ("12345", None),
        ("call me", None),
        ("", None),
    ] {
        let got = normalise_phone(raw, "CN");
        assert_eq!(
            got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            want,
            "{raw}"
        );
    }
    // An international number keeps every digit whatever the default region's national
    // prefix (US: 1).
    assert_eq!(
        normalise_phone("+86 138-0013-8001", "US"),
        Some(("+8613800138001".into(), "86".into()))
    );
}

#[test]
fn phones_to_look_up_take_the_national_number_and_e164() {
    for (raw, region, want) in [
        ("13800138000", "CN", Some(("+8613800138000", "86"))),
        ("+8613800138000", "CN", Some(("+8613800138000", "86"))),
        ("+86 138-0013-8000", "US", Some(("+8613800138000", "86"))),
        ("008613800138000", "CN", Some(("+8613800138000", "86"))),
        ("4155550134", "US", Some(("+14155550134", "1"))),
        // Not in the numbering plans, but shaped like E.164: still looked up.
        ("+86 1380013800012345", "CN", None),
        ("+8610000000", "CN", Some(("+8610000000", "86"))),
        ("abc", "CN", None),
        ("", "CN", None),
    ] {
        let got = lookup_phone(raw, region);
        assert_eq!(
            got.as_ref().map(|(a, b)| (a.as_str(), b.as_str())),
            want,
            "{raw} in {region}"
        );
    }
    assert_eq!(region_of_calling_code("86").as_deref(), Some("CN"));
    assert_eq!(region_of_calling_code("1").as_deref(), Some("US"));
    assert_eq!(region_of_calling_code("999"), None);
    assert_eq!(region_of_calling_code("x"), None);
}

#[test]
fn every_source_key_the_gateway_lets_through_is_read() {
    for key in proto::sdk::SOURCE_KEYS {
        let p: std::collections::BTreeMap<String, Value> =
            [(key.to_string(), json!("expo"))].into_iter().collect();
        assert!(touch_from_properties(&p).is_some(), "{key} makes a touch");
    }
}
