//! The deadline of a run whose guest code is not interruptible (see
//! [`super::RuntimeOptions::interruptible`]): a thread that waits for it and, if the run has
//! not ended by then, hands the run to a handler that ends the process.
//!
//! Why a process can do without interruption: epoch checks at every function entry and loop
//! head were about a quarter of rpa1's guest instructions. A process that runs one flow does
//! not need to survive a flow stuck in its own code: ending the process ends its connections,
//! and the servers roll back whatever was open, as they do for a crashed client.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

/// Called on the watchdog's thread with the run's timeout when the run is stuck past its
/// deadline. It records and reports the run, then ends the process: it must not return (the
/// run is still executing on its own thread).
pub type StuckHandler = Arc<dyn Fn(super::RuntimeError) + Send + Sync>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Armed,
    Disarmed,
    Fired,
}

/// A deadline being watched; [`Watchdog::disarm`] it when the run ends.
pub(super) struct Watchdog {
    state: Arc<(Mutex<State>, Condvar)>,
}

impl Watchdog {
    /// Watches `at` on a thread of its own; `fire` runs there if the watchdog is still armed
    /// then.
    pub(super) fn arm(
        at: Instant,
        fire: impl FnOnce() + Send + 'static,
    ) -> std::io::Result<Watchdog> {
        let state = Arc::new((Mutex::new(State::Armed), Condvar::new()));
        let watched = state.clone();
        std::thread::Builder::new()
            .name("flowhost-deadline".into())
            .spawn(move || {
                let (lock, woken) = &*watched;
                let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
                while *state == State::Armed {
                    let now = Instant::now();
                    if now >= at {
                        *state = State::Fired;
                        drop(state);
                        fire();
                        return;
                    }
                    state = woken
                        .wait_timeout(state, at - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
            })?;
        Ok(Watchdog { state })
    }

    /// Stops watching. `false` when the deadline has already fired: the handler owns the
    /// run's end (and the process's), so the caller must not report the run itself.
    pub(super) fn disarm(self) -> bool {
        let (lock, woken) = &*self.state;
        let mut state = lock.lock().unwrap_or_else(|e| e.into_inner());
        if *state == State::Fired {
            return false;
        }
        *state = State::Disarmed;
        woken.notify_one();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_run_that_ends_in_time_is_never_handed_over() {
        let fired = Arc::new(AtomicBool::new(false));
        let flag = fired.clone();
        let watchdog = Watchdog::arm(Instant::now() + Duration::from_millis(200), move || {
            flag.store(true, Ordering::SeqCst)
        })
        .unwrap();
        assert!(watchdog.disarm(), "disarmed before the deadline");
        std::thread::sleep(Duration::from_millis(400));
        assert!(!fired.load(Ordering::SeqCst), "fired after being disarmed");
    }

    #[test]
    fn a_run_past_its_deadline_is_handed_over_and_cannot_be_disarmed() {
        let (tx, rx) = std::sync::mpsc::channel();
        let watchdog = Watchdog::arm(Instant::now() + Duration::from_millis(50), move || {
            tx.send(()).unwrap()
        })
        .unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("the handler ran");
        assert!(!watchdog.disarm(), "a fired watchdog reports it");
    }
}
