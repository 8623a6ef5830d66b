//! Toolset `vm`: reads (list, get) and the lifecycle (create, power, resize, tags, delete).

mod lifecycle;
mod read;
