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

/// How an accept loop takes connections that are already waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pace {
    /// As many as tokio's budget lets one poll take (128), as a proxy takes new clients.
    Eager,
    /// About one per turn of the scheduler: after each connection the loop yields to the tasks
    /// that are ready, instead of taking up to 128 waiting connections (and spawning a task
    /// for each) before any of them runs again. For bus listeners, whose new connections have
    /// proved nothing yet: a flood of them then adds about one new task per pass of the
    /// scheduler, however many established sessions have work in that pass, and what it sends
    /// beyond that waits in the kernel's accept queue, where it costs the node nothing
    /// (issue 12).
    OnePerTurn,
}

/// Starts accepting on `listener`, calling `on_conn(conn, client_address)` for each connection.
pub fn spawn_accept(
    listener: Listener,
    pace: Pace,
    on_conn: Arc<dyn Fn(Conn, String) + Send + Sync>,
) -> ListenerHandle {
    let url = listener.local_url();
    let unix_path = listener.unix_path().map(|p| p.to_path_buf());
    let task = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((conn, client)) => {
                    on_conn(conn, client);
                    if pace == Pace::OnePerTurn {
                        tokio::task::yield_now().await;
                    }
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    /// Connections already waiting, and another task that counts its turns: a paced loop lets
    /// it run while it takes them; an eager one takes them in one go. Returns the other task's
    /// turn count at each connection taken.
    async fn turns_between_accepts(pace: Pace) -> Vec<u64> {
        let addr: busway_config::Address = "tcp://127.0.0.1:0".parse().unwrap();
        let listener = Listener::bind(&addr).await.unwrap();
        let port = listener
            .local_url()
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap();
        const N: usize = 20;
        let waiting: Vec<_> = (0..N)
            .map(|_| std::net::TcpStream::connect(("127.0.0.1", port)).unwrap())
            .collect();
        let turns = Arc::new(AtomicU64::new(0));
        let t = turns.clone();
        let other = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let t = turns.clone();
        let h = spawn_accept(
            listener,
            pace,
            Arc::new(move |_, _| s.lock().unwrap().push(t.load(Ordering::Relaxed))),
        );
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().len() < N && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        h.close();
        other.abort();
        drop(waiting);
        let v = seen.lock().unwrap().clone();
        assert_eq!(v.len(), N, "every waiting connection was accepted");
        v
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_paced_loop_lets_other_tasks_run_between_connections() {
        // The yield puts the loop behind the tasks ready at that moment; tokio wakes yielded
        // tasks in batches, so the other task may see two connections taken between two of its
        // turns, never more (the eager loop takes all twenty in one).
        let v = turns_between_accepts(Pace::OnePerTurn).await;
        assert!(v.windows(3).all(|w| w[2] > w[0]), "{v:?}");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn an_eager_loop_takes_waiting_connections_in_one_go() {
        // The control: what the paced loop changes.
        let v = turns_between_accepts(Pace::Eager).await;
        assert!(v.windows(2).any(|w| w[1] == w[0]), "{v:?}");
    }
}
