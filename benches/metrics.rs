//! The per-share cost of the metrics: one observation into the submit latency histogram (the
//! pool's lock-free `AtomicHistogram` beside prometheus-client's `Histogram`, which takes a
//! lock per observation) and one rejected share counted (a pre-resolved label child beside a
//! `Family::get_or_create` lookup per share), on one thread and on two threads at once (the
//! contended case: every connection task adds to the same metrics). Plain timing loops, ns per
//! operation. Run with `cargo bench --bench metrics`.

use ledger::metrics::{AtomicHistogram, LATENCY_BUCKETS};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const OPS: u64 = 5_000_000;

/// One metric update, given a pseudo-random number.
type Op = Arc<dyn Fn(u64) + Send + Sync>;

/// ns per call of `op`, each of `threads` threads calling it OPS times at once.
fn measure(threads: usize, op: Op) -> f64 {
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let op = Arc::clone(&op);
            std::thread::spawn(move || {
                for i in 0..OPS {
                    op(black_box(i.wrapping_mul(7919) ^ t as u64));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    start.elapsed().as_nanos() as f64 / OPS as f64
}

fn main() {
    type Labels = [(&'static str, &'static str); 1];
    let atomic = AtomicHistogram::latency();
    let locked = Histogram::new(LATENCY_BUCKETS.iter().copied());
    let family = Family::<Labels, Counter>::default();
    let child = family.get_or_create_owned(&[("reason", "duplicate")]);
    let cases: Vec<(&str, Op)> = vec![
        ("histogram: AtomicHistogram::observe_duration", {
            let h = atomic.clone();
            Arc::new(move |i| h.observe_duration(Duration::from_nanos(i % 2_000_000)))
        }),
        ("histogram: prometheus_client Histogram::observe", {
            let h = locked.clone();
            Arc::new(move |i| h.observe((i % 2_000_000) as f64 / 1e9))
        }),
        ("reject counter: pre-resolved child inc", {
            let c = child.clone();
            Arc::new(move |_| {
                c.inc();
            })
        }),
        ("reject counter: Family::get_or_create + inc", {
            let f = family.clone();
            Arc::new(move |_| {
                f.get_or_create(&[("reason", "duplicate")]).inc();
            })
        }),
    ];
    println!("{:<50} {:>12} {:>12}", "per share", "1 thread", "2 threads");
    for (name, op) in cases {
        let one = measure(1, Arc::clone(&op));
        let two = measure(2, op);
        println!("{name:<50} {one:>9.1} ns {two:>9.1} ns");
    }
    black_box(atomic.count());
}
