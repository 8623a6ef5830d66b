//! placeholder: filled by the pve work.
