use std::collections::BTreeMap;

use dosim::model::admission::{Admission, JoinOutcome, LeaveOutcome, Limits, Promotion};
use serde_json::Value;

use crate::util::repo;

/// Names on the wire ↔ numeric ids in the module.
#[derive(Default)]
struct Names {
    ids: BTreeMap<String, u64>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> u64 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u64;
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        id
    }
    fn name(&self, id: u64) -> &str {
        &self.names[id as usize]
    }
}

fn limits(v: &Value) -> Limits {
    let opt = |k: &str| v[k].as_u64().map(|x| x as u32);
    Limits {
        room_capacity: v["max_connections_per_room"].as_u64().unwrap() as u32,
        max_active_rooms: opt("max_active_rooms"),
        max_total_connections: opt("max_total_connections"),
        queue_limit: v["queue_limit"].as_u64().unwrap() as u32,
    }
}

fn promoted_names(p: &[Promotion], users: &Names, rooms: &Names) -> Vec<(String, String)> {
    p.iter()
        .map(|x| {
            (
                users.name(x.user).to_string(),
                rooms.name(u64::from(x.room)).to_string(),
            )
        })
        .collect()
}

fn expected_promoted(expect: &Value) -> Vec<(String, String)> {
    expect["promoted"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["user"].as_str().unwrap().to_string(),
                        p["room"].as_str().unwrap().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_shared_vector_passes() {
    let path = repo().join("scenarios/vectors/admission.json");
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 10, "the vectors file lost vectors");
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let mut adm = Admission::new(limits(&v["limits"]));
        let (mut users, mut rooms) = (Names::default(), Names::default());
        for (i, step) in v["steps"].as_array().unwrap().iter().enumerate() {
            let at = format!("vector {name}, step {i}: {step}");
            let user = users.id(step["user"].as_str().unwrap());
            let expect = &step["expect"];
            let outcome = expect["outcome"].as_str().unwrap();
            match step["op"].as_str().unwrap() {
                "join" => {
                    let room = rooms.id(step["room"].as_str().unwrap()) as u32;
                    let got = adm.join(user, room);
                    let want = match outcome {
                        "admitted" => JoinOutcome::Admitted,
                        "queued" => JoinOutcome::Queued {
                            position: expect["position"].as_u64().unwrap() as u32,
                        },
                        "rejected" => {
                            let reason = expect["reason"].as_str().unwrap();
                            match got {
                                JoinOutcome::Rejected(r) if r.as_str() == reason => got,
                                _ => panic!("{at}: got {got:?}, want rejected {reason}"),
                            }
                        }
                        other => panic!("{at}: unknown outcome {other}"),
                    };
                    assert_eq!(got, want, "{at}");
                }
                op @ ("leave" | "timeout") => {
                    let got = if op == "leave" {
                        adm.leave(user)
                    } else {
                        adm.timeout(user)
                    };
                    let (kind, promoted) = match &got {
                        LeaveOutcome::Left { promoted } => ("left", promoted.as_slice()),
                        LeaveOutcome::Abandoned { promoted } => ("abandoned", promoted.as_slice()),
                        LeaveOutcome::Unknown => ("unknown", &[][..]),
                    };
                    assert_eq!(kind, outcome, "{at}");
                    assert_eq!(
                        promoted_names(promoted, &users, &rooms),
                        expected_promoted(expect),
                        "{at}"
                    );
                }
                other => panic!("{at}: unknown op {other}"),
            }
        }
        if let Some(f) = v.get("final") {
            assert_eq!(
                u64::from(adm.active_rooms()),
                f["active_rooms"].as_u64().unwrap(),
                "vector {name}: active rooms"
            );
            assert_eq!(
                u64::from(adm.seated_total()),
                f["total_connections"].as_u64().unwrap(),
                "vector {name}: total connections"
            );
            for (room_name, room_id) in &rooms.ids {
                let seated: Vec<&str> = adm
                    .seated_in(*room_id as u32)
                    .iter()
                    .map(|&u| users.name(u))
                    .collect();
                let want: Vec<&str> = f["seated"][room_name]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(seated, want, "vector {name}: seated in {room_name}");
                let queued: Vec<&str> = adm
                    .queue_of(*room_id as u32)
                    .iter()
                    .map(|&u| users.name(u))
                    .collect();
                let want: Vec<&str> = f["queued"][room_name]
                    .as_array()
                    .map(|a| a.iter().map(|x| x.as_str().unwrap()).collect())
                    .unwrap_or_default();
                assert_eq!(queued, want, "vector {name}: queued in {room_name}");
            }
        }
    }
}
