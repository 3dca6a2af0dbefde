//! `busway demo`: an ingress node, an egress node and an echo backend in one process, wired
//! together over an authenticated loopback transport — the whole path a real deployment uses.

use std::sync::Arc;
use std::time::Duration;

use busway_config::{
    Address, AdminConfig, Balance, BusConfig, BusListener, DnsConfig, Mode, NodeConfig,
    NodeSection, Secret, ServiceConfig, Targets,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::node::{Listening, Node, StartError};

fn loopback(port: u16) -> Address {
    Address::Tcp {
        host: "127.0.0.1".into(),
        port,
    }
}

fn node(name: &str, secret: &Secret) -> NodeConfig {
    NodeConfig {
        node: NodeSection {
            name: name.into(),
            namespace: "default".into(),
            labels: Default::default(),
            annotations: Default::default(),
            shutdown_grace: Duration::from_secs(2),
            state_dir: None,
        },
        admin: None,
        bus: BusConfig {
            listen: vec![],
            secret: Some(secret.clone()),
            ..BusConfig::default()
        },
        discovery: None,
        gateways: vec![],
        cluster: None,
        relay: Default::default(),
        dns: DnsConfig {
            servers: vec![],
            min_ttl: Duration::from_secs(1),
        },
        services: vec![],
    }
}

fn service(listen: Vec<Address>, targets: Targets) -> ServiceConfig {
    ServiceConfig {
        name: "demo".into(),
        listen,
        targets,
        mode: Mode::OneToOne,
        balance: Balance::RoundRobin,
        connect_timeout: Duration::from_secs(3),
        latch_timeout: Duration::ZERO,
        health_check: None,
        idle_timeout: Duration::ZERO,
        mirror: vec![],
        grpc: None,
        limits: Default::default(),
    }
}

/// An echo server on a loopback port: the demo's backend.
async fn echo_backend() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").await?;
    let port = l.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok(port)
}

/// Starts the demo with clients connecting on `listen`; returns both nodes and the lines to print.
pub async fn start(listen: Address) -> Result<(Vec<Arc<Node>>, Vec<Listening>), StartError> {
    let echo = echo_backend().await.map_err(|source| {
        StartError::Bind(busway_net::BindError::Io {
            address: "tcp://127.0.0.1:0".into(),
            source,
        })
    })?;
    let secret = Secret::new(format!("{:032x}", rand::random::<u128>()));
    let mut egress = node("demo-egress", &secret);
    egress.bus.listen.push(BusListener {
        address: loopback(0),
        service: None,
    });
    egress
        .services
        .push(service(vec![], Targets::Backends(vec![loopback(echo)])));
    let (egress_node, egress_lines) = Node::start(egress).await?;
    let bus_url = egress_lines
        .iter()
        .find(|l| l.service == "bus")
        .map(|l| l.url.clone())
        .unwrap_or_default();
    let bus_port = bus_url
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let mut ingress = node("demo-ingress", &secret);
    ingress.admin = Some(AdminConfig {
        listen: loopback(0),
        token: None,
        tls: None,
    });
    ingress.services.push(service(
        vec![listen],
        Targets::Peers(vec![loopback(bus_port)]),
    ));
    let (ingress_node, mut lines) = Node::start(ingress).await?;
    lines.extend(egress_lines);
    Ok((vec![ingress_node, egress_node], lines))
}
