//! Real processes (filled in with the cluster scripts).
