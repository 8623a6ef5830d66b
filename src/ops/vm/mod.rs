//! Guests: list and inspect, create from a template, power, resize, tags, delete.

pub(crate) mod agent;
pub(crate) mod create;
pub(crate) mod delete;
pub(crate) mod edit;
pub(crate) mod inventory;
pub mod listing;
pub(crate) mod power;
pub mod select;
