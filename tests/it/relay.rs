//! The netem stand-in (`devmux_tests::relay`): bytes arrive whole and in order, later
//! by at least the delay, and a stall costs its time.

use std::time::{Duration, Instant};

use devmux_tests::relay::{run, Impairment};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An echo server and a relay in front of it; returns the relay's address.
async fn relay_to_echo(how: Impairment) -> std::net::SocketAddr {
    let ip = devmux_tests::next_loopback();
    let echo = TcpListener::bind((ip, 0)).await.unwrap();
    let target = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let relay = TcpListener::bind((ip, 0)).await.unwrap();
    let addr = relay.local_addr().unwrap();
    tokio::spawn(run(relay, target, how));
    addr
}

#[tokio::test]
async fn relay_delays_each_way_and_keeps_the_bytes() {
    let addr = relay_to_echo(Impairment {
        delay: Duration::from_millis(60),
        jitter: Duration::from_millis(20),
        stall_probability: 0.3,
        stall: Duration::from_millis(50),
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    // A round trip crosses the relay twice.
    let started = Instant::now();
    s.write_all(b"ping").await.unwrap();
    let mut four = [0u8; 4];
    s.read_exact(&mut four).await.unwrap();
    assert_eq!(&four, b"ping");
    assert!(
        started.elapsed() >= Duration::from_millis(120),
        "{:?}",
        started.elapsed()
    );
    // A megabyte of patterned bytes comes back whole and in order, stalls and all.
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (mut r, mut w) = s.into_split();
    let sent = data.clone();
    let writer = tokio::spawn(async move { w.write_all(&sent).await.unwrap() });
    let mut back = vec![0u8; data.len()];
    tokio::time::timeout(Duration::from_secs(60), r.read_exact(&mut back))
        .await
        .unwrap()
        .unwrap();
    writer.await.unwrap();
    assert!(back == data, "bytes changed or reordered");
}

#[tokio::test]
async fn every_chunk_stalls_when_told_to() {
    let addr = relay_to_echo(Impairment {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        stall_probability: 1.0,
        stall: Duration::from_millis(200),
    })
    .await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let started = Instant::now();
    s.write_all(b"x").await.unwrap();
    let mut one = [0u8; 1];
    s.read_exact(&mut one).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}
