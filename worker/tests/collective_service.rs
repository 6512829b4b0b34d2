//! The Collective service refuses malformed, stale and oversized chunks with clear statuses.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::sync::Arc;

use anygan_proto::v1::RingChunk;
use anygan_proto::v1::collective_client::CollectiveClient;
use anygan_worker::collective::{Inbox, serve_collective};

async fn server() -> (String, Arc<Inbox>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let inbox = Arc::new(Inbox::default());
    inbox.reset(3).await;
    tokio::spawn(serve_collective(
        listener,
        Arc::clone(&inbox),
        std::future::pending(),
    ));
    (address, inbox)
}

fn chunk(generation: u64, bytes: usize) -> RingChunk {
    RingChunk {
        generation,
        operation: 0,
        sender_rank: 1,
        hop: 0,
        chunk: 0,
        values: vec![0u8; bytes].into(),
    }
}

async fn push(address: &str, chunk: RingChunk) -> Result<(), tonic::Status> {
    let mut client = CollectiveClient::connect(format!("http://{address}"))
        .await
        .expect("connect")
        .max_encoding_message_size(64 * 1024 * 1024);
    client
        .push(tokio_stream::iter(vec![chunk]))
        .await
        .map(|_| ())
}

#[tokio::test]
async fn refuses_bad_chunks_and_keeps_serving() {
    let (address, inbox) = server().await;
    let partial = push(&address, chunk(3, 6))
        .await
        .expect_err("6 bytes is 1.5 floats");
    assert_eq!(partial.code(), tonic::Code::InvalidArgument);
    assert!(
        partial.message().contains("rank 1"),
        "{}",
        partial.message()
    );

    let stale = push(&address, chunk(2, 8))
        .await
        .expect_err("old generation");
    assert_eq!(stale.code(), tonic::Code::FailedPrecondition);
    assert!(
        stale.message().contains("generation 2"),
        "{}",
        stale.message()
    );

    let oversized = push(&address, chunk(3, 8 * 1024 * 1024))
        .await
        .expect_err("8 MiB message");
    assert_eq!(
        oversized.code(),
        tonic::Code::OutOfRange,
        "{}",
        oversized.message()
    );

    // Still serving: a good chunk goes through to the inbox.
    push(&address, chunk(3, 8)).await.expect("good chunk");
    let received = inbox_receive(&inbox).await;
    assert_eq!(received.values.len(), 8);
}

async fn inbox_receive(inbox: &Inbox) -> RingChunk {
    let mut receiver = inbox.receiver_for_tests().await;
    tokio::time::timeout(std::time::Duration::from_secs(5), receiver.recv())
        .await
        .expect("in time")
        .expect("open")
}
