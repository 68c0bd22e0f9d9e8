//! Criterion benchmark: a whole simulated month of `scenarios/seed-scale.toml` per strategy.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dosim::des::simulate;
use dosim::model::strategy::Strategy;
use dosim::scenario::Scenario;

fn month(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/seed-scale.toml");
    let scenario = Scenario::from_file(&path).expect("seed-scale.toml is valid");
    let mut group = c.benchmark_group("seed_scale_month");
    group.sample_size(10);
    for strategy in [Strategy::Single, Strategy::PerRoom, Strategy::Sharded(8)] {
        group.bench_with_input(BenchmarkId::from_parameter(strategy), &strategy, |b, &s| {
            b.iter(|| simulate(&scenario, s).events)
        });
    }
    group.finish();
}

criterion_group!(benches, month);
criterion_main!(benches);
