//! Reconcile: the driver's own counts against the Worker's stats.
//!
//! The Worker's counters count since each object was created (`started_at`, `instance`),
//! across its evictions (`restarts`): they live in the isolate's memory. The driver reads
//! the stats before the run and after it and compares the differences (per object, then
//! summed) with what it counted itself. An object whose `instance` changed between the two
//! reads, or that started after the driver's first request to it, restarted with its
//! counters lost (a new isolate): its counters only cover the time since, and it is
//! reported as a restart. An object evicted and woken again during the run kept its
//! counters: that is reported (`evictions`), and is no difference.
//!
//! After a Ctrl-C the run stops in order (every user leaves and waits for the server's
//! close), so the counts still compare exactly. When sockets had to be closed without
//! waiting (a second Ctrl-C, or the orderly stop took too long), the Worker may have done
//! things with them the driver never saw — promoted a queued user while the driver was
//! closing the seated ones, delivered a message, counted a connect: the checks that differ
//! are then listed as `not_comparable`, with the reason, not as differences.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::report::drive::{Check, ObjectDifference, Reconciliation, Restart};

use super::state::{ObjectTally, Totals};
use super::stats::{ObjectStats, Stats};
use crate::model::strategy::Strategy;

/// Slack between the driver's clock and the Worker's `started_at` when deciding that an
/// object started after the driver first asked for it.
const CLOCK_SLACK_MS: f64 = 2_000.0;

/// Counter differences of one object between two reads.
fn delta(before: Option<&ObjectStats>, after: &ObjectStats) -> (ObjectStats, bool) {
    match before {
        Some(b) if b.instance == after.instance => {
            let d = |a: u64, b: u64| a.saturating_sub(b);
            let mut rej = BTreeMap::new();
            for (k, v) in &after.rejections {
                rej.insert(k.clone(), d(*v, b.rejections.get(k).copied().unwrap_or(0)));
            }
            (
                ObjectStats {
                    connects: d(after.connects, b.connects),
                    admitted: d(after.admitted, b.admitted),
                    queued_joins: d(after.queued_joins, b.queued_joins),
                    promoted: d(after.promoted, b.promoted),
                    left: d(after.left, b.left),
                    abandoned: d(after.abandoned, b.abandoned),
                    rejections: rej,
                    messages_in: d(after.messages_in, b.messages_in),
                    messages_out: d(after.messages_out, b.messages_out),
                    not_admitted: d(after.not_admitted, b.not_admitted),
                    malformed: d(after.malformed, b.malformed),
                    oversized: d(after.oversized, b.oversized),
                    unknown: d(after.unknown, b.unknown),
                    lobby_rpcs: d(after.lobby_rpcs, b.lobby_rpcs),
                    lobby_errors: d(after.lobby_errors, b.lobby_errors),
                    ..after.clone()
                },
                false,
            )
        }
        Some(_) => (after.clone(), true),
        None => (after.clone(), false),
    }
}

/// The name the Worker gives the object with index `object` of `strategy` (see
/// `workers/src/strategy.ts`).
pub fn object_name(strategy: Strategy, object: u32) -> String {
    match strategy {
        Strategy::Single => "single".into(),
        Strategy::PerRoom => format!("room:{}", crate::workload::room_name(object)),
        Strategy::Sharded(n) => format!("shard:{n}:{object}"),
    }
}

