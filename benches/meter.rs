//! Criterion benchmark: the meter on a burst of events — a million platform events in the
//! mix a busy room produces (per session: a Worker request, a connect and its socket, 20
//! messages each fanned out to 7 recipients and stored, their service times, a close and
//! its socket, lobby RPCs and changes), fed as the simulator feeds them, one call per event.
//! The target: well under the simulator's own cost per event (`benches/month.rs`), so that
//! metering does not slow it down.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use dosim::meter::{BusyBasis, EventCosts, Meter, Setup, Work};
use dosim::scenario::Scenario;

/// Events fed per session below.
const PER_SESSION: u64 = 10 + 20 * 4;
const SESSIONS: u64 = 1_000_000 / PER_SESSION;

fn burst(c: &mut Criterion) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/seed-scale.toml");
    let mut scenario = Scenario::from_file(&path).expect("seed-scale.toml is valid");
    // Stored messages, so that the storage rule runs too.
    scenario.persistence.rows_written_per_message = 1.0;
    let objects = 40;
    let costs = EventCosts::from_scenario(&scenario, None);
    let mut group = c.benchmark_group("meter");
    group.throughput(Throughput::Elements(SESSIONS * PER_SESSION));
    group.bench_function("burst_of_1m_events", |b| {
        b.iter(|| {
            let mut m = Meter::new(Setup::of(&scenario, objects, true, BusyBasis::Drawn));
            let mut t = 0u64;
            for s in 0..SESSIONS {
                let object = (s % u64::from(objects)) as u32;
                t += 1_000;
                m.worker_request();
                m.busy(Work::Connect, 500_000);
                m.connect();
                black_box(m.socket_opened(object, t));
                m.lobby_rpc();
                m.busy(Work::Rpc, 200_000);
                m.lobby_changes(1);
                m.joined();
                for _ in 0..20 {
                    t += 10;
                    m.message_in();
                    m.busy(Work::Message, black_box(170_000));
                    m.delivered(black_box(7));
                    m.message_stored(t);
                    // As in the simulator, every event finds the meter in memory (no
                    // folding of a burst into one addition).
                    black_box(&mut m);
                }
                m.close();
                black_box(m.socket_closed(object, t));
                black_box(&mut m);
            }
            m.close_books(t + 1);
            black_box(m.usage(&costs))
        })
    });
    group.finish();
}

criterion_group!(benches, burst);
criterion_main!(benches);
