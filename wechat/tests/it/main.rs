//! wechat's integration tests, one binary: published vectors, the callback codecs and their
//! fixture corpus, property tests, and the API client against the fake WeChat server.

mod api;
mod codec;
mod conformance;
mod delegated;
mod fixture_corpus;
mod properties;
