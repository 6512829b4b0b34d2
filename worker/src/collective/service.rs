//! The gRPC `Collective` service every worker serves: it moves pushed chunks into the inbox.

use std::sync::Arc;

use tonic::{Request, Response, Status, Streaming};

use super::Inbox;
use anygan_proto::v1::collective_server::{Collective, CollectiveServer};
use anygan_proto::v1::{PushAck, RingChunk};

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

#[tonic::async_trait]
impl Collective for CollectiveService {
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
