//! tagging-svc's integration tests, one binary: the real-time tagger, the internal API, saved
//! segments and the WeCom corp-tag sync, on MariaDB and SQLite.

#[macro_use]
mod api;
mod analytics;
mod leads;
mod personas;
mod realtime_segments;
mod segments;
mod tagger;
mod wecom_sync;
