//! Quick fold-speed check without criterion: folds 10,000,000 share events from 1,000 addresses
//! (3 workers each) and prints the rate. `cargo run --release -p projections --example fold_speed`
use pool_core::event::{PayoutAddress, ShareAccepted, WorkerName};
use pool_core::{Event, Target};
use projections::{Projection, ProjectionConfig};
use std::time::Instant;

fn main() {
    let targets: Vec<Target> = (0..1_000)
        .map(|k| Target::from_difficulty(1.0 + f64::from(k) / 1_000.0).unwrap_or(Target::DIFF1))
        .collect();
    let batch: Vec<Event> = (0..100_000u64)
        .map(|i| {
            let mixed = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20;
            let t = targets[((mixed >> 10) % 1_000) as usize];
            Event::ShareAccepted(ShareAccepted {
                address: PayoutAddress(format!(
                    "bcrt1qminer{:06}xxxxxxxxxxxxxxxxxxxxxxxxxx",
                    mixed % 1_000
                )),
                worker: WorkerName(format!("rig{}", mixed % 3)),
                share_target: t,
                weight: t.work(),
                job_id: i / 1_000,
                height: 1_000,
                network_target: Target::DIFF1,
                time_ms: 1_700_000_000_000 + i * 5,
            })
        })
        .collect();
    let mut p = Projection::new(ProjectionConfig::default());
    let start = Instant::now();
    let mut seq = 0;
    for _ in 0..100 {
        for e in &batch {
            if p.apply(seq, e).is_err() {
                return;
            }
            seq += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{seq} events in {secs:.3} s: {:.0} events/s",
        seq as f64 / secs
    );
}
