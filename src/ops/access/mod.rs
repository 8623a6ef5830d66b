//! Who may do what: the token's privileges per toolset (`access_check`) and the RBAC bootstrap over SSH.

pub(crate) mod check;
pub mod endpoints;
pub(crate) mod rbac;

/// The seed's ClaudeCodeManager privileges, as the design document lists them.
pub use rbac::SEED_PRIVILEGES;
