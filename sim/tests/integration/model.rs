use dosim::des::simulate;
use dosim::model::strategy::Strategy;

use crate::util::{repo, scenario};

const STRATEGIES: [Strategy; 3] = [Strategy::Single, Strategy::PerRoom, Strategy::Sharded(3)];

#[test]
fn no_session_is_lost_in_any_shipped_scenario() {
    for name in ["seed-phase0", "seed-scale", "single-saturates"] {
        let mut s =
            dosim::scenario::Scenario::from_file(&repo().join(format!("scenarios/{name}.toml")))
                .unwrap();
        if s.window.length.secs() > 86_400.0 {
            s.window.length = "2d".parse().unwrap();
        }
        for strategy in STRATEGIES {
            let o = simulate(&s, strategy).sessions;
            assert!(o.arrived > 0);
            assert_eq!(
                o.arrived,
                o.admitted + o.abandoned + o.rejected + o.still_waiting + o.still_connecting,
                "{name} {strategy}: {o:?}"
            );
            assert_eq!(o.rejected, o.rejected_by_reason.values().sum::<u64>());
            assert!(o.admitted_from_queue <= o.queued);
        }
    }
}

/// A small building: ~45 users wanting 8 rooms of 4 (queues of 2), a message every 2 s.
fn small(extra: &str) -> dosim::scenario::Scenario {
    small_with_limits("", extra)
}

fn small_with_limits(limits: &str, extra: &str) -> dosim::scenario::Scenario {
    scenario(&format!(
        r#"
name = "small"
[window]
length = "2h"
[arrivals]
rate_per_second = 0.05
[sessions]
length = {{ dist = "exponential", mean = "15m" }}
message_interval = {{ dist = "exponential", mean = "2s" }}
[rooms]
count = 8
choice = "uniform"
[limits]
max_connections_per_room = 4
queue_limit = 2
{limits}
{extra}
"#
    ))
}

#[test]
fn one_object_cannot_hold_more_sockets_than_its_limit() {
    let s = small("[platform]\nmax_sockets_per_object = 10\n");
    let single = simulate(&s, Strategy::Single);
    assert!(
        single
            .sessions
            .rejected_by_reason
            .get("object_socket_limit")
            .copied()
            .unwrap_or(0)
            > 0,
        "{:?}",
        single.sessions
    );
    assert!(single.usage.peak_connections <= 10);
    // Spread over one object per room, no object reaches 10 sockets (4 seats + 2 queued).
    let per_room = simulate(&s, Strategy::PerRoom);
    assert_eq!(
        per_room
            .sessions
            .rejected_by_reason
            .get("object_socket_limit"),
        None
    );
}

#[test]
fn accept_sockets_bill_the_whole_connected_time_hibernation_only_the_work() {
    let hib = simulate(
        &small("[platform]\nhibernation = true\n"),
        Strategy::PerRoom,
    );
    let acc = simulate(
        &small("[platform]\nhibernation = false\n"),
        Strategy::PerRoom,
    );
    // Same plan, same traffic.
    assert_eq!(hib.messages_sent, acc.messages_sent);
    let busy = hib.usage.billable.do_active_seconds;
    let held = acc.usage.billable.do_active_seconds;
    // ~0.1 ms of work per message against rooms held open for most of two hours.
    assert!(
        busy > 0.0 && held > 100.0 * busy,
        "hibernation {busy} s, accept {held} s"
    );
    assert!(
        held <= 8.0 * 7200.0,
        "at most 8 objects for the whole window: {held}"
    );
    assert_eq!(hib.usage.billable.do_idle_tail_seconds, 0.0);
    assert!(acc.usage.billable.do_idle_tail_seconds > 0.0);
}

#[test]
fn global_limits_outside_single_cost_lobby_rpcs() {
    let s = small_with_limits("max_total_connections = 30", "");
    let single = simulate(&s, Strategy::Single);
    assert_eq!(
        single.usage.billable.do_requests, 0.0,
        "single decides locally"
    );
    for strategy in [Strategy::PerRoom, Strategy::Sharded(3)] {
        let o = simulate(&s, strategy);
        let joins = o.usage.billable.do_websocket_connects;
        // One RPC per join that reached the lobby, one per departure, one per promotion.
        assert!(
            o.usage.billable.do_requests >= joins,
            "{strategy}: {:?}",
            o.usage
        );
        assert!(
            o.usage.billable.do_requests <= 3.0 * joins,
            "{strategy}: {:?}",
            o.usage
        );
        assert_eq!(
            o.usage.objects_created,
            u64::from(strategy.object_count(8)) + 1
        );
        // The lobby writes a row per change of its state: at most one per RPC (a rejected
        // join changes nothing), and they are the only rows written here.
        let rows = o.usage.lobby_rows_written;
        assert!(
            rows > 0.0 && rows <= o.usage.billable.do_requests,
            "{strategy}: {rows}"
        );
        assert_eq!(o.usage.billable.sqlite_rows_written, rows);
        assert_eq!(o.usage.billable.sqlite_stored_gb_months, 0.0);
        // Twice the rows per change, twice the rows: the same run otherwise.
        let twice = small_with_limits(
            "max_total_connections = 30",
            "[platform]\nlobby_rows_written_per_change = 2.0\n",
        );
        let o2 = simulate(&twice, strategy);
        assert_eq!(o2.usage.lobby_rows_written, 2.0 * rows, "{strategy}");
        assert_eq!(o2.usage.billable.do_requests, o.usage.billable.do_requests);
    }
    assert_eq!(single.usage.lobby_rows_written, 0.0);
    // Without global limits there is no lobby.
    let o = simulate(&small(""), Strategy::PerRoom);
    assert_eq!(o.usage.billable.do_requests, 0.0);
    assert_eq!(o.usage.objects_created, 8);
}

#[test]
fn a_saturated_object_fails_requests_that_spread_objects_serve() {
    // Up to 32 seated users, each sending every 2 s, 100 ms of work per message: one object
    // would need up to 1.6 s of work per second, one object per room at most 0.2 s.
    let s = small(
        "[platform.service]\nmessage = { dist = \"constant\", value = \"100ms\" }\n[platform.overload]\nmax_queue_delay = \"1s\"\n",
    );
    let single = simulate(&s, Strategy::Single);
    let per_room = simulate(&s, Strategy::PerRoom);
    assert!(single.usage.overload_errors > 0);
    assert!(single.messages_failed > 0);
    assert_eq!(per_room.usage.overload_errors, 0);
    let q_single = single.object_queue.summary().p99.unwrap();
    let q_room = per_room.object_queue.summary().p99.unwrap();
    assert!(
        q_single > 4.0 * q_room,
        "single p99 {q_single} ms, per-room {q_room} ms"
    );
}
