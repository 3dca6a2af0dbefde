//! The driver of one transport: the only task that touches its socket and its
//! [`Connection`] state machine.
//!
//! One `select!` loop reads, writes and takes commands, with every branch cancel-safe (readiness
//! plus `try_*` calls), so a transport never blocks on a full socket while the peer waits for us
//! to read — the classic multiplexer deadlock. Writes are batched: every command waiting in the
//! queue is applied before one flush. While the unflushed output is above a high-water mark the
//! driver stops taking commands, which pushes back on sessions through their bounded queue.

use std::io;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use busway_net::Conn;
use busway_proto::{Config, Connection, Event, Open, OpenParams, ProtoError, ResetCode, Side};
use bytes::{Bytes, BytesMut};
use std::collections::HashMap;
use tokio::sync::{mpsc, oneshot};

use super::info::TransportInfo;
use super::stream::{new_stream, BusRecv, BusSend, Inbound, Shared};
use crate::metrics::Metrics;

/// What sessions (and the node) ask of a transport.
#[derive(Debug)]
pub enum Cmd {
    /// Boxed: commands are moved through every session's send path, so the largest variant
    /// sets the size of every session's state machine.
    Open(Box<OpenRequest>),
    Data {
        id: u64,
        data: Bytes,
        fin: bool,
    },
    Consume {
        id: u64,
        n: usize,
    },
    Reset {
        id: u64,
        code: ResetCode,
        reason: String,
    },
    /// Both halves of a session's stream were dropped.
    Close {
        id: u64,
    },
    /// Drain: no new streams either way.
    GoAway {
        reason: String,
    },
}

/// A session asking for a new stream.
#[derive(Debug)]
pub struct OpenRequest {
    pub params: OpenParams,
    pub reply: oneshot::Sender<Result<(BusSend, BusRecv), String>>,
}

/// A stream the peer opened, handed to the node's egress.
#[derive(Debug)]
pub struct Opened {
    pub open: Open,
    pub send: BusSend,
    pub recv: BusRecv,
}

/// Called for every stream the peer opens.
pub type OnOpen = Arc<dyn Fn(Opened) + Send + Sync>;

/// Commands queued per transport before sessions wait.
pub const CMD_QUEUE: usize = 1024;
/// Bytes read from the socket per wakeup at most.
const READ_CHUNK: usize = 128 * 1024;
/// Unflushed output above which no new command is taken.
const WRITE_HIGH_WATER: usize = 1024 * 1024;
/// Commands applied per wakeup at most.
const MAX_BATCH: usize = 512;
/// Payloads smaller than this are copied out of the read buffer, so that one small message held
/// by a slow session does not pin a whole read buffer.
const COPY_BELOW: usize = 4096;

