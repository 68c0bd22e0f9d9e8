//! Reconcile: the driver's own counts against the Worker's stats.
//!
//! The Worker's counters are lineages (`instance`, `started_at`): an object's counters from
//! its first join while it holds sockets, across its evictions (`restarts`), in the
//! isolate's memory; an idle object's lineage is held by the strategy's registry, whole for
//! the most recent ones, else folded into its `pruned` sum (workers/src/registry.ts). The
//! driver reads the stats before the run and after it: what the Worker counted during the
//! run is the sum over the read after (every listed object and the pruned sum) less the
//! same over the read before, and that is compared with what the driver counted itself.
//! An object pruned during the run kept its counters (in the sum): it is counted
//! (`pruned`), and is no difference. A lineage the Worker lost (the registry reports it
//! `lost`: its object started again in a new isolate; or without a registry, `single`, an
//! `instance` that changed) is a restart with counters lost. An object evicted and woken
//! again during the run kept its counters: that is reported (`evictions`), and is no
//! difference. Per object, the driver's own counts are compared where one lineage covers
//! the whole run for that object (`objects_compared`).
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
use super::stats::{ObjectStats, RoomCounters, Stats};
use crate::model::strategy::Strategy;

/// Slack between the driver's clock and the Worker's `started_at` when deciding that an
/// object's lineage began with the driver's first request to it.
const CLOCK_SLACK_MS: f64 = 2_000.0;

/// The name the Worker gives the object with index `object` of `strategy` (see
/// `workers/src/strategy.ts`).
pub fn object_name(strategy: Strategy, object: u32) -> String {
    match strategy {
        Strategy::Single => "single".into(),
        Strategy::PerRoom => format!("room:{}", crate::workload::room_name(object)),
        Strategy::Sharded(n) => format!("shard:{n}:{object}"),
    }
}

