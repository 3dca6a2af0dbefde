//! Reloading a running node. SIGHUP and `POST /v1/reload` both end here, one at a time.
//!
//! A reload is all or nothing. The new file is read and validated, the keys a running node
//! cannot change are compared ([`restart_keys`]), and every listener the new file adds is bound;
//! if any of that fails, nothing has changed and the error says what (the file, line and key of
//! a bad value, the key that needs a restart, the address that cannot be bound). Only then is the
//! new configuration applied, in steps that cannot fail. Either way the outcome is logged and
//! counted in `busway_config_reloads_total{result}`.
//!
//! Applying keeps what remains valid: sessions in progress keep their transports and targets,
//! established transports keep the secret their handshake proved, a new admin listener is bound
//! before the old one is closed, and surplus transports drain instead of being cut.

use std::sync::Arc;

use busway_config::{Address, BusConfig, ConfigError, NodeConfig, NodeSection};
use busway_net::{Listener, Resolver};

use crate::node::{bind_all, Bound, Node};

/// Why a reload was rejected; the previous configuration keeps running.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file cannot be read or is not valid: the message names its file, line and key.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
    /// Keys a running node cannot change.
    #[error("{}: changing this requires a restart", .0.join(", "))]
    NeedsRestart(Vec<&'static str>),
    /// A listener the new file adds cannot be bound: the message names the address.
    #[error("{0}")]
    Bind(#[from] busway_net::BindError),
    #[error("this node was not started from a file, so there is none to read again")]
    NoSource,
    /// A file the new configuration names cannot be used (a TLS key, say).
    #[error("{0}")]
    Unusable(String),
}

impl ReloadError {
    /// The reload's view of a failure that would have stopped a start.
    pub(crate) fn from_start(e: crate::node::StartError) -> ReloadError {
        use crate::node::StartError;
        match e {
            StartError::Bind(b) => ReloadError::Bind(b),
            StartError::Config(m)
            | StartError::State(m)
            | StartError::Discovery(m)
            | StartError::Cluster(m) => ReloadError::Unusable(m),
        }
    }
}

impl ReloadError {
    /// The admin API's status for it: 400 for a file that is not valid, 409 for a valid file
    /// the running node cannot apply.
    pub fn status(&self) -> u16 {
        match self {
            ReloadError::Invalid(_) | ReloadError::Unusable(_) => 400,
            _ => 409,
        }
    }
}

/// The keys that differ between `old` and `new` and that a running node cannot take. The
/// destructuring names every key of the model, so a key added to it does not compile until
/// someone decides here whether a reload applies it (docs/OPERATIONS.md has the table).
pub(crate) fn restart_keys(old: &NodeConfig, new: &NodeConfig) -> Vec<&'static str> {
    let NodeConfig {
        node:
            NodeSection {
                // Who the node is: peers know it by these from their handshakes.
                name,
                namespace,
                // Applied: new transports announce the new labels.
                labels: _,
                // Applied: kept in the configuration; nothing else reads them yet.
                annotations: _,
                // Applied: read when the node stops.
                shutdown_grace: _,
                // What was loaded from it at start stays loaded.
                state_dir,
            },
        // Applied: listener moved, token swapped, admin server added or removed, `[admin.tls]`
        // files read again for the next connections.
        admin: _,
        bus:
            BusConfig {
                // Applied: listeners added and removed, Cloudbus pins updated.
                listen: _,
                // Applied: new transports prove the new secret and accept the listed ones.
                secret: _,
                also_accepted: _,
                // Applied: pools grow, or drain their surplus transports.
                connections_per_peer: _,
                // Applied: new transports announce it (or no longer do); sessions opened from
                // then on spread over the transports that both ends announced it on.
                multilink: _,
                // Applied: read by every transport when it starts.
                anonymous: _,
                token: _,
                resumption: _,
                // Applied: new connections are timed and counted by the new values; those
                // over a lowered max_transports stay.
                handshake_timeout: _,
                max_transports: _,
                // Applied: its files are read again on every reload, changed or not; new
                // transports use them, established ones keep their TLS session.
                tls: _,
            },
        // Applied: a new resolver, and every name resolved again through it.
        dns: _,
        // The registry is joined at start: its endpoints, prefix and lease need a restart.
        discovery,
        // Applied: republished in the record; routing and relaying read them per view change
        // and per session.
        gateways: _,
        relay: _,
        // The cluster is joined at start, its address and group with it: a restart.
        cluster,
        // Applied: services added, removed and updated in place (see `ServiceState::update`).
        services: _,
    } = old;
    let mut keys = Vec::new();
    if *name != new.node.name {
        keys.push("node.name");
    }
    if *discovery != new.discovery {
        keys.push("discovery");
    }
    if *cluster != new.cluster {
        keys.push("cluster");
    }
    if *namespace != new.node.namespace {
        keys.push("node.namespace");
    }
    if *state_dir != new.node.state_dir {
        keys.push("node.state_dir");
    }
    keys
}

