//! placeholder: filled by the server work.
