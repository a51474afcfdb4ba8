//! The store as real processes started by `cluster/up.sh`: kill -9, restart, the client.
