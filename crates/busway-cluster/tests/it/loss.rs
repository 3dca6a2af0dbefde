//! Random loss: lost adverts start probes, never a takeover.

use std::time::Duration;

use busway_cluster::wire::Body;

use crate::lan::Lan;

#[test]
fn five_percent_loss_for_a_minute_moves_nothing() {
    let mut suspicions = 0;
    let mut owner_probed = 0;
    for seed in 1..=8u64 {
        let mut lan = Lan::settled(seed, &["a", "b", "c", "d", "e"]);
        let sent_before: Vec<usize> = lan.nodes.iter().map(|n| n.sent.len()).collect();
        let t = lan.now;
        lan.loss = 0.05;
        lan.run_for(Duration::from_secs(60));
        assert_eq!(lan.changes_after(t), 0, "seed {seed}: the address moved");
        assert!(
            lan.not_one_holder.iter().all(|(x, _)| *x <= t),
            "seed {seed}: not one owner at some point"
        );
        assert_eq!(lan.owner(), 0);
        let expected = 5.0 * 4.0 * 60.0 * 5.0 * 0.05;
        assert!(
            (lan.lost as f64) > expected * 0.8,
            "the loss happened: {} copies lost",
            lan.lost
        );
        suspicions += lan
            .nodes
            .iter()
            .map(|n| n.c().metrics().suspicions_total)
            .sum::<u64>();
        // Probes aimed at the owner: each one a takeover that advert timing alone would have
        // made.
        for (i, n) in lan.nodes.iter().enumerate().skip(1) {
            owner_probed += n.sent[sent_before[i]..]
                .iter()
                .filter(|d| {
                    let m = Lan::open(d);
                    matches!(m.map(|m| m.body), Some(Body::Probe(p)) if p.target == "a")
                })
                .count();
        }
        // Once the loss ends, every history agrees again.
        lan.loss = 0.0;
        lan.run_for(Duration::from_secs(3));
        let d = lan.nodes[0].c().history().digest();
        assert!(lan.nodes.iter().all(|n| n.c().history().digest() == d));
    }
    eprintln!("suspicions {suspicions}, probes of the owner {owner_probed}");
    assert!(suspicions > 0, "the loss never made anyone suspect anyone");
    assert!(owner_probed > 0, "the owner was never suspected");
}