/// Why a transport ended.
#[derive(Debug, thiserror::Error)]
pub enum Closed {
    #[error("{0}")]
    Proto(#[from] ProtoError),
    #[error("socket error: {0}")]
    Io(#[from] io::Error),
    #[error("the peer closed the connection")]
    PeerClosed,
}

struct Driver {
    conn: Connection,
    slots: HashMap<u64, Arc<Shared>>,
    info: Arc<TransportInfo>,
    on_open: Option<OnOpen>,
    established: Option<oneshot::Sender<()>>,
}

/// How to run one transport.
pub struct Spec {
    pub side: Side,
    pub config: Config,
    pub info: Arc<TransportInfo>,
    /// Where streams the peer opens go (`None`: refuse them).
    pub on_open: Option<OnOpen>,
    pub metrics: Arc<Metrics>,
    /// Told once the handshake is done.
    pub established: Option<oneshot::Sender<()>>,
}

/// Runs a transport until it ends; returns why.
pub async fn run(sock: Conn, spec: Spec, mut cmds: mpsc::Receiver<Cmd>) -> Closed {
    let nonce: [u8; 32] = rand::random();
    let metrics = spec.metrics;
    let mut d = Driver {
        conn: Connection::new(spec.side, spec.config, nonce, Instant::now()),
        slots: HashMap::new(),
        info: spec.info,
        on_open: spec.on_open,
        established: spec.established,
    };
    let result = d.run_loop(&sock, &mut cmds).await;
    let reason = match result {
        Ok(()) => Closed::PeerClosed,
        Err(e) => e,
    };
    // Best effort: after a protocol or handshake failure the state machine queues a GoAway
    // naming the reason, so the peer logs why we hung up instead of a bare close.
    let mut last = BytesMut::new();
    d.conn.transmit(&mut last);
    let _ = sock.try_write(&last);
    if let Closed::Proto(e) = &reason {
        if e.is_handshake() {
            metrics.handshake_failures.inc(e.reason());
        } else if !matches!(e, ProtoError::DeadPeer) {
            metrics.frames_rejected.inc(e.reason());
        }
    }
    d.info.set_state("down");
    let text = reason.to_string();
    for (_, slot) in d.slots.drain() {
        slot.close(Some(Inbound::Closed(text.clone())));
    }
    let _ = sock.shutdown_both();
    reason
}

impl Driver {
    async fn run_loop(
        &mut self,
        sock: &Conn,
        cmds: &mut mpsc::Receiver<Cmd>,
    ) -> Result<(), Closed> {
        let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
        let mut wbuf = BytesMut::with_capacity(64 * 1024);
        loop {
            self.conn.transmit(&mut wbuf);
            self.flush(sock, &mut wbuf)?;
            let deadline = self.conn.poll_timeout();
            let timer = async {
                match deadline {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = sock.readable() => {
                    r?;
                    if rbuf.capacity() - rbuf.len() < READ_CHUNK / 2 {
                        rbuf.reserve(READ_CHUNK);
                    }
                    match sock.try_read_buf(&mut rbuf) {
                        Ok(0) => return Ok(()),
                        Ok(n) => {
                            self.info.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                            self.conn.handle_input(&mut rbuf, Instant::now())?;
                            self.dispatch();
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                r = sock.writable(), if !wbuf.is_empty() => {
                    r?;
                }
                c = cmds.recv(), if wbuf.len() < WRITE_HIGH_WATER => {
                    // The driver holds a sender through `info`, so the queue never closes.
                    if let Some(c) = c {
                        self.apply(c);
                        self.drain(cmds);
                        // Let the sessions that are ready run before flushing, so that what they
                        // send now leaves in the same write: one syscall for many frames.
                        tokio::task::yield_now().await;
                        self.drain(cmds);
                    }
                }
                _ = timer => {
                    self.conn.handle_timeout(Instant::now())?;
                    self.dispatch();
                }
            }
        }
    }

    /// Applies the commands already queued, up to a bound so reads are not starved.
    fn drain(&mut self, cmds: &mut mpsc::Receiver<Cmd>) {
        for _ in 0..MAX_BATCH {
            match cmds.try_recv() {
                Ok(c) => self.apply(c),
                Err(_) => break,
            }
        }
    }

    /// Writes as much of `wbuf` as the socket takes now.
    fn flush(&self, sock: &Conn, wbuf: &mut BytesMut) -> Result<(), Closed> {
        while !wbuf.is_empty() {
            match sock.try_write(wbuf) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero).into()),
                Ok(n) => {
                    self.info.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    let _ = wbuf.split_to(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(e.into()),
            }
        }
        if wbuf.is_empty() && wbuf.capacity() > 4 * WRITE_HIGH_WATER {
            *wbuf = BytesMut::with_capacity(64 * 1024);
        }
        Ok(())
    }

    fn apply(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Open(req) => {
                let OpenRequest { params, reply } = *req;
                let r = if self.conn.can_open() {
                    match self.conn.open_stream(params) {
                        Ok((id, credit)) => Ok(self.new_slot(id, credit)),
                        Err(e) => Err(e.to_string()),
                    }
                } else {
                    Err("transport is not accepting new streams".to_string())
                };
                if let Err(Ok((_send, recv))) = reply.send(r) {
                    // The session gave up waiting; dropping the halves closes the stream.
                    drop(recv);
                }
            }
            Cmd::Data { id, data, fin } => {
                if let Err(e) = self.conn.send_data(id, data, fin) {
                    tracing::error!(stream = id, error = %e, "session sent beyond its credit");
                    self.conn.reset(id, ResetCode::Internal, "flow control");
                }
            }
            Cmd::Consume { id, n } => self.conn.consume(id, n),
            Cmd::Reset { id, code, reason } => {
                self.conn.reset(id, code, &reason);
                self.drop_slot(id);
            }
            Cmd::Close { id } => {
                self.conn.reset(id, ResetCode::Cancel, "session closed");
                self.drop_slot(id);
            }
            Cmd::GoAway { reason } => {
                self.conn.go_away(&reason);
                self.info.going_away.store(true, Ordering::Relaxed);
            }
        }
    }

    fn new_slot(&mut self, id: u64, credit: u32) -> (BusSend, BusRecv) {
        let shared = Shared::new(credit);
        self.slots.insert(id, shared.clone());
        new_stream(id, self.info.clone(), shared)
    }

    fn drop_slot(&mut self, id: u64) {
        if let Some(slot) = self.slots.remove(&id) {
            slot.close(None);
        }
    }

    fn dispatch(&mut self) {
        while let Some(ev) = self.conn.poll_event() {
            match ev {
                Event::Established { peer, rtt } => {
                    self.info.set_node(&peer.node);
                    self.info.set_rtt(rtt);
                    self.info.set_state("up");
                    tracing::info!(peer = %self.info.peer, node = %peer.node, rtt_us = rtt.as_micros() as u64, "transport established");
                    if let Some(tx) = self.established.take() {
                        let _ = tx.send(());
                    }
                }
                Event::StreamOpened {
                    id,
                    open,
                    send_credit,
                } => {
                    let (send, recv) = self.new_slot(id, send_credit);
                    match &self.on_open {
                        Some(f) => f(Opened { open, send, recv }),
                        None => {
                            self.conn.reset(
                                id,
                                ResetCode::Refused,
                                "this node accepts no sessions here",
                            );
                            self.drop_slot(id);
                        }
                    }
                }
                Event::Data { id, data, fin } => self.deliver(id, data, fin),
                Event::Credit { id, credit } => {
                    if let Some(s) = self.slots.get(&id) {
                        s.add_credit(credit as usize);
                    }
                }
                Event::Reset { id, code, reason } => {
                    if let Some(s) = self.slots.remove(&id) {
                        s.close(Some(Inbound::Reset(code, reason)));
                    }
                }
                Event::Rtt(d) => self.info.set_rtt(d),
                Event::GoAway { reason } => {
                    tracing::info!(peer = %self.info.peer, %reason, "peer is going away");
                    self.info.going_away.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn deliver(&mut self, id: u64, data: Bytes, fin: bool) {
        let Some(slot) = self.slots.get(&id) else {
            return;
        };
        if !data.is_empty() {
            let data = if data.len() < COPY_BELOW {
                Bytes::copy_from_slice(&data)
            } else {
                data
            };
            slot.push(Inbound::Data(data));
        }
        if fin {
            slot.push(Inbound::Fin);
        }
    }
}
