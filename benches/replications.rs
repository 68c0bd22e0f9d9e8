//! Criterion benchmark: a replication set of `scenarios/seed-scale.toml` — R = 8 independent
//! simulated months, on 2 threads — per strategy, the whole replicated report included
//! (pricing, intervals). Target (issue 7, not asserted): under 3 s on 2 cores.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use dosim::model::strategy::Strategy;
use dosim::pricing::PriceTable;
use dosim::replicate::{simulate_report, Plan};
use dosim::scenario::Scenario;

fn replications(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/seed-scale.toml");
    let scenario = Scenario::from_file(&path).expect("seed-scale.toml is valid");
    let table = PriceTable::builtin(&scenario.pricing).expect("the scenario's price table");
    let plan = Plan {
        replications: 8,
        precision: None,
        jobs: 2,
    };
    let mut group = c.benchmark_group("seed_scale_month_r8_2_threads");
    group.sample_size(10);
    for strategy in [Strategy::Single, Strategy::PerRoom, Strategy::Sharded(8)] {
        group.bench_with_input(BenchmarkId::from_parameter(strategy), &strategy, |b, &s| {
            b.iter(|| {
                let r = simulate_report(&scenario, s, &table, &[], &plan).expect("simulates");
                r.replications.map(|b| b.count)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, replications);
criterion_main!(benches);
