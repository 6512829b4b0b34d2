//! Serving the collective on a listener, and a ring of in-process ranks on loopback (used by
//! tests and the all-reduce benchmark; real gRPC, real sockets).

use std::sync::Arc;
use std::time::Duration;

use anygan_proto::security::Security;
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;

use super::ring::{HTTP2_CONNECTION_WINDOW, HTTP2_STREAM_WINDOW};
use super::{CollectiveService, Inbox, RingAllReduce, RingConfig};
use crate::error::{Error, Result};

/// Serves the Collective service of `inbox` on `listener` until `shutdown` resolves; with
/// `security`'s TLS and token check.
pub async fn serve_collective(
    listener: TcpListener,
    inbox: Arc<Inbox>,
    security: Security,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    let server = security.server().map_err(|reason| Error::Collective {
        peer: address.clone(),
        reason,
    })?;
    server
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .add_service(InterceptedService::new(
            CollectiveService::new(inbox).into_server(),
            security.require_token(),
        ))
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| Error::Collective {
            peer: address,
            reason: format!("server failed: {e}"),
        })
}

/// `world_size` ranks on 127.0.0.1, each with its own server; the servers stop when the ring
/// (or the guard taken from it) drops.
pub struct LoopbackRing {
    pub ranks: Vec<RingAllReduce>,
    stop: Arc<tokio::sync::watch::Sender<()>>,
}

impl LoopbackRing {
    pub async fn start(world_size: usize, timeout: Duration, chunk_values: usize) -> Result<Self> {
        Self::start_with(world_size, timeout, chunk_values, Security::none()).await
    }

    /// As [`Self::start`], every connection configured by `security` (TLS, token).
    pub async fn start_with(
        world_size: usize,
        timeout: Duration,
        chunk_values: usize,
        security: Security,
    ) -> Result<Self> {
        let (stop, stopped) = tokio::sync::watch::channel(());
        let mut addresses = Vec::new();
        let mut inboxes = Vec::new();
        for _ in 0..world_size {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| Error::Io {
                    path: "127.0.0.1:0".into(),
                    source,
                })?;
            addresses.push(listener.local_addr().map_err(|source| Error::Io {
                path: "127.0.0.1:0".into(),
                source,
            })?);
            let inbox = Arc::new(Inbox::default());
            inbox.reset(1).await;
            inboxes.push(Arc::clone(&inbox));
            let mut stopped = stopped.clone();
            tokio::spawn(serve_collective(
                listener,
                inbox,
                security.clone(),
                async move {
                    let _ = stopped.changed().await;
                },
            ));
        }
        let ranks = inboxes
            .into_iter()
            .enumerate()
            .map(|(rank, inbox)| {
                let config = RingConfig {
                    rank,
                    world_size,
                    generation: 1,
                    right_address: addresses[(rank + 1) % world_size].to_string(),
                    timeout,
                    chunk_values,
                    security: security.clone(),
                };
                RingAllReduce::new(config, inbox)
            })
            .collect();
        Ok(Self {
            ranks,
            stop: Arc::new(stop),
        })
    }

    /// Keeps the servers running after `ranks` are moved out.
    pub fn servers_guard(&self) -> Arc<tokio::sync::watch::Sender<()>> {
        Arc::clone(&self.stop)
    }

    /// Sums one vector per rank concurrently; returns every rank's result.
    pub async fn sum_all(&mut self, inputs: Vec<Vec<f32>>) -> Result<Vec<Vec<f32>>> {
        let ranks = std::mem::take(&mut self.ranks);
        let tasks: Vec<_> = ranks
            .into_iter()
            .zip(inputs)
            .map(|(mut ring, mut data)| {
                tokio::spawn(async move {
                    let result = ring.sum(&mut data).await;
                    (ring, result.map(|()| data))
                })
            })
            .collect();
        let mut outputs = Vec::new();
        let mut first_error = None;
        for task in tasks {
            let (ring, result) = task.await.map_err(|e| Error::Collective {
                peer: "local".into(),
                reason: e.to_string(),
            })?;
            self.ranks.push(ring);
            match result {
                Ok(data) => outputs.push(data),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(outputs),
        }
    }
}
