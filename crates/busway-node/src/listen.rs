//! Accept loops. A listener is bound before anything else starts (so bind errors exit 1 before
//! `ready`), then handed to an accept loop that calls back for every connection.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use busway_net::{listener::remove_socket_file, Conn, Listener};
use tokio::task::JoinHandle;

/// A running accept loop; closing it stops accepting and removes its socket file.
#[derive(Debug)]
pub struct ListenerHandle {
    pub url: String,
    task: JoinHandle<()>,
    unix_path: Option<PathBuf>,
}

impl ListenerHandle {
    pub fn close(self) {
        self.task.abort();
        if let Some(p) = &self.unix_path {
            remove_socket_file(p);
        }
    }
}

/// Starts accepting on `listener`, calling `on_conn(conn, client_address)` for each connection.
pub fn spawn_accept(
    listener: Listener,
    on_conn: Arc<dyn Fn(Conn, String) + Send + Sync>,
) -> ListenerHandle {
    let url = listener.local_url();
    let unix_path = listener.unix_path().map(|p| p.to_path_buf());
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, client)) => on_conn(conn, client),
                Err(e) => {
                    // Out of descriptors and similar: back off a little instead of spinning.
                    tracing::warn!(listener = %listener.local_url(), error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    ListenerHandle {
        url,
        task,
        unix_path,
    }
}
