//! The system end to end, one binary: `scrm up` and the production roles as processes, driven
//! through the gateway as WeChat, operators and reps drive it, and projections across services
//! (un-merge through identity, tagging and scoring). `metrics_help` has a binary of its own: the
//! process-wide metrics recorder must hold only what that test records.

mod admin;
mod audience;
mod channel_codes;
mod cli;
mod common;
mod enrichment;
mod gateway;
mod identity;
mod kill;
mod migrations;
mod notify;
mod notify_replicas;
mod operability;
mod replicas;
mod scoring;
mod sidebar;
mod tagging;
mod unmerge_projections;
mod wechat_tokens;
mod wecom_sync;
