//! Toolset `access`: the token's privileges per toolset, and the RBAC bootstrap.

pub(crate) mod check;
pub(crate) mod rbac;
