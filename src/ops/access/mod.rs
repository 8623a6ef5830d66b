//! Who may do what: the token's privileges per toolset (`access_check`) and the RBAC bootstrap over SSH.

pub(crate) mod check;
pub(crate) mod rbac;
