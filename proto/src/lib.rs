//! anygan's wire protocol. The `anygan.v1` services (registration, heartbeats, step rendezvous,
//! the worker-to-worker collective) land here with distributed training (issue 3); until then
//! this crate only fixes the protocol version every peer will check.

/// Version of the wire protocol; a peer with another version is refused at registration.
pub const PROTOCOL_VERSION: u32 = 1;
