//! One thread at a time builds or runs an autodiff graph in this process.
//!
//! burn 0.21 keeps every autodiff graph of the process in one global registry, and each
//! `backward()` ends by sweeping *all* registered graphs for steps it believes unused. A graph
//! another thread is building at that moment can lose a step it is registering (the input's
//! reference count is briefly 1 inside ops such as `cat`), and that thread's next backward then
//! silently misses a gradient: burn issue #5573, unfixed in the pinned 0.21.0. Here it showed
//! as the exact-resume tests failing now and then when tests trained concurrently (6 of 60 runs
//! of the worker's tests with 8 test threads).
//!
//! Every stretch of anygan code that builds a graph, runs `backward()` or steps an optimizer on
//! autodiff parameters holds [`section`] for its duration. A worker trains on one thread, so
//! the lock costs it nothing; a process training several models at once (tests, an evaluation
//! beside a generation) runs their autodiff stretches one after another. Never hold it across
//! an all-reduce: the peers of an in-process ring would wait on each other forever.

use std::sync::{Mutex, MutexGuard};

static AUTODIFF: Mutex<()> = Mutex::new(());

/// Holds the process's autodiff lock until dropped.
pub fn section() -> MutexGuard<'static, ()> {
    // A panic inside a section leaves no graph half-registered that the next holder relies on.
    AUTODIFF
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
