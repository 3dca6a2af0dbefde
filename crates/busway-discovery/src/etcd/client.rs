//! A connection to one etcd endpoint and the calls discovery makes on it, over tonic's
//! [`Channel`]. Endpoints are tried in turn by the caller (`driver`), one connection each, so
//! there is no balancing here: a failed call ends the session and the next endpoint is tried.

use std::time::Duration;

use tonic::transport::{Channel, Endpoint};

use super::pb::etcdserverpb::{
    kv_client::KvClient, lease_client::LeaseClient, watch_client::WatchClient,
    watch_request::RequestUnion, LeaseGrantRequest, LeaseGrantResponse, LeaseKeepAliveRequest,
    LeaseRevokeRequest, RangeRequest, RangeResponse, TxnRequest, TxnResponse, WatchCreateRequest,
    WatchRequest,
};
use super::streams::{requests, KeepAlives, LeaseKeeper, WatchStream};
use super::Error;

/// How a connection is made and kept.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Options {
    /// The most the TCP connect may take.
    pub(crate) connect_timeout: Duration,
    /// HTTP/2 ping interval; pinged while idle too, because the watch is idle most of the
    /// time. etcd closes a connection that pings more often than its
    /// `--grpc-keepalive-min-time` (5 s by default) without being sent anything between.
    pub(crate) ping_interval: Duration,
    /// How long a ping may go unanswered before the connection is given up.
    pub(crate) ping_timeout: Duration,
    /// The largest message accepted from etcd (tonic's default is 4 MiB).
    pub(crate) max_message: usize,
}

/// The KV, Lease and Watch services on one connection. Cloning shares the connection.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    kv: KvClient<Channel>,
    lease: LeaseClient<Channel>,
    watch: WatchClient<Channel>,
}

impl Client {
    /// Connects to `endpoint` (`http://HOST:PORT`) now, not on the first call, so that an
    /// endpoint that is down says so here ("connection refused") and the next can be tried.
    pub(crate) async fn connect(endpoint: &str, o: Options) -> Result<Client, Error> {
        if !endpoint.starts_with("http://") {
            return Err(Error::Endpoint(format!(
                "only http:// endpoints are supported, not {endpoint}"
            )));
        }
        let channel = Endpoint::from_shared(endpoint.to_string())?
            .connect_timeout(o.connect_timeout)
            .http2_keep_alive_interval(o.ping_interval)
            .keep_alive_timeout(o.ping_timeout)
            .keep_alive_while_idle(true)
            .connect()
            .await?;
        Ok(Client {
            kv: KvClient::new(channel.clone()).max_decoding_message_size(o.max_message),
            lease: LeaseClient::new(channel.clone()).max_decoding_message_size(o.max_message),
            watch: WatchClient::new(channel).max_decoding_message_size(o.max_message),
        })
    }

    pub(crate) async fn range(&mut self, r: RangeRequest) -> Result<RangeResponse, Error> {
        Ok(self.kv.range(r).await?.into_inner())
    }

    pub(crate) async fn txn(&mut self, t: TxnRequest) -> Result<TxnResponse, Error> {
        Ok(self.kv.txn(t).await?.into_inner())
    }

    /// A new lease of `ttl` seconds, its ID chosen by etcd.
    pub(crate) async fn lease_grant(&mut self, ttl: i64) -> Result<LeaseGrantResponse, Error> {
        let r = LeaseGrantRequest { ttl, id: 0 };
        Ok(self.lease.lease_grant(r).await?.into_inner())
    }

    /// Revokes lease `id`, and with it every key under it.
    pub(crate) async fn lease_revoke(&mut self, id: i64) -> Result<(), Error> {
        self.lease.lease_revoke(LeaseRevokeRequest { id }).await?;
        Ok(())
    }

    /// A keepalive stream for lease `id`, after one keepalive etcd answered: an
    /// [`Error::LeaseNotFound`] here means etcd no longer has the lease.
    pub(crate) async fn lease_keep_alive(
        &mut self,
        id: i64,
    ) -> Result<(LeaseKeeper, KeepAlives), Error> {
        let (tx, rx) = requests();
        // Queued before the call, so that etcd's first answer can be awaited.
        tx.send(LeaseKeepAliveRequest { id })
            .await
            .map_err(|_| Error::Closed("lease keepalive"))?;
        let mut answers = KeepAlives(self.lease.lease_keep_alive(rx).await?.into_inner());
        match answers.message().await? {
            Some(first) if first.ttl > 0 => {}
            Some(_) => return Err(Error::LeaseNotFound),
            None => return Err(Error::Closed("lease keepalive")),
        }
        Ok((LeaseKeeper { id, requests: tx }, answers))
    }

    /// A watch stream with one watch, `create`; its first answer says whether it was created.
    pub(crate) async fn watch(&mut self, create: WatchCreateRequest) -> Result<WatchStream, Error> {
        let (tx, rx) = requests();
        let create = WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        };
        tx.send(create).await.map_err(|_| Error::Closed("watch"))?;
        let answers = self.watch.watch(rx).await?.into_inner();
        Ok(WatchStream {
            _requests: tx,
            answers,
        })
    }
}
