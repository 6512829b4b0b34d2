//! Where chunks pushed by the left neighbour wait for the ring loop, fenced by generation.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use anygan_proto::v1::RingChunk;

/// Chunks one all-reduce can have in flight towards one rank. A rank's left neighbour sends at
/// most one operation at a time (it waits for its stream to finish before the next), and an
/// operation is 2(n-1) hops of one segment: 4096 chunks of 1 MiB cover 2 GiB of gradients, so
/// the push handler never blocks on a full inbox and the ring cannot deadlock on buffer space.
const INBOX_CAPACITY: usize = 4096;

/// The receiving end of a rank's ring traffic.
pub struct Inbox {
    /// The membership generation whose chunks are accepted. A std mutex: held for a compare,
    /// never across an await.
    generation: Mutex<u64>,
    sender: mpsc::Sender<RingChunk>,
    receiver: tokio::sync::Mutex<Queue>,
    /// The newest generation this worker has heard of. An all-reduce of an older generation
    /// waiting here gives up at once: its ring is gone.
    newest: tokio::sync::watch::Sender<u64>,
    /// The trainer state this worker offers to a worker joining its ring.
    offer: Mutex<Option<Arc<OfferedState>>>,
}

/// A trainer snapshot on offer to joining workers: for one generation and step.
#[derive(Debug)]
pub struct OfferedState {
    pub generation: u64,
    pub step: u64,
    pub description_json: String,
    pub objects: Vec<(String, bytes::Bytes)>,
}

impl std::fmt::Debug for Inbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inbox")
            .field("generation", &self.generation())
            .finish()
    }
}

impl Default for Inbox {
    fn default() -> Self {
        let (sender, receiver) = mpsc::channel(INBOX_CAPACITY);
        Self {
            generation: Mutex::new(0),
            sender,
            receiver: tokio::sync::Mutex::new(Queue {
                held: std::collections::VecDeque::new(),
                channel: receiver,
            }),
            newest: tokio::sync::watch::Sender::new(0),
            offer: Mutex::new(None),
        }
    }
}

impl Inbox {
    /// Records that `generation` exists (from the coordinator); operations of older
    /// generations stop waiting. Never moves backwards.
    pub fn supersede(&self, generation: u64) {
        self.newest.send_if_modified(|newest| {
            let newer = generation > *newest;
            if newer {
                *newest = generation;
            }
            newer
        });
    }

    /// Offers `state` to joining workers (replacing any earlier offer).
    pub fn offer_state(&self, state: OfferedState) {
        *self.offer.lock().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(state));
    }

    /// The state on offer, if it is the one of `generation` and `step`.
    pub fn offered_state(&self, generation: u64, step: u64) -> Option<Arc<OfferedState>> {
        self.offer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|o| o.generation == generation && o.step == step)
            .cloned()
    }

    /// Forgets the newest generation heard of (a new registration starts afresh).
    pub fn forget_newest(&self) {
        self.newest.send_replace(0);
    }

    /// Watches the newest generation heard of.
    pub fn newest(&self) -> tokio::sync::watch::Receiver<u64> {
        self.newest.subscribe()
    }

    pub fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Accepts chunks of `generation` from now on: queued chunks of other generations are
    /// dropped, chunks of this one that arrived early are kept, in their order.
    pub async fn reset(&self, generation: u64) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) = generation;
        let mut queue = self.receiver.lock().await;
        // Everything queued so far moves to `held` (still in arrival order), and only this
        // generation's chunks stay; later arrivals queue behind them in the channel.
        let mut held: std::collections::VecDeque<RingChunk> = std::mem::take(&mut queue.held);
        while let Ok(chunk) = queue.channel.try_recv() {
            held.push_back(chunk);
        }
        held.retain(|chunk| chunk.generation == generation);
        queue.held = held;
    }

    /// Queues a chunk from the left neighbour. A chunk of an older generation is refused
    /// (fencing); one of a newer generation is kept for when this worker learns its assignment:
    /// a neighbour can start the first step while this worker is still loading its data.
    pub(crate) async fn deliver(&self, chunk: RingChunk) -> Result<(), String> {
        let current = self.generation();
        if chunk.generation < current {
            return Err(format!(
                "chunk of generation {} from rank {}, current generation is {current}",
                chunk.generation, chunk.sender_rank
            ));
        }
        self.sender
            .send(chunk)
            .await
            .map_err(|_| "the ring of this worker has stopped".to_string())
    }

    /// The receiving half, for tests that play the ring loop.
    pub async fn receiver_for_tests(&self) -> tokio::sync::MutexGuard<'_, Queue> {
        self.receiver().await
    }

    /// The receiving half, for the one ring loop of this worker.
    pub(crate) async fn receiver(&self) -> tokio::sync::MutexGuard<'_, Queue> {
        self.receiver.lock().await
    }
}

/// The chunks waiting for the ring loop: those set aside (kept across a reset, or put back by
/// an operation of an older generation that met them), then the channel.
pub struct Queue {
    held: std::collections::VecDeque<RingChunk>,
    channel: mpsc::Receiver<RingChunk>,
}

impl Queue {
    /// The next chunk; None when the inbox is gone.
    pub async fn recv(&mut self) -> Option<RingChunk> {
        match self.held.pop_front() {
            Some(chunk) => Some(chunk),
            None => self.channel.recv().await,
        }
    }

    /// The next chunk if one is there now.
    pub fn try_recv(&mut self) -> Option<RingChunk> {
        self.held
            .pop_front()
            .or_else(|| self.channel.try_recv().ok())
    }

    /// Puts `chunk` back at the head: it belongs to a newer generation than the operation
    /// that received it, which gives up; the next ring reads it first.
    pub fn put_back(&mut self, chunk: RingChunk) {
        self.held.push_front(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(generation: u64, hop: u32) -> RingChunk {
        RingChunk {
            generation,
            hop,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn early_chunks_wait_for_their_generation_and_stale_ones_are_refused() {
        let inbox = Inbox::default();
        inbox.reset(1).await;
        // The neighbour already runs generation 2; this worker has not been told yet.
        inbox.deliver(chunk(2, 7)).await.expect("kept for later");
        assert!(inbox.deliver(chunk(0, 1)).await.is_err(), "older: fenced");
        inbox.deliver(chunk(3, 9)).await.expect("kept");
        inbox.reset(2).await;
        let mut receiver = inbox.receiver().await;
        assert_eq!(receiver.try_recv().expect("kept").hop, 7);
        assert!(
            receiver.try_recv().is_none(),
            "generation 3's chunk was dropped at reset(2)"
        );
    }

    #[tokio::test]
    async fn a_chunk_put_back_is_read_first_and_order_survives_a_reset() {
        let inbox = Inbox::default();
        inbox.reset(1).await;
        for hop in 0..3 {
            inbox.deliver(chunk(2, hop)).await.expect("early");
        }
        {
            // An operation of generation 1 meets generation 2's first chunk and puts it back.
            let mut queue = inbox.receiver().await;
            let first = queue.recv().await.expect("chunk");
            assert_eq!((first.generation, first.hop), (2, 0));
            queue.put_back(first);
        }
        inbox.deliver(chunk(2, 3)).await.expect("early");
        inbox.reset(2).await;
        inbox.deliver(chunk(2, 4)).await.expect("current");
        let mut queue = inbox.receiver().await;
        let hops: Vec<u32> = std::iter::from_fn(|| queue.try_recv().map(|c| c.hop)).collect();
        assert_eq!(hops, vec![0, 1, 2, 3, 4]);
    }
}