/// What the Worker counted during the run, over every lineage; the restarts, evictions,
/// pruned objects and per-object differences go into `r`.
///
/// Every counter of a stats document is in exactly one place: a listed object (active or
/// idle) or the registry's pruned sum. So the run's counts are the counters of the read
/// after less those of the lineages of the read before that the read after still accounts
/// for: all of them, except the lost ones; if the registry itself restarted, only those
/// still listed.
fn counted_during_run(
    strategy: Strategy,
    before: Option<&Stats>,
    after: &Stats,
    per_object: &[ObjectTally],
    r: &mut Reconciliation,
) -> RoomCounters {
    let mut sum = RoomCounters::default();
    for o in &after.objects {
        sum.add(&o.counters);
    }
    if let Some(p) = &after.pruned {
        sum.add(&p.counters);
    }
    r.objects = after.objects.len() as u64;
    r.connections_after = after.objects.iter().map(|o| o.connections).sum();
    let pruned_before = before.and_then(|b| b.pruned.as_ref());
    let registry_same = match (pruned_before, &after.pruned) {
        (Some(b), Some(a)) => b.instance == a.instance,
        _ => true,
    };
    let before_by_name: BTreeMap<&str, &ObjectStats> = before
        .map(|b| b.objects.iter().map(|o| (o.name.as_str(), o)).collect())
        .unwrap_or_default();
    let started = |name: &str| before_by_name.get(name).map_or(0.0, |o| o.started_at);

    // Lineages lost since the read before (all of them without one).
    let mut lost: BTreeSet<(&str, &str)> = BTreeSet::new();
    if let Some(p) = &after.pruned {
        if !registry_same {
            r.restarts.push(Restart {
                object: format!("registry:{}", strategy.url_segment()),
                how: "its instance changed between the reads before and after the run: the counters of the idle and pruned objects it held were lost".into(),
                started_at_unix_ms: p.started_at,
            });
        }
        let known: BTreeSet<(&str, &str)> = pruned_before
            .filter(|_| registry_same)
            .map(|b| {
                b.lost_recent
                    .iter()
                    .map(|l| (l.name.as_str(), l.instance.as_str()))
                    .collect()
            })
            .unwrap_or_default();
        for l in &p.lost_recent {
            let key = (l.name.as_str(), l.instance.as_str());
            if !known.contains(&key) && lost.insert(key) {
                r.restarts.push(Restart {
                    object: l.name.clone(),
                    how: "the Worker found its counters gone (the object started again in a new isolate)".into(),
                    started_at_unix_ms: started(&l.name),
                });
            }
        }
        let newly = p.lost.saturating_sub(
            pruned_before
                .filter(|_| registry_same)
                .map_or(0, |b| b.lost),
        );
        if newly > lost.len() as u64 {
            r.restarts.push(Restart {
                object: format!("{} more object(s)", newly - lost.len() as u64),
                how: "the Worker found their counters gone (not named: it names the last 20)"
                    .into(),
                started_at_unix_ms: 0.0,
            });
        }
        r.pruned = p.objects.saturating_sub(
            pruned_before
                .filter(|_| registry_same)
                .map_or(0, |b| b.objects),
        );
    }
    let after_lineages: BTreeSet<(&str, &str)> = after
        .objects
        .iter()
        .map(|o| (o.name.as_str(), o.instance.as_str()))
        .collect();
    if let Some(b) = before {
        for o in &b.objects {
            let key = (o.name.as_str(), o.instance.as_str());
            let listed = after_lineages.contains(&key);
            // Without a registry (`single`) every object is listed: a new instance means its
            // counters were lost.
            let replaced = after.pruned.is_none() && !listed && !o.instance.is_empty();
            if replaced {
                let now = after.objects.iter().find(|a| a.name == o.name);
                r.restarts.push(Restart {
                    object: o.name.clone(),
                    how: "its instance changed between the reads before and after the run".into(),
                    started_at_unix_ms: now.map_or(0.0, |a| a.started_at),
                });
            }
            if listed || (registry_same && !replaced && !lost.contains(&key)) {
                sum.sub(&o.counters);
            }
        }
        if let Some(p) = pruned_before.filter(|_| registry_same) {
            sum.sub(&p.counters);
        }
    }

    // Per object, where one lineage covers the whole run: read before with the same lineage,
    // or begun with the driver's first request to the object (or no read before).
    let names: BTreeMap<String, usize> = (0..per_object.len())
        .map(|i| (object_name(strategy, i as u32), i))
        .collect();
    for o in &after.objects {
        let tally = names.get(&o.name).map(|&i| &per_object[i]);
        // (An object with no lineage before, instance "", had counted nothing.)
        let read_before = before_by_name
            .get(o.name.as_str())
            .filter(|b| !b.instance.is_empty());
        let base = match read_before {
            Some(b) if b.instance == o.instance => Some(*b),
            _ if before.is_none() => None,
            Some(_) => {
                if o.restarts > 0 {
                    r.evictions.push((o.name.clone(), o.restarts));
                }
                continue;
            }
            None => {
                let first = tally.and_then(|t| t.first_request_unix_ms);
                if first.is_some_and(|first| o.started_at > first + CLOCK_SLACK_MS) {
                    if o.restarts > 0 {
                        r.evictions.push((o.name.clone(), o.restarts));
                    }
                    continue;
                }
                None
            }
        };
        let woke = o.restarts - base.map_or(0, |b| b.restarts.min(o.restarts));
        if woke > 0 {
            r.evictions.push((o.name.clone(), woke));
        }
        let Some(t) = tally else { continue };
        r.objects_compared += 1;
        let mut d = o.counters.clone();
        if let Some(b) = base {
            d.sub(&b.counters);
        }
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
    // Without a registry every object the driver used is listed.
    if after.pruned.is_none() {
        for (name, &i) in &names {
            if per_object[i].upgrades > 0 && !after.objects.iter().any(|o| &o.name == name) {
                r.object_differences.push(ObjectDifference {
                    object: name.clone(),
                    field: "listed".into(),
                    driver: 1,
                    worker: 0,
                });
            }
        }
    }
    for name in &after.unanswered {
        r.object_differences.push(ObjectDifference {
            object: name.clone(),
            field: "answered".into(),
            driver: 1,
            worker: 0,
        });
    }
    sum
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
            "GET /s/{}/stats {} and after the run: the counters of every object listed and of the registry's pruned sum, after less before",
            strategy.url_segment(),
            if before.is_some() {
                "before"
            } else {
                "(not read before the run: counters since each object started)"
            }
        ),
        ..Reconciliation::default()
    };
    let sum = counted_during_run(strategy, before, after, per_object, &mut r);
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
    use crate::drive::stats::{LostLineage, PrunedStats};

    fn obj(name: &str, instance: &str, connects: u64, msgs: u64) -> ObjectStats {
        ObjectStats {
            name: name.into(),
            instance: instance.into(),
            counters: counters(connects, msgs),
            ..ObjectStats::default()
        }
    }

    fn counters(connects: u64, msgs: u64) -> RoomCounters {
        RoomCounters {
            connects,
            admitted: connects,
            messages_in: msgs,
            messages_out: msgs * 2,
            ..RoomCounters::default()
        }
    }

    fn pruned(objects: u64, connects: u64, msgs: u64) -> PrunedStats {
        PrunedStats {
            instance: "registry".into(),
            objects,
            counters: counters(connects, msgs),
            ..PrunedStats::default()
        }
    }

    fn tally(upgrades: u64, messages_sent: u64) -> ObjectTally {
        ObjectTally {
            upgrades,
            messages_sent,
            deliveries: messages_sent * 2,
            first_request_unix_ms: None,
        }
    }

    fn driver(upgrades: u64, messages_sent: u64) -> Totals {
        Totals {
            upgrades,
            admitted: upgrades,
            messages_sent,
            deliveries: messages_sent * 2,
            ..Totals::default()
        }
    }

    #[test]
    fn objects_pruned_during_the_run_keep_their_counters_and_are_no_restart() {
        // r0 was idle before the run (5 connects); in the run it came back (+3), went idle
        // again and was pruned into the registry's sum; r1 is new.
        let before = Stats {
            objects: vec![ObjectStats {
                state: "idle".into(),
                ..obj("room:r0", "a", 5, 10)
            }],
            pruned: Some(pruned(0, 0, 0)),
            ..Stats::default()
        };
        let after = Stats {
            objects: vec![obj("room:r1", "b", 2, 4)],
            pruned: Some(pruned(1, 8, 30)),
            ..Stats::default()
        };
        let per_object = [tally(3, 20), tally(2, 4)];
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &after,
            &driver(5, 24),
            &per_object,
            None,
        );
        assert!(r.ok, "{:?} {:?}", r.differences, r.restarts);
        assert_eq!((r.pruned, r.objects_compared), (1, 1));
        // r0 back again with a new lineage (the old one pruned): no restart, no difference.
        let revived = Stats {
            objects: vec![obj("room:r0", "c", 1, 0), obj("room:r1", "b", 2, 4)],
            pruned: Some(pruned(1, 8, 30)),
            ..Stats::default()
        };
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &revived,
            &driver(6, 24),
            &[tally(4, 20), tally(2, 4)],
            None,
        );
        assert!(r.ok, "{:?} {:?}", r.differences, r.restarts);
        assert_eq!(r.objects_compared, 1, "r0's lineage does not cover the run");
        // The same, but the Worker lost r0's lineage "a" (a new isolate): a restart, and the
        // counters are short.
        let lost = Stats {
            objects: vec![obj("room:r0", "c", 1, 0), obj("room:r1", "b", 2, 4)],
            pruned: Some(PrunedStats {
                lost: 1,
                lost_recent: vec![LostLineage {
                    name: "room:r0".into(),
                    instance: "a".into(),
                    detected_at: 0.0,
                }],
                ..pruned(0, 0, 0)
            }),
            ..Stats::default()
        };
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &lost,
            &driver(6, 24),
            &[tally(4, 20), tally(2, 4)],
            None,
        );
        assert!(!r.ok);
        assert_eq!(r.restarts.len(), 1, "{:?}", r.restarts);
        assert_eq!(r.restarts[0].object, "room:r0");
        // The registry restarted: what it held is lost.
        let mut moved = after.clone();
        moved.pruned.as_mut().unwrap().instance = "registry-2".into();
        let r = reconcile(
            Strategy::PerRoom,
            Some(&before),
            &moved,
            &driver(5, 24),
            &per_object,
            None,
        );
        assert!(!r.ok);
        assert!(
            r.restarts[0].object.starts_with("registry:"),
            "{:?}",
            r.restarts
        );
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
        raced.objects[0].counters.promoted = 7;
        raced.objects[0].counters.left = 7;
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
