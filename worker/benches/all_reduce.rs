//! Benchmark of the ring all-reduce over real gRPC on loopback, next to raw loopback TCP.
//!
//! `cargo bench -p anygan-worker --bench all_reduce -- [--worlds 2,4] [--mib 1,5.5,16,64]
//! [--iterations 5]` prints, per world size and vector size: median time, algorithm bandwidth
//! (bytes / time) and bus bandwidth (algbw × 2(n−1)/n, what each rank's link carries), and the
//! loopback TCP bandwidth of this machine measured with one plain socket pair. All ranks run in
//! this one process, so they share its cores, as workers on one machine would.
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test fails loudly on broken setup

use std::time::{Duration, Instant};

use anygan_proto::security::{GeneratedCredentials, Security, Token};
use anygan_worker::collective::{DEFAULT_CHUNK_VALUES, LoopbackRing};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn list<T: std::str::FromStr>(args: &[String], name: &str, default: Vec<T>) -> Vec<T> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| v.split(',').filter_map(|x| x.parse().ok()).collect())
        .unwrap_or(default)
}

/// GB/s of one TCP stream over 127.0.0.1 carrying `bytes`.
async fn loopback_tcp(bytes: usize) -> std::io::Result<f64> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let reader = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await?;
        let mut buffer = vec![0u8; 1 << 20];
        let mut total = 0;
        while total < bytes {
            let n = socket.read(&mut buffer).await?;
            if n == 0 {
                break;
            }
            total += n;
        }
        Ok::<usize, std::io::Error>(total)
    });
    let mut socket = tokio::net::TcpStream::connect(address).await?;
    socket.set_nodelay(true)?;
    let block = vec![7u8; 1 << 20];
    let started = Instant::now();
    let mut sent = 0;
    while sent < bytes {
        socket.write_all(&block).await?;
        sent += block.len();
    }
    socket.shutdown().await?;
    let received = reader.await.map_err(std::io::Error::other)??;
    Ok(received as f64 / started.elapsed().as_secs_f64() / 1e9)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let worlds: Vec<usize> = list(&args, "--worlds", vec![2, 4]);
    let sizes: Vec<f64> = list(&args, "--mib", vec![1.0, 5.5, 16.0, 64.0]);
    let iterations = list(&args, "--iterations", vec![5usize])[0].max(1);
    // --security plain,tls: each ring configuration to measure (tls = mutual TLS + token).
    let securities: Vec<String> = list(&args, "--security", vec!["plain".to_string()]);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let tcp = runtime
        .block_on(loopback_tcp(1 << 30))
        .expect("loopback tcp");
    println!("loopback TCP, one stream, 1 GiB: {tcp:.2} GB/s");
    println!(
        "ring all-reduce over gRPC (chunks of {} KiB), median of {iterations}",
        DEFAULT_CHUNK_VALUES * 4 / 1024
    );
    println!(
        "| security | workers | size (MiB) | median (ms) | algbw (GB/s) | busbw (GB/s) | busbw / TCP |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut cases = Vec::new();
    for kind in &securities {
        for &world in &worlds {
            for &mib in &sizes {
                cases.push((kind.as_str(), world, mib));
            }
        }
    }
    for (kind, world, mib) in cases {
        let security = match kind {
            "tls" => {
                let credentials = GeneratedCredentials::generate("anygan").expect("credentials");
                Security::new(
                    Some(credentials.material("anygan")),
                    Some(Token::new("benchmark-token-0123456789").expect("token")),
                )
            }
            _ => Security::none(),
        };
        let len = (mib * 1024.0 * 1024.0 / 4.0) as usize;
        let mut ring = runtime
            .block_on(LoopbackRing::start_with(
                world,
                Duration::from_secs(60),
                DEFAULT_CHUNK_VALUES,
                security,
            ))
            .expect("ring");
        let inputs: Vec<Vec<f32>> = (0..world).map(|r| vec![r as f32; len]).collect();
        // One warm-up connects the ring.
        runtime
            .block_on(ring.sum_all(inputs.clone()))
            .expect("warm-up");
        let mut times = Vec::new();
        for _ in 0..iterations {
            let inputs = inputs.clone();
            let started = Instant::now();
            runtime.block_on(ring.sum_all(inputs)).expect("all-reduce");
            times.push(started.elapsed().as_secs_f64());
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let bytes = (len * 4) as f64;
        let algbw = bytes / median / 1e9;
        let busbw = algbw * 2.0 * (world as f64 - 1.0) / world as f64;
        println!(
            "| {kind} | {world} | {mib} | {:.1} | {algbw:.2} | {busbw:.2} | {:.0}% |",
            median * 1e3,
            100.0 * busbw / tcp
        );
    }
}
