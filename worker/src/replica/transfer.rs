//! Moving the trainer state to a worker that joins a running ring: rank 0 offers its state at
//! the ring's first step on its collective service; the joiner fetches it in chunks.

use std::time::{Duration, Instant};

use anygan_proto::security::Security;
use anygan_proto::v1;

use super::Replica;
use crate::backend::TrainBackend;
use crate::collective::OfferedState;
use crate::error::{Error, Result};
use crate::gan::GanTrainer;
use crate::gan::state::Snapshot;

impl Replica {
    /// Offers `trainer`'s state as the state of `generation`'s first step: a worker joining
    /// that ring starts from it.
    pub(super) fn offer_state(
        &self,
        trainer: &GanTrainer<TrainBackend>,
        generation: u64,
    ) -> Result<()> {
        let snapshot =
            trainer.snapshot(self.dataset.class_names(), &self.dataset.class_counts())?;
        self.inbox.offer_state(OfferedState {
            generation,
            step: trainer.step(),
            description_json: serde_json::to_string(&snapshot.description).map_err(|e| {
                Error::checkpoint("trainer description", format!("cannot encode: {e}"))
            })?,
            objects: snapshot.blobs,
        });
        Ok(())
    }

    /// A joining worker's trainer: rank 0's state at the ring's first step, fetched from its
    /// collective service (retried until rank 0 offers it, within the collective timeout).
    pub(super) fn fetch_state(
        &self,
        config: crate::gan::TrainConfig,
        device: &burn::tensor::Device<TrainBackend>,
    ) -> Result<GanTrainer<TrainBackend>> {
        let source = self.assignment.state_source.clone();
        let request = v1::StateRequest {
            generation: self.assignment.generation,
            step: self.assignment.start_step,
        };
        let patience = Duration::from_millis(self.spec.collective_timeout_ms);
        let started = Instant::now();
        let peer_error = |reason: String| Error::Collective {
            peer: source.clone(),
            reason,
        };
        let snapshot = self.runtime.block_on(async {
            loop {
                match fetch_snapshot(&self.security, &source, request).await {
                    Ok(snapshot) => return Ok(snapshot),
                    Err(reason) if started.elapsed() < patience => {
                        tracing::debug!(%source, %reason, "state not on offer yet");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(reason) => {
                        return Err(peer_error(format!("cannot fetch its state: {reason}")));
                    }
                }
            }
        })?;
        if snapshot.description.config != config {
            return Err(peer_error("offers a trainer of a different config".into()));
        }
        if snapshot.description.step != self.assignment.start_step {
            return Err(peer_error(format!(
                "offers step {}, the coordinator assigned step {}",
                snapshot.description.step, self.assignment.start_step
            )));
        }
        let bytes: usize = snapshot.blobs.iter().map(|(_, b)| b.len()).sum();
        tracing::info!(%source, step = snapshot.description.step, bytes, ms = started.elapsed().as_millis() as u64, "state received from a peer");
        GanTrainer::restore(snapshot, device)
    }
}

/// Fetches and reassembles the snapshot `source` offers.
async fn fetch_snapshot(
    security: &Security,
    source: &str,
    request: v1::StateRequest,
) -> std::result::Result<Snapshot, String> {
    use anygan_proto::v1::collective_client::CollectiveClient;
    let channel = security.connect(source).await?;
    let mut client = CollectiveClient::new(channel)
        .max_decoding_message_size(crate::collective::MAX_CHUNK_MESSAGE_BYTES);
    let mut stream = client
        .fetch_state(request)
        .await
        .map_err(|status| status.message().to_string())?
        .into_inner();
    let mut description = None;
    let mut objects: Vec<(String, Vec<u8>, u64)> = Vec::new();
    while let Some(chunk) = stream
        .message()
        .await
        .map_err(|s| s.message().to_string())?
    {
        if !chunk.description_json.is_empty() {
            description = Some(
                serde_json::from_str::<crate::gan::state::SnapshotDescription>(
                    &chunk.description_json,
                )
                .map_err(|e| format!("unreadable description: {e}"))?,
            );
        }
        match objects.last_mut() {
            Some((name, bytes, _)) if *name == chunk.object => {
                if chunk.offset != bytes.len() as u64 {
                    return Err(format!("{} arrived out of order", chunk.object));
                }
                bytes.extend_from_slice(&chunk.data);
            }
            _ => objects.push((chunk.object, chunk.data, chunk.object_bytes)),
        }
    }
    let description = description.ok_or("no description")?;
    let mut blobs = Vec::new();
    for (name, bytes, total) in objects {
        if bytes.len() as u64 != total {
            return Err(format!("{name}: {} of {total} bytes", bytes.len()));
        }
        blobs.push((name, bytes::Bytes::from(bytes)));
    }
    Ok(Snapshot { description, blobs })
}
