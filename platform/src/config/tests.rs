//! Tests of configuration loading.

use super::*;

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct Root {
    bus: BusConfig,
    cache: CacheConfig,
}
impl Validate for Root {
    fn validate(&self, p: &str) -> Result<(), ConfigError> {
        self.bus.validate(&key(p, "bus"))?;
        self.cache.validate(&key(p, "cache"))
    }
}

fn defaults() -> Root {
    Root {
        bus: BusConfig::memory(),
        cache: CacheConfig::memory(),
    }
}

#[test]
fn unknown_key_is_named() {
    let dir = std::env::temp_dir().join(format!("cfg-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("c.toml");
    std::fs::write(&file, "[bus]\nkind = \"memory\"\nprefetchh = 3\n").unwrap();
    let err = extract::<Root>(&figment(defaults(), Some(&file)).unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("prefetchh"), "{msg}");
    assert!(msg.contains("bus"), "{msg}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn amqp_without_url_names_key() {
    let fig = figment(defaults(), None)
        .unwrap()
        .merge(Serialized::default("bus.kind", "amqp"));
    let err = extract::<Root>(&fig).unwrap_err();
    assert!(err.to_string().contains("`bus.url`"), "{err}");
}

#[test]
fn wrong_type_names_key() {
    let fig = figment(defaults(), None)
        .unwrap()
        .merge(Serialized::default("bus.prefetch", "lots"));
    let err = extract::<Root>(&fig).unwrap_err();
    assert!(err.to_string().contains("bus.prefetch"), "{err}");
}

#[test]
fn missing_file_is_reported() {
    let err = figment(defaults(), Some(Path::new("/nonexistent/scrm.toml"))).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/scrm.toml"));
}

#[test]
fn secret_does_not_print() {
    let s = Secret::new("amqp://u:p@h");
    assert_eq!(format!("{s:?}"), "Secret(***)");
}
