//! Starting roles in this process: all of them for `scrm up`, one for a production role.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use platform::Deps;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::roles::{self, Role, StartError};
use crate::settings::{self, Mode, Settings};

/// Default listener of the gateway in `scrm up`.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Options of `scrm up`.
#[derive(Debug, Clone)]
pub struct UpOptions {
    /// Where the SQLite files live (created if missing).
    pub data_dir: PathBuf,
    /// Gateway listener; the services take the next three ports (port 0: all pick free ports).
    pub bind: Option<SocketAddr>,
    /// Optional config file layered over the embedded defaults.
    pub config: Option<PathBuf>,
    /// Install the tracing subscriber (the binary does; tests keep quiet).
    pub init_tracing: bool,
    /// Settings merged over everything else (tests point the bus at RabbitMQ, register apps…).
    pub overrides: Option<serde_json::Value>,
}

/// Roles running in this process.
pub struct Running {
    /// Bound address of each role.
    pub addrs: BTreeMap<&'static str, SocketAddr>,
    pub deps: Deps,
    tasks: JoinSet<(Role, Result<(), StartError>)>,
}

impl Running {
    /// `http://addr` of a role.
    pub fn url(&self, role: Role) -> String {
        match self.addrs.get(role.name()) {
            Some(a) => format!("http://{a}"),
            None => String::new(),
        }
    }

    /// Waits until a shutdown signal or until a role stops on its own (an error), then stops all.
    pub async fn wait_for_signal(mut self) -> anyhow::Result<()> {
        let first = tokio::select! {
            _ = shutdown_signal() => {
                tracing::info!("Shutdown requested");
                None
            }
            Some(done) = self.tasks.join_next() => Some(done),
        };
        let failure = match first {
            Some(Ok((role, Err(e)))) => {
                Some(anyhow!(e).context(format!("{} stopped", role.name())))
            }
            Some(Ok((role, Ok(())))) => Some(anyhow!("{} stopped unexpectedly", role.name())),
            Some(Err(e)) => Some(anyhow!("a role task failed: {e}")),
            None => None,
        };
        let rest = self.stop().await;
        match failure {
            Some(e) => Err(e),
            None => rest,
        }
    }

