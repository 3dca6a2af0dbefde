//! The two loads: every node joining at once (a cold start, with a bounded number of joins in
//! flight), then the churn: nodes leaving at random times, a Poisson process at the rate asked,
//! each coming back as a new process (a new lease) after a pause.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio::time::{sleep_until, Instant};

use crate::events::Phase;
use crate::node::{Live, Sim};

/// How a load went.
#[derive(Debug, Default)]
pub struct Outcome {
    pub joins: u64,
    pub leaves: u64,
    pub failed: u64,
    /// The first few failures, for the report.
    pub failures: Vec<String>,
    /// Churn cycles still out when the time bound ran out.
    pub stuck: u64,
}

impl Outcome {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        if self.failures.len() < 5 {
            self.failures.push(why);
        }
    }
}

/// Joins nodes `0..n`, at most `parallel` at a time. Slot `i` holds node `i` if it joined.
pub async fn ramp(sim: &Arc<Sim>, n: usize, parallel: usize) -> (Vec<Option<Live>>, Outcome) {
    let gate = Arc::new(Semaphore::new(parallel.max(1)));
    let mut set = JoinSet::new();
    for slot in 0..n {
        let (sim, gate) = (sim.clone(), gate.clone());
        set.spawn(async move {
            let _permit = gate.acquire_owned().await;
            (slot, sim.join(slot, Phase::Ramp).await)
        });
    }
    let mut slots: Vec<Option<Live>> = (0..n).map(|_| None).collect();
    let mut out = Outcome::default();
    while let Some(done) = set.join_next().await {
        match done {
            Ok((slot, Ok(live))) => {
                slots[slot] = Some(live);
                out.joins += 1;
            }
            Ok((slot, Err(e))) => out.fail(format!("join n{slot:05}: {e}")),
            Err(e) => out.fail(format!("join task: {e}")),
        }
    }
    (slots, out)
}

/// What the churn asks for.
#[derive(Debug, Clone, Copy)]
pub struct Churn {
    /// Leaves a second (each followed by a join).
    pub rate: f64,
    pub secs: f64,
    /// How long a node that left stays away.
    pub away: Duration,
    /// The most leave-and-join cycles started.
    pub max_cycles: u64,
}

/// Leaves (and later joins) of random live nodes for `c.secs`, then waits for the cycles in
/// flight to finish, at most `c.away` + 15 s.
pub async fn churn(sim: &Arc<Sim>, slots: &mut [Option<Live>], c: Churn) -> Outcome {
    let mut out = Outcome::default();
    let (back_tx, mut back) = mpsc::unbounded_channel();
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(c.secs);
    let give_up = deadline + c.away + Duration::from_secs(15);
    let mut next = start + gap(c.rate);
    let (mut started, mut in_flight) = (0u64, 0u64);
    loop {
        let scheduling = started < c.max_cycles && Instant::now() < deadline;
        if !scheduling && in_flight == 0 {
            break;
        }
        tokio::select! {
            _ = sleep_until(next.min(deadline)), if scheduling => {
                if Instant::now() < next {
                    continue;
                }
                next += gap(c.rate);
                let Some(live) = take_random(slots) else { continue };
                started += 1;
                in_flight += 1;
                let (sim, tx) = (sim.clone(), back_tx.clone());
                tokio::spawn(async move {
                    let (slot, left) = sim.leave(live, Phase::Churn).await;
                    tokio::time::sleep(c.away).await;
                    let joined = sim.join(slot, Phase::Churn).await;
                    let _ = tx.send((slot, left, joined));
                });
            }
            Some((slot, left, joined)) = back.recv() => {
                in_flight -= 1;
                match left {
                    Ok(()) => out.leaves += 1,
                    Err(e) => out.fail(format!("leave n{slot:05}: {e}")),
                }
                match joined {
                    Ok(live) => {
                        slots[slot] = Some(live);
                        out.joins += 1;
                    }
                    Err(e) => out.fail(format!("join n{slot:05}: {e}")),
                }
            }
            _ = sleep_until(give_up), if !scheduling => {
                out.stuck = in_flight;
                break;
            }
        }
    }
    out
}

/// The wait until the next leave: exponential, for a Poisson process of `rate` a second.
fn gap(rate: f64) -> Duration {
    let u: f64 = rand::rng().random_range(f64::EPSILON..1.0);
    Duration::from_secs_f64((-u.ln() / rate.max(1e-6)).min(3600.0))
}

/// Takes a live node at random out of its slot.
fn take_random(slots: &mut [Option<Live>]) -> Option<Live> {
    let live: Vec<usize> = (0..slots.len()).filter(|&i| slots[i].is_some()).collect();
    if live.is_empty() {
        return None;
    }
    let i = live[rand::rng().random_range(0..live.len())];
    slots[i].take()
}
