//! Bandwidth-optimal ring all-reduce over gRPC client streams.
//!
//! With n ranks the vector is cut into n segments. In 2(n−1) hops every rank sends one segment
//! to its right neighbour and receives one from its left: the first n−1 hops add what arrives
//! (reduce-scatter, after which rank r holds the full sum of segment r+1), the last n−1 hops copy
//! it (all-gather). Each rank sends 2(n−1)/n of the vector. Segments travel in chunks, and a
//! chunk received at hop h is forwarded as hop h+1 as soon as it is reduced, so hops overlap
//! (pipelining) and no message approaches tonic's 4 MiB cap. Every final value is computed on
//! exactly one rank and copied to the others, so all ranks end with identical bits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::service::MAX_CHUNK_MESSAGE_BYTES;
use super::{GradientAllReduce, Inbox, segment_bounds};
use crate::error::{Error, Result};
use anygan_proto::security::{AuthedChannel, Security};
use anygan_proto::v1::RingChunk;
use anygan_proto::v1::collective_client::CollectiveClient;

#[cfg(target_endian = "big")]
compile_error!(
    "the ring sends f32 values in native order, which the wire defines as little-endian"
);

/// HTTP/2 flow-control windows of the ring's streams. h2's default (64 KiB) makes a 1 MiB chunk
/// wait for ~16 window updates, each a round trip; a window of several chunks keeps the link
/// busy. Memory stays bounded: one stream per rank.
pub const HTTP2_STREAM_WINDOW: u32 = 16 * 1024 * 1024;
pub const HTTP2_CONNECTION_WINDOW: u32 = 32 * 1024 * 1024;

/// Values per chunk by default: 1 MiB of f32.
pub const DEFAULT_CHUNK_VALUES: usize = 256 * 1024;

/// One rank's place in the ring.
#[derive(Debug, Clone)]
pub struct RingConfig {
    pub rank: usize,
    pub world_size: usize,
    /// Membership generation; chunks carry it and receivers refuse other generations.
    pub generation: u64,
    /// host:port of the right neighbour's Collective service.
    pub right_address: String,
    /// A hop whose chunk does not arrive within this fails the operation.
    pub timeout: Duration,
    pub chunk_values: usize,
    /// TLS and token of the connection to the right neighbour.
    pub security: Security,
}

/// The ring all-reduce of one rank (async).
pub struct RingAllReduce {
    config: RingConfig,
    inbox: Arc<Inbox>,
    right: Option<CollectiveClient<AuthedChannel>>,
    operation: u64,
}

impl RingAllReduce {
    pub fn new(config: RingConfig, inbox: Arc<Inbox>) -> Self {
        Self {
            config,
            inbox,
            right: None,
            operation: 0,
        }
    }

    pub fn config(&self) -> &RingConfig {
        &self.config
    }

    fn peer_error(&self, reason: impl Into<String>) -> Error {
        Error::Collective {
            peer: self.config.right_address.clone(),
            reason: reason.into(),
        }
    }

