//! The gRPC `Collective` service every worker serves: it moves pushed chunks into the inbox.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::Inbox;
use anygan_proto::v1::collective_server::{Collective, CollectiveServer};
use anygan_proto::v1::{PushAck, RingChunk, StateChunk, StateRequest};

/// Largest message the collective accepts: a 1 MiB chunk of values plus headroom. Anything
/// larger is refused by tonic with OUT_OF_RANGE before it is buffered.
pub const MAX_CHUNK_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// Serves `Push` for one worker.
#[derive(Debug, Clone)]
pub struct CollectiveService {
    inbox: Arc<Inbox>,
}

impl CollectiveService {
    pub fn new(inbox: Arc<Inbox>) -> Self {
        Self { inbox }
    }

    /// The tonic server with message limits set.
    pub fn into_server(self) -> CollectiveServer<Self> {
        CollectiveServer::new(self)
            .max_decoding_message_size(MAX_CHUNK_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_CHUNK_MESSAGE_BYTES)
    }
}

/// Bytes of an object per state chunk: well under the message limit.
const STATE_CHUNK_BYTES: usize = 1024 * 1024;

#[tonic::async_trait]
impl Collective for CollectiveService {
    type FetchStateStream = tokio_stream::Iter<std::vec::IntoIter<Result<StateChunk, Status>>>;

    async fn fetch_state(
        &self,
        request: Request<StateRequest>,
    ) -> Result<Response<Self::FetchStateStream>, Status> {
        let wanted = request.into_inner();
        let Some(state) = self.inbox.offered_state(wanted.generation, wanted.step) else {
            return Err(Status::failed_precondition(format!(
                "no state of generation {} at step {} on offer (yet)",
                wanted.generation, wanted.step
            )));
        };
        let mut chunks = Vec::new();
        for (name, bytes) in &state.objects {
            for offset in (0..bytes.len().max(1)).step_by(STATE_CHUNK_BYTES) {
                let end = (offset + STATE_CHUNK_BYTES).min(bytes.len());
                chunks.push(Ok(StateChunk {
                    description_json: if chunks.is_empty() {
                        state.description_json.clone()
                    } else {
                        String::new()
                    },
                    object: name.clone(),
                    object_bytes: bytes.len() as u64,
                    offset: offset as u64,
                    data: bytes[offset..end].to_vec(),
                }));
            }
        }
        Ok(Response::new(tokio_stream::iter(chunks)))
    }

    async fn push(
        &self,
        request: Request<Streaming<RingChunk>>,
    ) -> Result<Response<PushAck>, Status> {
        let mut stream = request.into_inner();
        while let Some(chunk) = stream.message().await? {
            if chunk.values.len() % 4 != 0 {
                return Err(Status::invalid_argument(format!(
                    "chunk {} of hop {} from rank {} has {} bytes, not whole f32 values",
                    chunk.chunk,
                    chunk.hop,
                    chunk.sender_rank,
                    chunk.values.len()
                )));
            }
            self.inbox
                .deliver(chunk)
                .await
                .map_err(Status::failed_precondition)?;
        }
        Ok(Response::new(PushAck {}))
    }
}
