//! A TCP proxy the tests can cut or partition: stands between the service and PostgreSQL or Redis
//! to simulate an outage and a recovery without stopping the shared servers.
//!
//! A cut is an immediate refusal: open connections are severed and new ones closed at once. A
//! partition is the silent kind: every connection stays open, new ones are accepted, and not a
//! byte passes either way, with no reset and no close, as when a network drops packets. When it
//! heals ([`CuttableProxy::restore`]), what was sent meanwhile is delivered, as TCP's
//! retransmissions would deliver it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct CuttableProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    /// `false` while partitioned.
    flowing: watch::Sender<bool>,
}

/// Waits until bytes may pass; `false` if the proxy is gone.
async fn until_flowing(flowing: &mut watch::Receiver<bool>) -> bool {
    flowing.wait_for(|on| *on).await.is_ok()
}

/// Copies one direction of a connection, passing nothing while partitioned: a read made as the
/// partition begins is held with the rest, and so is the end of the stream.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut flowing: watch::Receiver<bool>) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if !until_flowing(&mut flowing).await {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if !until_flowing(&mut flowing).await || to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
    if until_flowing(&mut flowing).await {
        let _ = to.shutdown().await;
    }
}

impl CuttableProxy {
    pub async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let (flowing, _) = watch::channel(true);
        let accept_up = up.clone();
        let cut_tx = cut.clone();
        let flowing_tx = flowing.clone();
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if !accept_up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let target = target.clone();
                let mut cut_rx = cut_tx.subscribe();
                let mut flowing = flowing_tx.subscribe();
                tokio::spawn(async move {
                    let relay = async {
                        // Accepted (the kernel answers the handshake) but not served while partitioned.
                        if !until_flowing(&mut flowing).await {
                            return;
                        }
                        let Ok(outbound) = TcpStream::connect(&target).await else {
                            return;
                        };
                        let (in_read, in_write) = inbound.into_split();
                        let (out_read, out_write) = outbound.into_split();
                        tokio::join!(
                            pump(in_read, out_write, flowing.clone()),
                            pump(out_read, in_write, flowing.clone()),
                        );
                    };
                    tokio::select! {
                        () = relay => {}
                        _ = cut_rx.changed() => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            cut,
            flowing,
        }
    }

    /// Refuses new connections and severs the open ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Passes no byte either way, on open connections and new ones alike, and closes nothing.
    pub fn partition(&self) {
        self.flowing.send_replace(false);
    }

    /// Ends a cut or a partition.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        self.flowing.send_replace(true);
    }
}