/// Compare. `per_object` is indexed by the strategy's object index. `not_comparable`: why
/// differences cannot be judged (sockets closed without waiting after an interrupt), if so.
pub(crate) fn reconcile(
    strategy: Strategy,
    before: Option<&Stats>,
    after: &Stats,
    driver: &Totals,
    per_object: &[ObjectTally],
    not_comparable: Option<&str>,
) -> Reconciliation {
    let mut r = Reconciliation {
        source: format!(
            "GET /s/{}/stats {} and after the run: per-object counter differences, summed",
            strategy.url_segment(),
            if before.is_some() {
                "before"
            } else {
                "(not read before the run: counters since each object started)"
            }
        ),
        objects: after.objects.len() as u64,
        ..Reconciliation::default()
    };
    let before_by_name: BTreeMap<&str, &ObjectStats> = before
        .map(|b| b.objects.iter().map(|o| (o.name.as_str(), o)).collect())
        .unwrap_or_default();
    let names: BTreeMap<String, usize> = (0..per_object.len())
        .map(|i| (object_name(strategy, i as u32), i))
        .collect();
    let mut sum = ObjectStats::default();
    for o in &after.objects {
        let before_o = before_by_name.get(o.name.as_str()).copied();
        let (d, restarted) = delta(before_o, o);
        let woke = o.restarts - before_o.map_or(0, |b| b.restarts.min(o.restarts));
        if !restarted && woke > 0 {
            r.evictions.push((o.name.clone(), woke));
        }
        if restarted {
            r.restarts.push(Restart {
                object: o.name.clone(),
                how: "its instance changed between the reads before and after the run".into(),
                started_at_unix_ms: o.started_at,
            });
        } else if !before_by_name.contains_key(o.name.as_str()) {
            let first = names
                .get(&o.name)
                .and_then(|&i| per_object[i].first_request_unix_ms);
            if let Some(first) = first {
                if o.started_at > first + CLOCK_SLACK_MS {
                    r.restarts.push(Restart {
                        object: o.name.clone(),
                        how: format!(
                            "it started {:.1} s after the driver's first request to it",
                            (o.started_at - first) / 1000.0
                        ),
                        started_at_unix_ms: o.started_at,
                    });
                }
            }
        }
        r.connections_after += o.connections;
        if let Some(&i) = names.get(&o.name) {
            let t = &per_object[i];
            for (field, drv, wrk) in [
                ("connects", t.upgrades, d.connects),
                ("messages_in", t.messages_sent, d.messages_in),
                ("messages_out", t.deliveries, d.messages_out),
            ] {
                // messages_in per object excludes not_admitted; those are rare and global.
                if drv != wrk && r.object_differences.len() < 20 {
                    r.object_differences.push(ObjectDifference {
                        object: o.name.clone(),
                        field: field.into(),
                        driver: drv,
                        worker: wrk,
                    });
                }
            }
        }
        sum.connects += d.connects;
        sum.admitted += d.admitted;
        sum.queued_joins += d.queued_joins;
        sum.promoted += d.promoted;
        sum.left += d.left;
        sum.abandoned += d.abandoned;
        for (k, v) in &d.rejections {
            *sum.rejections.entry(k.clone()).or_default() += v;
        }
        sum.messages_in += d.messages_in;
        sum.messages_out += d.messages_out;
        sum.not_admitted += d.not_admitted;
        sum.malformed += d.malformed;
        sum.oversized += d.oversized;
        sum.unknown += d.unknown;
        sum.lobby_rpcs += d.lobby_rpcs;
        sum.lobby_errors += d.lobby_errors;
    }
    // Objects the driver used that the Worker does not list.
    for (name, &i) in &names {
        let t = &per_object[i];
        if t.upgrades > 0 && !after.objects.iter().any(|o| &o.name == name) {
            r.object_differences.push(ObjectDifference {
                object: name.clone(),
                field: "listed".into(),
                driver: 1,
                worker: 0,
            });
        }
    }
    let mut check = |name: &str, driver: u64, worker: u64| {
        r.checks.push(Check {
            name: name.to_string(),
            driver,
            worker,
            ok: driver == worker,
        });
    };
    check("connects", driver.upgrades, sum.connects);
    check("admitted", driver.admitted, sum.admitted);
    check("queued_joins", driver.queued_joins, sum.queued_joins);
    check("promoted", driver.promoted, sum.promoted);
    check("left", driver.left, sum.left);
    check("abandoned", driver.abandoned, sum.abandoned);
    let reasons: BTreeSet<&String> = driver
        .rejections
        .keys()
        .chain(sum.rejections.keys())
        .collect();
    for reason in reasons {
        let a = driver.rejections.get(reason).copied().unwrap_or(0);
        let b = sum.rejections.get(reason).copied().unwrap_or(0);
        if a != 0 || b != 0 {
            check(&format!("rejections.{reason}"), a, b);
        }
    }
    check(
        "messages_in",
        driver.messages_sent.saturating_sub(driver.not_admitted),
        sum.messages_in,
    );
    check("messages_out", driver.deliveries, sum.messages_out);
    check("not_admitted", driver.not_admitted, sum.not_admitted);
    check("malformed", 0, sum.malformed);
    check("oversized", 0, sum.oversized);
    check("unknown", 0, sum.unknown);
    check("lobby_errors", 0, sum.lobby_errors);
    if after.lobby_mode {
        let departures = driver.left + driver.abandoned;
        check("lobby_rpcs", driver.upgrades + departures, sum.lobby_rpcs);
        if let Some(l) = &after.lobby {
            let lb = before.and_then(|b| b.lobby.as_ref());
            let same = lb.is_some_and(|b| b.instance == l.instance);
            if lb.is_some() && !same {
                r.restarts.push(Restart {
                    object: l.name.clone(),
                    how: "its instance changed between the reads before and after the run".into(),
                    started_at_unix_ms: l.started_at,
                });
            }
            let d = |f: fn(&super::stats::LobbyStats) -> u64| {
                f(l).saturating_sub(lb.filter(|_| same).map_or(0, f))
            };
            check("lobby.rpc_join", driver.upgrades, d(|x| x.rpc_join));
            check("lobby.rpc_leave", departures, d(|x| x.rpc_leave));
            check(
                "lobby.rpc_promote",
                driver.promoted,
                d(|x| x.rpc_promote) - d(|x| x.promote_failed).min(d(|x| x.rpc_promote)),
            );
        }
    }
    r.differences = r
        .checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| {
            format!(
                "{}: driver {}, worker {} ({:+})",
                c.name,
                c.driver,
                c.worker,
                c.worker as i64 - c.driver as i64
            )
        })
        .collect();
    if let Some(why) = not_comparable {
        r.not_comparable = std::mem::take(&mut r.differences);
        r.not_comparable
            .extend(r.object_differences.drain(..).map(|d| {
                format!(
                    "object {} {}: driver {}, worker {}",
                    d.object, d.field, d.driver, d.worker
                )
            }));
        if !r.not_comparable.is_empty() {
            r.not_comparable_reason = Some(why.to_string());
        }
    }
    r.ok = r.differences.is_empty() && r.restarts.is_empty() && r.object_differences.is_empty();
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str, instance: &str, connects: u64, msgs: u64) -> ObjectStats {
        ObjectStats {
            name: name.into(),
            instance: instance.into(),
            connects,
            admitted: connects,
            messages_in: msgs,
            messages_out: msgs * 2,
            ..ObjectStats::default()
        }
    }

    #[test]
    fn differences_of_two_reads_match_the_driver() {
        let before = Stats {
            objects: vec![obj("room:r0", "a", 5, 10)],
            ..Stats::default()
        };
        let after = Stats {
            objects: vec![obj("room:r0", "a", 8, 30), obj("room:r1", "b", 2, 4)],
            ..Stats::default()
        };
        let driver = Totals {
            upgrades: 5,
            admitted: 5,
            messages_sent: 24,
            deliveries: 48,
            ..Totals::default()
        };
        let per_object = vec![
            ObjectTally {
                upgrades: 3,
                messages_sent: 20,
                deliveries: 40,
                first_request_unix_ms: None,
            },
            ObjectTally {
                upgrades: 2,
                messages_sent: 4,
                deliveries: 8,
                first_request_unix_ms: None,
            },
        ];
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &after,
            &driver,
            &per_object,
            None,
        );
        assert!(r.ok, "{:?}", r.differences);
        assert!(r.evictions.is_empty());
        // An object evicted and woken twice, its counters kept: reported, and no difference.
        let mut woken = after.clone();
        woken.objects[0].restarts = 2;
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &woken,
            &driver,
            &per_object,
            None,
        );
        assert!(r.ok, "{:?}", r.differences);
        assert_eq!(r.evictions, vec![("room:r0".to_string(), 2)]);
        // A restart (counters lost) is reported.
        let after2 = Stats {
            objects: vec![obj("room:r0", "z", 3, 20), obj("room:r1", "b", 2, 4)],
            ..Stats::default()
        };
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &after2,
            &driver,
            &per_object,
            None,
        );
        assert!(!r.ok);
        assert_eq!(r.restarts.len(), 1);
        // Promotions the Worker made while the driver closed sockets after an interrupt,
        // without waiting: not comparable, never a difference.
        let mut raced = after.clone();
        raced.objects[0].promoted = 7;
        raced.objects[0].left = 7;
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &raced,
            &driver,
            &per_object,
            None,
        );
        assert!(!r.ok, "a difference in a run that waited for every close");
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &raced,
            &driver,
            &per_object,
            Some("3 sockets closed without waiting"),
        );
        assert!(r.ok && r.differences.is_empty(), "{:?}", r.differences);
        assert_eq!(
            r.not_comparable,
            [
                "promoted: driver 0, worker 7 (+7)",
                "left: driver 0, worker 7 (+7)"
            ]
        );
        assert_eq!(
            r.not_comparable_reason.as_deref(),
            Some("3 sockets closed without waiting")
        );
    }

    #[test]
    fn object_names_follow_the_worker() {
        assert_eq!(object_name(Strategy::Single, 0), "single");
        assert_eq!(object_name(Strategy::PerRoom, 3), "room:r3");
        assert_eq!(object_name(Strategy::Sharded(4), 1), "shard:4:1");
    }
}