    /// Stops every role and waits for them to drain.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.deps.shutdown.cancel();
        let mut first_err = None;
        while let Some(done) = self.tasks.join_next().await {
            if let Ok((role, Err(e))) = done {
                tracing::error!(role = role.name(), error = %e, "Role stopped with an error");
                first_err.get_or_insert(anyhow!(e));
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Deep-merges `over` into `base` (objects key by key; anything else replaces).
fn merge(base: &mut serde_json::Value, over: serde_json::Value) {
    match (base, over) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// Makes sure `dir` exists and can be written, with a message that says what is wrong.
pub fn prepare_data_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() && !dir.is_dir() {
        bail!("data dir {} exists but is not a directory", dir.display());
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let probe = dir.join(".scrm-write-check");
    std::fs::write(&probe, b"ok")
        .with_context(|| format!("data dir {} is not writable", dir.display()))?;
    let _ = std::fs::remove_file(probe);
    Ok(())
}

/// A key kept in the embedded data dir (`gateway.key` seals app secrets; `internal.key`
/// authenticates calls to the gateway's internal endpoints), created on first start: 32 random
/// bytes in base64. Two files rather than one key derived from the other, so the key that seals
/// secrets is never an input to a credential handed to other roles, and each can be replaced
/// on its own.
fn data_dir_key(dir: &Path, file: &str) -> anyhow::Result<String> {
    let path = dir.join(file);
    match std::fs::read_to_string(&path) {
        Ok(k) => Ok(k.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = gateway::domain::keys::Keys::generate_base64();
            write_private(&path, &key)
                .with_context(|| format!("cannot write {}", path.display()))?;
            Ok(key)
        }
        Err(e) => Err(anyhow!(e).context(format!("cannot read {}", path.display()))),
    }
}

#[cfg(unix)]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(content.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, content: &str) -> std::io::Result<()> {
    std::fs::write(path, content)
}

/// `scrm up`: every role in this process on embedded defaults.
pub async fn start_embedded(opts: UpOptions) -> anyhow::Result<Running> {
    prepare_data_dir(&opts.data_dir)?;
    let default_bind: SocketAddr = DEFAULT_BIND.parse()?;
    let mut extra = opts.overrides.clone().unwrap_or_else(|| json!({}));
    if let Some(b) = opts.bind {
        merge(&mut extra, json!({"gateway": {"http": {"bind": b}}}));
    }
    let key = data_dir_key(&opts.data_dir, "gateway.key")?;
    let internal_key = data_dir_key(&opts.data_dir, "internal.key")?;
    let defaults = settings::embedded_defaults(
        &opts.data_dir,
        opts.bind.unwrap_or(default_bind),
        &key,
        &internal_key,
    );
    let settings = Settings::load(
        Mode::Embedded,
        opts.config.as_deref(),
        defaults,
        Some(extra),
    )?;
    if opts.init_tracing {
        platform::telemetry::init_tracing(&settings.telemetry);
    }
    start(settings, &Role::ALL, true).await
}

/// `http://addr`, with an unspecified address (`0.0.0.0`, `::`) replaced by loopback.
fn local_url(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if !ip.is_unspecified() => ip,
        std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// The sections of the services that call WeChat with tokens from the gateway
/// ([`wechat::api::WechatAccessConfig`]): identity's lookups, tagging's corp-tag sync.
const WECHAT_CLIENTS: [&str; 2] = ["identity.wechat", "tagging.wechat"];

/// Points every service's WeChat access at this process's gateway, wherever the config does not
/// say otherwise: the gateway's URL (`gateway` is where it listens or will listen), its internal
/// key and its WeChat API base URLs.
pub(crate) fn link_to_gateway(settings: &mut Settings, gateway: SocketAddr) {
    for section in WECHAT_CLIENTS {
        let links = [
            ("internal_key", "gateway.internal_key"),
            ("oa_base_url", "gateway.wechat_api.oa_base_url"),
            ("wecom_base_url", "gateway.wechat_api.wecom_base_url"),
        ];
        for (key, source) in links {
            let target = format!("{section}.{key}");
            if let (false, Some(v)) = (settings.is_set(&target), settings.value(source)) {
                settings.set(&target, v);
            }
        }
        let url = format!("{section}.gateway_url");
        if !settings.is_set(&url) {
            settings.set(&url, json!(local_url(gateway)));
        }
    }
}

/// A production role (or several) in this process against the configured servers.
pub async fn start_production(config: Option<&Path>, roles: &[Role]) -> anyhow::Result<Running> {
    let settings = Settings::load(
        Mode::Production,
        config,
        settings::production_defaults(),
        None,
    )?;
    platform::telemetry::init_tracing(&settings.telemetry);
    start(settings, roles, false).await
}

async fn start(
    mut settings: Settings,
    roles: &[Role],
    migrate_on_start: bool,
) -> anyhow::Result<Running> {
    platform::telemetry::metrics();
    // Embedded: identity and tagging ask this process's gateway for WeChat tokens. Linked to
    // the configured listener now (so the checks below see a complete config) and, when the
    // port is picked at start (port 0), again once the gateway listens — it starts first for
    // that reason.
    let link = settings.mode == Mode::Embedded && roles.contains(&Role::Gateway);
    let relink: Vec<String> = WECHAT_CLIENTS
        .iter()
        .map(|s| format!("{s}.gateway_url"))
        .filter(|k| link && !settings.is_set(k))
        .collect();
    if link {
        let bind = settings
            .value("gateway.http.bind")
            .and_then(|v| serde_json::from_value::<SocketAddr>(v).ok())
            .ok_or_else(|| anyhow!("gateway.http.bind is not an address"))?;
        link_to_gateway(&mut settings, bind);
    }
    // Check every role's section before connecting anything, so a config error comes first.
    for role in roles {
        roles::check(*role, &settings)?;
    }
    let bus = platform::bus::connect(&settings.bus)
        .await
        .context("cannot connect to the message broker (bus)")?;
    let cache = platform::cache::connect(&settings.cache)
        .await
        .context("cannot connect to the cache")?;
    // Every process declares every consumer group, so nothing published before a consumer's
    // first start is dropped as unroutable.
    platform::bus::declare_groups(&*bus, proto::routing::GROUPS)
        .await
        .map_err(|(group, e)| {
            anyhow!(e).context(format!("cannot declare the `{group}` consumer group"))
        })?;
    // Readers outside the system get the groups the config declares for them.
    for o in &settings.bus.outlets {
        let bindings: Vec<&str> = o.bindings.iter().map(String::as_str).collect();
        let spec = platform::bus::GroupSpec::with_policy(&o.name, &bindings, &bus.policy());
        bus.declare(&spec)
            .await
            .with_context(|| format!("cannot declare the outlet `{}`", o.name))?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let deps = Deps {
        bus,
        cache,
        shutdown: CancellationToken::new(),
        migrate_on_start,
        listening: Some(tx),
        tasks: Default::default(),
        peers: Default::default(),
    };
    let mut tasks = JoinSet::new();
    let mut addrs = BTreeMap::new();
    let (first, rest): (Vec<Role>, Vec<Role>) = if link {
        roles.iter().partition(|r| **r == Role::Gateway)
    } else {
        (Vec::new(), roles.to_vec())
    };
    let shared = Arc::new(settings);
    spawn_roles(&mut tasks, &first, &shared, &deps);
    wait_listening(&mut tasks, &mut rx, &mut addrs, first.len(), &deps).await?;
    // The gateway keeps its copy; the other roles get the linked one.
    let mut settings = Settings::clone(&shared);
    if let Some(addr) = addrs.get(Role::Gateway.name()) {
        for key in &relink {
            settings.set(key, json!(local_url(*addr)));
        }
    }
    spawn_roles(&mut tasks, &rest, &Arc::new(settings), &deps);
    wait_listening(&mut tasks, &mut rx, &mut addrs, roles.len(), &deps).await?;
    Ok(Running { addrs, deps, tasks })
}

type RoleTasks = JoinSet<(Role, Result<(), StartError>)>;

fn spawn_roles(tasks: &mut RoleTasks, roles: &[Role], settings: &Arc<Settings>, deps: &Deps) {
    for role in roles {
        let (role, settings, deps) = (*role, settings.clone(), deps.clone());
        tasks.spawn(async move { (role, roles::run(role, &settings, deps).await) });
    }
}

/// Collects listening addresses until `count` roles listen; a role that stops first stops all.
async fn wait_listening(
    tasks: &mut RoleTasks,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<(&'static str, SocketAddr)>,
    addrs: &mut BTreeMap<&'static str, SocketAddr>,
    count: usize,
    deps: &Deps,
) -> anyhow::Result<()> {
    while addrs.len() < count {
        tokio::select! {
            Some((role, addr)) = rx.recv() => {
                addrs.insert(role, addr);
                deps.peers
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(role.to_string(), addr);
            }
            Some(done) = tasks.join_next() => {
                deps.shutdown.cancel();
                while tasks.join_next().await.is_some() {}
                return Err(match done {
                    Ok((role, Err(e))) => anyhow!(e).context(format!("{} failed to start", role.name())),
                    Ok((role, Ok(()))) => anyhow!("{} stopped during start", role.name()),
                    Err(e) => anyhow!("a role task failed: {e}"),
                });
            }
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: serde_json::Value) -> Settings {
        let dir = std::env::temp_dir();
        let defaults = settings::embedded_defaults(
            &dir,
            "0.0.0.0:0".parse().expect("address"),
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            "internal-key-for-tests-0123456789abcdef",
        );
        Settings::load(Mode::Embedded, None, defaults, Some(extra)).expect("loads")
    }

    #[test]
    fn identity_and_tagging_are_linked_to_this_process_gateway() {
        let mut s = settings(json!({"gateway": {"wechat_api": {
            "oa_base_url": "http://127.0.0.1:9/oa", "wecom_base_url": "http://127.0.0.1:9/wecom"}}}));
        link_to_gateway(&mut s, "0.0.0.0:8080".parse().expect("address"));
        let id: identity_svc::Config = s.role(Role::Identity).expect("identity config");
        assert!(id.wechat.access.enabled);
        assert_eq!(id.wechat.access.gateway_url, "http://127.0.0.1:8080");
        assert_eq!(
            id.wechat.access.internal_key.expose(),
            "internal-key-for-tests-0123456789abcdef"
        );
        assert_eq!(id.wechat.access.oa_base_url, "http://127.0.0.1:9/oa");
        assert_eq!(id.wechat.access.wecom_base_url, "http://127.0.0.1:9/wecom");
        let gw: gateway::Config = s.role(Role::Gateway).expect("gateway config");
        assert_eq!(gw.internal_key, id.wechat.access.internal_key);
        let tagging: tagging_svc::Config = s.role(Role::Tagging).expect("tagging config");
        assert_eq!(tagging.wechat, id.wechat.access, "the same access");
    }

    #[test]
    fn explicit_identity_settings_win() {
        let mut s = settings(json!({"identity": {"wechat": {
            "gateway_url": "http://gw.internal:8080", "oa_base_url": "http://127.0.0.1:9"}}}));
        link_to_gateway(&mut s, "127.0.0.1:8080".parse().expect("address"));
        let id: identity_svc::Config = s.role(Role::Identity).expect("identity config");
        assert_eq!(id.wechat.access.gateway_url, "http://gw.internal:8080");
        assert_eq!(id.wechat.access.oa_base_url, "http://127.0.0.1:9");
        assert_eq!(
            id.wechat.access.wecom_base_url,
            "https://qyapi.weixin.qq.com"
        );
        assert_eq!(
            local_url("[::]:81".parse().expect("address")),
            "http://[::1]:81"
        );
    }
}
