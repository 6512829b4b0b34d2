//! Deterministic random streams, shared with the shard plan (see `anygan_proto::rng`).

pub use anygan_proto::rng::{
    Purpose, fill_standard_normal, fill_standard_normal_at, standard_normal_words, stream,
};
