//! anygan coordinator: job state, membership, sharding plan, step rendezvous and checkpoint
//! manifests. The `coordinator start` server arrives with distributed training (issue 3).

pub use anygan_proto::PROTOCOL_VERSION;
