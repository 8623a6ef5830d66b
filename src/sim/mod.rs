//! placeholder: filled by the sim work.