    async fn right(&mut self) -> Result<CollectiveClient<AuthedChannel>> {
        if let Some(client) = &self.right {
            return Ok(client.clone());
        }
        let address = &self.config.right_address;
        let endpoint = self
            .config
            .security
            .endpoint(address)
            .map_err(|e| self.peer_error(e))?
            .connect_timeout(self.config.timeout)
            .tcp_nodelay(true)
            .initial_stream_window_size(HTTP2_STREAM_WINDOW)
            .initial_connection_window_size(HTTP2_CONNECTION_WINDOW);
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| self.peer_error(format!("cannot connect: {e}")))?;
        let client = CollectiveClient::new(self.config.security.authed(channel))
            .max_decoding_message_size(MAX_CHUNK_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_CHUNK_MESSAGE_BYTES);
        self.right = Some(client.clone());
        Ok(client)
    }

    fn superseded_error(&self, newest: u64) -> Error {
        Error::Collective {
            peer: "the coordinator".into(),
            reason: format!(
                "generation {} was superseded by generation {newest} (the ring was re-formed)",
                self.config.generation
            ),
        }
    }

    /// Replaces `data` by its element-wise sum over all ranks.
    pub async fn sum(&mut self, data: &mut [f32]) -> Result<()> {
        let n = self.config.world_size;
        let rank = self.config.rank;
        if n <= 1 || data.is_empty() {
            return Ok(());
        }
        let operation = self.operation;
        self.operation += 1;
        let hops = 2 * (n - 1);
        let chunk_values = self.config.chunk_values.max(1);
        let len = data.len();
        let chunks_in =
            |segment: usize| segment_bounds(len, n, segment).len().div_ceil(chunk_values);
        let total_chunks: usize = (0..hops)
            .map(|hop| chunks_in(send_segment(rank, n, hop)))
            .sum();

        // Holds every chunk of this operation, so enqueueing never waits on the network and
        // receiving always makes progress.
        let (outgoing, queued) = mpsc::channel::<RingChunk>(total_chunks.max(1));
        let mut right = self.right().await?;
        let push = tokio::spawn(async move { right.push(ReceiverStream::new(queued)).await });
        let chunk_message = |hop: usize, chunk: usize, values: &[f32]| RingChunk {
            generation: self.config.generation,
            operation,
            sender_rank: rank as u32,
            hop: hop as u32,
            chunk: chunk as u32,
            values: Bytes::copy_from_slice(bytemuck::cast_slice(values)),
        };

        let own = segment_bounds(len, n, send_segment(rank, n, 0));
        for (chunk, start) in own.clone().step_by(chunk_values).enumerate() {
            let end = (start + chunk_values).min(own.end);
            let _ = outgoing
                .send(chunk_message(0, chunk, &data[start..end]))
                .await; // capacity holds all
        }

        let generation = self.config.generation;
        let mut newest = self.inbox.newest();
        let superseded = |newest: &tokio::sync::watch::Receiver<u64>| *newest.borrow() > generation;
        let mut inbox = self.inbox.receiver().await;
        for hop in 0..hops {
            let segment = segment_bounds(len, n, receive_segment(rank, n, hop));
            for (chunk, start) in segment.clone().step_by(chunk_values).enumerate() {
                let end = (start + chunk_values).min(segment.end);
                if superseded(&newest) {
                    return Err(self.superseded_error(*newest.borrow()));
                }
                let received = tokio::select! {
                    received = tokio::time::timeout(self.config.timeout, inbox.recv()) => received,
                    seen = newest.wait_for(|&g| g > generation) => {
                        let newer = seen.map(|g| *g).unwrap_or(u64::MAX);
                        return Err(self.superseded_error(newer));
                    }
                };
                let message = match received {
                    // A newer ring's chunk: the neighbour moved on; so must this operation.
                    // The chunk waits for that ring.
                    Ok(Some(message)) if message.generation > generation => {
                        let newer = message.generation;
                        inbox.put_back(message);
                        return Err(self.superseded_error(newer));
                    }
                    Ok(Some(message)) => message,
                    Ok(None) => return Err(self.peer_error("the inbox closed")),
                    Err(_) => {
                        let left = (rank + n - 1) % n;
                        return Err(Error::Collective {
                            peer: format!("rank {left} (left neighbour)"),
                            reason: format!(
                                "no chunk {chunk} of hop {hop} of operation {operation} within {:?}",
                                self.config.timeout
                            ),
                        });
                    }
                };
                check_chunk(&message, operation, hop, chunk, end - start).map_err(|reason| {
                    Error::Collective {
                        peer: format!("rank {}", message.sender_rank),
                        reason,
                    }
                })?;
                let target = &mut data[start..end];
                let values = message
                    .values
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                if hop < n - 1 {
                    target.iter_mut().zip(values).for_each(|(t, v)| *t += v);
                } else {
                    target.iter_mut().zip(values).for_each(|(t, v)| *t = v);
                }
                if hop + 1 < hops {
                    let _ = outgoing.send(chunk_message(hop + 1, chunk, target)).await;
                }
            }
        }
        drop(outgoing);
        match tokio::time::timeout(self.config.timeout, push).await {
            Ok(Ok(Ok(_))) => Ok(()),
            Ok(Ok(Err(status))) => {
                Err(self.peer_error(format!("refused the stream: {}", status.message())))
            }
            Ok(Err(join)) => Err(self.peer_error(format!("sender task failed: {join}"))),
            Err(_) => Err(self.peer_error("did not acknowledge the stream in time")),
        }
    }
}

