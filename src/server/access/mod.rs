//! Toolset `access`: the token's privileges per toolset, and the RBAC bootstrap.

mod check;
mod rbac;
