//! Transports: stdio (rmcp behind a strict framing layer) and Streamable HTTP (bearer auth,
//! Host/Origin checks, timeouts and caps); both parse frames with the same strict rules.

pub mod frame;
pub mod http;
pub mod sessions;
pub mod stdio;
pub mod warnings;
