//! The roles a process can run and how each is started from the settings.

use platform::role::RoleError;
use platform::Deps;

use crate::settings::Settings;

/// One role of the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Gateway,
    Identity,
    Tagging,
    Scoring,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Gateway, Role::Identity, Role::Tagging, Role::Scoring];

    pub fn name(self) -> &'static str {
        match self {
            Role::Gateway => gateway::ROLE,
            Role::Identity => identity_svc::ROLE,
            Role::Tagging => tagging_svc::ROLE,
            Role::Scoring => scoring_svc::ROLE,
        }
    }
}

/// Why a role could not be configured or run.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] platform::config::ConfigError),
    #[error(transparent)]
    Role(#[from] RoleError),
}

/// Runs `role` until `deps.shutdown`.
pub async fn run(role: Role, settings: &Settings, deps: Deps) -> Result<(), StartError> {
    match role {
        Role::Gateway => gateway::run(settings.role(role)?, deps).await?,
        Role::Identity => identity_svc::run(settings.role(role)?, deps).await?,
        Role::Tagging => tagging_svc::run(settings.role(role)?, deps).await?,
        Role::Scoring => scoring_svc::run(settings.role(role)?, deps).await?,
    }
    Ok(())
}

/// Creates `role`'s database if needed and applies its migrations.
pub async fn migrate(role: Role, settings: &Settings) -> Result<(), StartError> {
    match role {
        Role::Gateway => gateway::migrate(&settings.role(role)?).await?,
        Role::Identity => identity_svc::migrate(&settings.role(role)?).await?,
        Role::Tagging => tagging_svc::migrate(&settings.role(role)?).await?,
        Role::Scoring => scoring_svc::migrate(&settings.role(role)?).await?,
    }
    Ok(())
}

/// Reads and validates `role`'s config section without starting anything.
pub fn check(role: Role, settings: &Settings) -> Result<(), StartError> {
    match role {
        Role::Gateway => settings.role::<gateway::Config>(role).map(drop)?,
        Role::Identity => settings.role::<identity_svc::Config>(role).map(drop)?,
        Role::Tagging => settings.role::<tagging_svc::Config>(role).map(drop)?,
        Role::Scoring => settings.role::<scoring_svc::Config>(role).map(drop)?,
    }
    Ok(())
}
