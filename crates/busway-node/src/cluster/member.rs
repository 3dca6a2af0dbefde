//! The node's cluster member, whichever backend elects the owner: what `GET /v1/cluster`,
//! `/metrics` and the shutdown call, in one shape for both.

use std::sync::Arc;

use busway_cluster::{ClusterView, Metrics};
use busway_config::{ClusterBackend, NodeConfig};

use super::etcd_owner::EtcdOwner;
use super::NodeCluster;

#[derive(Debug)]
pub enum ClusterMember {
    /// `backend = "multicast"`: signed adverts on the group.
    Adverts(Arc<NodeCluster>),
    /// `backend = "etcd"`: a key under a lease in `[discovery]`'s etcd.
    Lease(Arc<EtcdOwner>),
}

impl ClusterMember {
    /// Joins the cluster with the configured backend; a leftover service address is gone when
    /// this returns, so before `ready`.
    pub(crate) async fn start(
        cfg: &NodeConfig,
        bus_url: String,
    ) -> Result<Option<ClusterMember>, String> {
        let Some(c) = &cfg.cluster else {
            return Ok(None);
        };
        match (c.backend, &cfg.discovery) {
            (ClusterBackend::Multicast, _) => Ok(NodeCluster::start(cfg, bus_url)
                .await?
                .map(ClusterMember::Adverts)),
            (ClusterBackend::Etcd, Some(d)) => {
                EtcdOwner::start(cfg, c, d, bus_url).map(|o| Some(ClusterMember::Lease(o)))
            }
            // The configuration refuses this; said here too rather than assumed.
            (ClusterBackend::Etcd, None) => {
                Err("cluster: backend = \"etcd\" needs a [discovery] section".into())
            }
        }
    }

    /// `GET /v1/cluster`.
    pub fn view(&self) -> ClusterView {
        match self {
            ClusterMember::Adverts(c) => c.view(),
            ClusterMember::Lease(o) => o.view(),
        }
    }

    pub fn metrics(&self) -> Metrics {
        match self {
            ClusterMember::Adverts(c) => c.metrics(),
            ClusterMember::Lease(o) => o.metrics(),
        }
    }

    /// Leaves cleanly, so another member takes the address at once.
    pub(crate) async fn leave(&self) {
        match self {
            ClusterMember::Adverts(c) => c.leave().await,
            ClusterMember::Lease(o) => o.leave().await,
        }
    }
}
