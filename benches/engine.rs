//! Criterion benchmarks of the event engine: events per second through the event list, in
//! the classic "hold" model (pop the earliest event, schedule one a random time later) with
//! 10^3, 10^5 and 10^6 pending events.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dosim::des::EventList;
use rand::Rng as _;

fn hold(c: &mut Criterion) {
    let mut group = c.benchmark_group("event_list_hold");
    const OPS: u64 = 1_000_000;
    group.throughput(Throughput::Elements(OPS));
    for pending in [1_000u64, 100_000, 1_000_000] {
        group.bench_with_input(BenchmarkId::from_parameter(pending), &pending, |b, &n| {
            let mut rng = dosim::workload::stream(1, 99, n);
            let mut list: EventList<u64> = EventList::new();
            for i in 0..n {
                list.schedule(rng.random_range(0..1_000_000_000), i);
            }
            b.iter(|| {
                for _ in 0..OPS {
                    let (t, e) = list.pop().expect("hold keeps the list full");
                    list.schedule(t + rng.random_range(0..1_000_000_000), black_box(e));
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, hold);
criterion_main!(benches);