impl Node {
    /// Applies `new` (see the module's documentation), logs and counts the outcome.
    pub async fn reload(self: &Arc<Self>, new: NodeConfig) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let r = self.apply(new).await;
        self.conclude(r)
    }

    /// Reads the file the node was started from again, in its format, and applies it.
    pub async fn reload_from_source(self: &Arc<Self>) -> Result<(), ReloadError> {
        let _one_at_a_time = self.reloading.lock().await;
        let source = self
            .source
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let r = match source.map(|s| s.load()) {
            None => Err(ReloadError::NoSource),
            Some(Err(e)) => Err(e.into()),
            Some(Ok(new)) => self.apply(new).await,
        };
        self.conclude(r)
    }

    fn conclude(&self, r: Result<(), ReloadError>) -> Result<(), ReloadError> {
        match &r {
            Ok(()) => {
                self.metrics.config_reloads.inc("ok");
                tracing::info!("configuration reloaded");
            }
            Err(e) => {
                self.metrics.config_reloads.inc("error");
                tracing::error!(error = %e, "reload rejected; the previous configuration keeps running");
            }
        }
        r
    }

    async fn apply(self: &Arc<Self>, new: NodeConfig) -> Result<(), ReloadError> {
        let old = self.config();
        let keys = restart_keys(&old, &new);
        if !keys.is_empty() {
            return Err(ReloadError::NeedsRestart(keys));
        }
        let proto = crate::trust::proto_config(&new, &self.tokens, Some(&self.resumption))
            .map_err(ReloadError::Unusable)?;
        // Read again whether or not the section changed: a renewed certificate keeps its path.
        let tls =
            crate::tls::Loaded::load(&new).map_err(|e| ReloadError::Unusable(e.to_string()))?;
        let (bound, admin) = self.bind_new(&old, &new).await?;

        if old.dns != new.dns {
            let r = Resolver::new(&new.dns);
            self.set_resolver(r.clone());
            for svc in self.services() {
                svc.set_resolver(&r);
            }
            tracing::info!("dns changed: every name is resolved again through the new settings");
        }
        self.apply_services(&new);
        self.close_gone_bus_listeners(&new);
        for l in self.serve(bound) {
            tracing::info!(service = %l.service, url = %l.url, "listening");
        }
        if let Some(l) = admin {
            let h = self.serve_admin(l);
            let service = "admin";
            tracing::info!(service = %service, url = %h.url, "listening");
            let old = self
                .admin_listener
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .replace(h);
            if let Some(o) = old {
                tracing::info!(url = %o.url, "admin listener closed");
                o.close();
            }
        } else if new.admin.is_none() {
            let old = self
                .admin_listener
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(o) = old {
                tracing::info!(url = %o.url, "admin server removed");
                o.close();
            }
        }
        *self.admin_token.write().unwrap_or_else(|e| e.into_inner()) =
            new.admin.as_ref().and_then(|a| a.token.clone());
        self.pools.ctx().set_proto(proto);
        self.pools.ctx().set_resume(new.bus.resumption);
        // New transports and admin connections take the files read above; established ones
        // keep the TLS session they negotiated.
        if tls.bus.is_some() || old.bus.tls.is_some() {
            tracing::info!(
                tls = tls.bus.is_some(),
                "bus.tls read again: new transports use it; established ones keep running"
            );
        }
        self.pools.ctx().set_tls(tls.bus);
        *self.admin_tls.write().unwrap_or_else(|e| e.into_inner()) = tls.admin;
        self.pools.ctx().set_max_transports(new.bus.max_transports);
        if old.bus.secret != new.bus.secret || old.bus.also_accepted != new.bus.also_accepted {
            // A transport whose peer proved a secret still listed still authenticates and
            // keeps its sessions; one verified by a secret the list dropped closes.
            tracing::info!("bus.secret changed: new transports use the new list");
            self.close_rotated_out(&new);
        }
        if old.bus.token != new.bus.token
            || old.bus.secret != new.bus.secret
            || old.bus.also_accepted != new.bus.also_accepted
        {
            // Tickets earned with the old credentials would resume their trust without this
            // node checking the peer against its new list.
            self.pools.clear_tickets();
        }
        if old.bus.connections_per_peer != new.bus.connections_per_peer {
            self.pools.set_per_peer(new.bus.connections_per_peer);
            tracing::info!(
                from = old.bus.connections_per_peer,
                to = new.bus.connections_per_peer,
                "connections_per_peer changed"
            );
        }
        if let Some(d) = self.discovery() {
            d.republish(&new, self.bus_urls());
        }
        *self.config.lock().unwrap_or_else(|e| e.into_inner()) = new;
        self.apply_discovery();
        self.warm_up().await;
        self.prune_pools();
        self.reloads.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Binds every listener `new` adds (services, bus, admin) before anything changes; on a
    /// failure releases what it bound.
    async fn bind_new(
        &self,
        old: &NodeConfig,
        new: &NodeConfig,
    ) -> Result<(Bound, Option<Listener>), ReloadError> {
        let existing_listen: Vec<(String, Address)> = self
            .services()
            .iter()
            .flat_map(|s| {
                let keys: Vec<Address> = s
                    .listeners
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                keys.into_iter()
                    .map(|a| (s.name.to_string(), a))
                    .collect::<Vec<_>>()
            })
            .collect();
        let existing_bus: Vec<Address> = self
            .bus_listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect();
        let services: Vec<(String, Address)> = new
            .services
            .iter()
            .flat_map(|s| s.listen.iter().map(|a| (s.name.clone(), a.clone())))
            .filter(|key| !existing_listen.contains(key))
            .collect();
        let bus = new
            .bus
            .listen
            .iter()
            .filter(|b| !existing_bus.contains(&b.address))
            .cloned()
            .collect();
        let bound = bind_all(services, bus)
            .await
            .map_err(ReloadError::from_start)?;
        let old_admin = old.admin.as_ref().map(|a| &a.listen);
        let admin = match new.admin.as_ref().map(|a| &a.listen) {
            Some(a) if Some(a) != old_admin => match Listener::bind(a).await {
                Ok(l) => Some(l),
                Err(e) => {
                    bound.abandon();
                    return Err(e.into());
                }
            },
            _ => None,
        };
        Ok((bound, admin))
    }

    /// Removed services stop accepting (their sessions finish), kept ones update in place,
    /// new ones are added.
    fn apply_services(&self, new: &NodeConfig) {
        let wanted: Vec<&str> = new.services.iter().map(|s| s.name.as_str()).collect();
        for svc in self.services() {
            if !wanted.contains(&&*svc.name) {
                svc.close_listeners();
                svc.stop_gateway();
                self.services
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(&svc.name);
                tracing::info!(service = %svc.name, "service removed");
            }
        }
        let resolver = self.resolver();
        for s in &new.services {
            match self.service(&s.name) {
                Some(svc) => {
                    svc.update(s.clone(), &resolver);
                    let mut l = svc.listeners.lock().unwrap_or_else(|e| e.into_inner());
                    let gone: Vec<Address> = l
                        .keys()
                        .filter(|a| !s.listen.contains(a))
                        .cloned()
                        .collect();
                    for a in gone {
                        if let Some(h) = l.remove(&a) {
                            h.close();
                        }
                    }
                }
                None => {
                    self.add_service(s.clone());
                    tracing::info!(service = %s.name, "service added");
                }
            }
        }
    }

    /// Closes the bus listeners `new` no longer lists and re-pins the kept ones.
    fn close_gone_bus_listeners(&self, new: &NodeConfig) {
        let mut bl = self.bus_listeners.lock().unwrap_or_else(|e| e.into_inner());
        let mut gone = Vec::new();
        for (addr, b) in bl.iter() {
            match new.bus.listen.iter().find(|n| &n.address == addr) {
                Some(n) => {
                    *b.pin.write().unwrap_or_else(|e| e.into_inner()) =
                        n.service.as_deref().map(Into::into);
                }
                None => gone.push(addr.clone()),
            }
        }
        for a in gone {
            if let Some(b) = bl.remove(&a) {
                b.handle.close();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        busway_config::parse_toml(
            "[node]\nname = \"a\"\n[[service]]\nname = \"s\"\nbackends = [\"tcp://127.0.0.1:9\"]\n",
            "t.toml",
        )
        .expect("valid")
    }

    #[test]
    fn identity_and_state_dir_need_a_restart_everything_else_does_not() {
        let old = config();
        assert!(restart_keys(&old, &old).is_empty());
        let mut new = old.clone();
        new.node.name = "b".into();
        new.node.namespace = "other".into();
        new.node.state_dir = Some("/var/lib/busway".into());
        assert_eq!(
            restart_keys(&old, &new),
            ["node.name", "node.namespace", "node.state_dir"]
        );
        let mut new = old.clone();
        new.node.labels.insert("zone".into(), "b".into());
        new.node.shutdown_grace = std::time::Duration::from_secs(1);
        new.bus.connections_per_peer = 3;
        new.bus.secret = Some(busway_config::Secret::new("a-new-secret-of-16+"));
        new.dns.min_ttl = std::time::Duration::from_secs(30);
        new.services.clear();
        assert!(restart_keys(&old, &new).is_empty());
    }

    #[test]
    fn errors_say_what_and_map_to_statuses() {
        let e = ReloadError::NeedsRestart(vec!["node.name"]);
        assert_eq!(e.to_string(), "node.name: changing this requires a restart");
        assert_eq!(e.status(), 409);
        let bad = busway_config::parse_toml("[node]\nname = 5\n", "f.toml").unwrap_err();
        let e = ReloadError::from(bad);
        assert!(e.to_string().starts_with("f.toml:2: node.name"), "{e}");
        assert_eq!(e.status(), 400);
        assert_eq!(ReloadError::NoSource.status(), 409);
    }
}
