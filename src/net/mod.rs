//! Transport only: each function performs one network operation under a timeout and returns a
//! typed outcome carrying evidence. Foreign errors (hickory, errno, rustls, hyper) are mapped
//! once, in one `classify` function per source. Nothing here knows about check ids or reports.

pub mod connect;
pub mod echo;
pub mod fleet;
pub mod http;
pub mod pipeline;
pub mod proxy;
pub mod resolve;
pub mod tls;

/// The most bytes read from any response (headers and body): a hostile or confused server
/// cannot make the tool buffer without bound.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
