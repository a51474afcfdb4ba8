//! Orders through the front-end: leader selection, forwarding, exactly-once failover.