/// Segment a rank sends at `hop`: its own at hop 0, then what it received the hop before.
fn send_segment(rank: usize, n: usize, hop: usize) -> usize {
    if hop == 0 {
        rank
    } else {
        receive_segment(rank, n, hop - 1)
    }
}

/// Segment a rank receives at `hop`: (rank − hop − 1) mod n during reduce-scatter,
/// (rank − (hop − (n − 1))) mod n during all-gather.
fn receive_segment(rank: usize, n: usize, hop: usize) -> usize {
    if hop < n - 1 {
        (rank + 2 * n - hop - 1) % n
    } else {
        (rank + 2 * n - (hop - (n - 1))) % n
    }
}

fn check_chunk(
    message: &RingChunk,
    operation: u64,
    hop: usize,
    chunk: usize,
    values: usize,
) -> Result<(), String> {
    if message.operation != operation
        || message.hop as usize != hop
        || message.chunk as usize != chunk
    {
        return Err(format!(
            "sent operation {} hop {} chunk {}, expected operation {operation} hop {hop} chunk {chunk}",
            message.operation, message.hop, message.chunk
        ));
    }
    if message.values.len() != values * 4 {
        return Err(format!(
            "sent {} bytes for a chunk of {values} values",
            message.values.len()
        ));
    }
    Ok(())
}

/// The ring for the training thread: blocks on a tokio runtime it does not run on.
pub struct BlockingRing {
    ring: RingAllReduce,
    runtime: tokio::runtime::Handle,
    /// Seconds spent in, and bytes sent by, all-reduces since the last `take_traffic`.
    seconds: f64,
    bytes_sent: u64,
}

impl BlockingRing {
    pub fn new(ring: RingAllReduce, runtime: tokio::runtime::Handle) -> Self {
        Self {
            ring,
            runtime,
            seconds: 0.0,
            bytes_sent: 0,
        }
    }

    /// Time spent in all-reduces and value bytes sent to the right neighbour since the last
    /// call.
    pub fn take_traffic(&mut self) -> (f64, u64) {
        (
            std::mem::take(&mut self.seconds),
            std::mem::take(&mut self.bytes_sent),
        )
    }
}

/// Value bytes `rank` sends in one all-reduce of `len` values over `n` ranks: one segment a hop.
pub fn bytes_sent_per_sum(len: usize, n: usize, rank: usize) -> u64 {
    if n <= 1 {
        return 0;
    }
    (0..2 * (n - 1))
        .map(|hop| segment_bounds(len, n, send_segment(rank, n, hop)).len() as u64 * 4)
        .sum()
}

impl GradientAllReduce for BlockingRing {
    fn average(&mut self, values: &mut [f32]) -> Result<()> {
        let started = Instant::now();
        self.runtime.block_on(self.ring.sum(values))?;
        let config = &self.ring.config;
        self.bytes_sent += bytes_sent_per_sum(values.len(), config.world_size, config.rank);
        let scale = 1.0 / self.ring.config.world_size as f32;
        values.iter_mut().for_each(|v| *v *= scale);
        self.seconds += started.elapsed().as_secs_f64();
        Ok(())
    }

    fn world_size(&self) -> usize {
        self.ring.config.world_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rank_sends_two_n_minus_one_segments() {
        // 10 values over 4 ranks: segments of 3, 3, 2, 2 values; 6 hops.
        let total: u64 = (0..4).map(|rank| bytes_sent_per_sum(10, 4, rank)).sum();
        assert_eq!(
            total,
            2 * 3 * 10 * 4,
            "every segment travels 2(n-1) times in all"
        );
        assert_eq!(bytes_sent_per_sum(1000, 2, 0), 2 * 500 * 4);
        assert_eq!(bytes_sent_per_sum(1000, 1, 0), 0);
    }

    #[test]
    fn hop_schedule_forwards_what_was_received() {
        for n in 2..7 {
            for rank in 0..n {
                for hop in 1..2 * (n - 1) {
                    assert_eq!(
                        send_segment(rank, n, hop),
                        receive_segment(rank, n, hop - 1)
                    );
                }
                // what rank r receives at a hop is what its left neighbour sends at that hop
                let left = (rank + n - 1) % n;
                for hop in 0..2 * (n - 1) {
                    assert_eq!(receive_segment(rank, n, hop), send_segment(left, n, hop));
                }
            }
        }
    }
}
