//! The driver thread's scheduling priority. With `--realtime` the driver runs on a thread of
//! its own under `SCHED_FIFO`, so that the wake-up for a send preempts whatever else holds
//! its core (on a shared machine, often the target itself): on the 2-core test VM this took
//! the send lag's p99 from 1.1–3.4 ms to 0.11–0.19 ms (see `results/benchmarks.md`, run C).
//! The policy lives and dies with that thread; workerd and every other child process is
//! started from the caller's thread and keeps the normal policy.

use thread_priority::unix::{
    set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy,
    ThreadSchedulePolicy,
};
use thread_priority::{ThreadPriority, ThreadPriorityValue};

/// The `SCHED_FIFO` priority of the driver thread: low among real-time priorities (1–99),
/// so that the kernel's own real-time threads still come first.
pub const REALTIME_PRIORITY: u8 = 10;

/// Put the calling thread under `SCHED_FIFO` at [`REALTIME_PRIORITY`], or say why not.
pub fn make_current_thread_realtime() -> Result<(), String> {
    let priority = ThreadPriorityValue::try_from(REALTIME_PRIORITY)
        .map_err(|e| format!("--realtime: priority {REALTIME_PRIORITY}: {e}"))?;
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(priority),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .map_err(|e| {
        let why = match e {
            thread_priority::Error::OS(code) => std::io::Error::from_raw_os_error(code).to_string(),
            other => format!("{other:?}"),
        };
        format!(
            "--realtime: the kernel refused SCHED_FIFO priority {REALTIME_PRIORITY} for the driver thread ({why}); it needs CAP_SYS_NICE or a real-time priority limit of at least {REALTIME_PRIORITY} (`ulimit -r`, or rtprio in limits.conf), and a cgroup with a real-time budget"
        )
    })
}

/// Whether this process may run a thread under `SCHED_FIFO`: tried on a short-lived thread
/// of its own, so that nothing else changes.
pub fn check_realtime() -> Result<(), String> {
    std::thread::Builder::new()
        .name("dosim-rt-check".into())
        .spawn(make_current_thread_realtime)
        .map_err(|e| format!("--realtime: no thread to try it on: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("--realtime: the check's thread panicked".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_leaves_the_calling_thread_as_it_was() {
        let before = thread_priority::unix::thread_schedule_policy().unwrap();
        // Allowed or refused, the answer is an answer, and this thread is untouched.
        let answer = check_realtime();
        if let Err(why) = &answer {
            assert!(why.starts_with("--realtime:"), "{why}");
        }
        assert_eq!(
            thread_priority::unix::thread_schedule_policy().unwrap(),
            before
        );
        if answer.is_ok() {
            // Where it is allowed, a thread that asks runs under SCHED_FIFO at the priority.
            let (policy, params) = std::thread::spawn(|| {
                make_current_thread_realtime().unwrap();
                thread_priority::unix::thread_schedule_policy_param(thread_native_id()).unwrap()
            })
            .join()
            .unwrap();
            assert_eq!(
                policy,
                ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo)
            );
            assert_eq!(params.sched_priority, i32::from(REALTIME_PRIORITY));
        }
    }
}
