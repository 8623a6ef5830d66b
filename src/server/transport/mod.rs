//! Transports: stdio is rmcp's; Streamable HTTP with bearer auth and Host/Origin checks is ours.

pub mod http;
