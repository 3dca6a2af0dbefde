//! A peer pool resized by a reload: every slot it gains dials at once, and one it loses stops
//! dialling.

use std::sync::Arc;
use std::time::Duration;

use busway_net::EndpointAddr;
use busway_node::bus::pool::{BusCtx, PeerPool, PoolState};
use busway_node::bus::Transports;
use busway_node::metrics::Metrics;
use tokio::net::TcpListener;

fn ctx() -> Arc<BusCtx> {
    Arc::new(BusCtx::new(
        busway_proto::Config::default(),
        Arc::new(Metrics::default()),
        Arc::new(Transports::default()),
    ))
}

/// Accepts and holds connections (it never answers a handshake); counts them.
async fn silent_peer() -> (EndpointAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
            let _ = tx.send(());
        }
    });
    (EndpointAddr::Tcp(addr), rx)
}

async fn dials(rx: &mut tokio::sync::mpsc::UnboundedReceiver<()>, n: usize) {
    for i in 0..n {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {i} of {n} dials"));
    }
}

#[tokio::test]
async fn a_pool_grows_and_shrinks_by_slots() {
    let (ep, mut accepted) = silent_peer().await;
    let pool = PeerPool::spawn(ep, 1, ctx(), Vec::new());
    dials(&mut accepted, 1).await;
    assert_eq!(pool.size(), 1);

    pool.resize(3);
    assert_eq!(pool.size(), 3);
    dials(&mut accepted, 2).await;
    assert_eq!(
        pool.state(),
        PoolState::Pending,
        "handshakes are still open"
    );

    // Never below one, and the slots that leave dial no more.
    pool.resize(0);
    assert_eq!(pool.size(), 1);
    pool.stop();
    assert_eq!(pool.size(), 0);
    assert_eq!(pool.state(), PoolState::Down);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(accepted.try_recv().is_err(), "a stopped pool dialled again");
}
