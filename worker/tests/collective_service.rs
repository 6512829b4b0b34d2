//! The Collective service refuses malformed, stale and oversized chunks with clear statuses.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::sync::Arc;

use anygan_proto::security::{GeneratedCredentials, Security, Token};
use anygan_proto::v1::RingChunk;
use anygan_proto::v1::collective_client::CollectiveClient;
use anygan_worker::collective::{Inbox, LoopbackRing, serve_collective};

async fn server() -> (String, Arc<Inbox>) {
    secured_server(Security::none()).await
}

async fn secured_server(security: Security) -> (String, Arc<Inbox>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let inbox = Arc::new(Inbox::default());
    inbox.reset(3).await;
    tokio::spawn(serve_collective(
        listener,
        Arc::clone(&inbox),
        security,
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

const TOKEN: &str = "collective-test-token-0123456789";

fn secured(credentials: &GeneratedCredentials, token: Option<&str>) -> Security {
    Security::new(
        Some(credentials.material("anygan")),
        token.map(|t| Token::new(t).expect("token")),
    )
}

/// Pushes one good chunk as `client` would; the error's text when refused.
async fn push_as(client: &Security, address: &str) -> Result<(), String> {
    let channel = client.connect(address).await?;
    CollectiveClient::new(channel)
        .push(tokio_stream::iter(vec![chunk(3, 8)]))
        .await
        .map(|_| ())
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

#[tokio::test]
async fn tls_and_token_are_required_of_every_peer() {
    let cluster = GeneratedCredentials::generate("anygan").expect("credentials");
    let (address, inbox) = secured_server(secured(&cluster, Some(TOKEN))).await;

    // The right certificate and token: the chunk reaches the inbox.
    push_as(&secured(&cluster, Some(TOKEN)), &address)
        .await
        .expect("a peer with the cluster's certificate and token is served");
    assert_eq!(inbox_receive(&inbox).await.values.len(), 8);

    let refusals = [
        ("plaintext", Security::none()),
        (
            "plaintext with the token",
            Security::new(None, Some(Token::new(TOKEN).expect("token"))),
        ),
        (
            "a certificate from another CA",
            secured(
                &GeneratedCredentials::generate("anygan").expect("other"),
                Some(TOKEN),
            ),
        ),
        ("no token", secured(&cluster, None)),
        (
            "a wrong token",
            secured(&cluster, Some("not-the-cluster-token-000")),
        ),
    ];
    for (what, client) in refusals {
        let refused = push_as(&client, &address).await;
        assert!(refused.is_err(), "{what}: served");
    }
    let wrong = push_as(
        &secured(&cluster, Some("not-the-cluster-token-000")),
        &address,
    )
    .await
    .expect_err("wrong token");
    assert!(wrong.starts_with("Unauthenticated"), "{wrong}");
    assert!(!wrong.contains(TOKEN), "{wrong}");

    // Nothing refused reached the inbox, and the server still serves its peers.
    push_as(&secured(&cluster, Some(TOKEN)), &address)
        .await
        .expect("still serving");
    assert_eq!(inbox_receive(&inbox).await.values.len(), 8);
    let mut receiver = inbox.receiver_for_tests().await;
    assert!(
        receiver.try_recv().is_none(),
        "a refused chunk was delivered"
    );
}

#[tokio::test]
async fn the_ring_all_reduces_over_mutual_tls() {
    let cluster = GeneratedCredentials::generate("anygan").expect("credentials");
    let mut ring = LoopbackRing::start_with(
        3,
        std::time::Duration::from_secs(10),
        1000,
        secured(&cluster, Some(TOKEN)),
    )
    .await
    .expect("ring");
    let inputs: Vec<Vec<f32>> = (0..3)
        .map(|rank| (0..5000).map(|i| (i * (rank + 1)) as f32).collect())
        .collect();
    let sums = ring.sum_all(inputs).await.expect("all-reduce");
    for sum in &sums {
        assert_eq!(sum[7], 7.0 * 6.0);
        assert_eq!(sum, &sums[0]);
    }
}
