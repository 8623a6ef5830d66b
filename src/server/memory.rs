//! Handing memory back to the system between calls.
//!
//! glibc's allocator keeps what a call freed: a 10,000-guest listing decoded, answered and
//! dropped leaves its pages on the allocator's free lists. The server is idle almost all the
//! time between a conversation's calls, so a second after the last call in flight ends
//! ([`CallGuard`]) it returns every arena's free pages (`malloc_trim(0)`), unless another call
//! started meanwhile.
//!
//! Half a minute idle, the call's release action runs too: the server closes its idle PVE
//! connections ([`crate::pve::Client::release_idle_connections`]), each of which holds a read
//! buffer as large as its largest answer made it (up to 400 KiB, some 6 MiB for the 16 a
//! 10,000-guest pass leaves open), and a second later trims again. A conversation's calls
//! come seconds apart and keep their connections; the next turn after a pause connects afresh.
//!
//! At start-up ([`tune`]) the allocator's thresholds are fixed instead of adapting: blocks under
//! 32 MiB come from the heap (the largest answers, a few MB, are reused from it rather than
//! mapped and faulted in afresh, which made reads at 10,000 guests 10–15 % slower), and the
//! heap's top is returned above 128 KiB free. A glibc setting in the environment
//! (`MALLOC_*_` or `GLIBC_TUNABLES`) wins.
//!
//! Other C libraries keep no such pages: there both are no-ops. The figures are in the README
//! (Benchmark, memory after a pass of reads at 10,000 guests).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

/// How long the server is idle before it trims.
pub const IDLE_BEFORE_TRIM: Duration = Duration::from_secs(1);

/// How long the server is idle before it runs the last call's release action and trims again.
pub const IDLE_BEFORE_RELEASE: Duration = Duration::from_secs(30);

/// Blocks from this size up are mapped on their own ([`tune`]).
const MMAP_THRESHOLD: i32 = 32 * 1024 * 1024;
/// Free space at the heap's top above this is returned at once ([`tune`]).
const TRIM_THRESHOLD: i32 = 128 * 1024;

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Counts calls started: a trim scheduled at the end of one call is dropped when another
/// started since.
static STARTED: AtomicU64 = AtomicU64::new(0);
/// Trims done (tests read it).
static TRIMS: AtomicU64 = AtomicU64::new(0);
/// Release actions run (tests read it).
static RELEASES: AtomicU64 = AtomicU64::new(0);

/// What a call leaves to run once the server has been idle [`IDLE_BEFORE_RELEASE`].
pub type Release = Box<dyn FnOnce() + Send>;

/// Fixes the allocator's thresholds unless the environment sets any of glibc's own.
pub fn tune() {
    let set_by_user = std::env::vars_os().any(|(k, v)| {
        let k = k.to_string_lossy();
        (k.starts_with("MALLOC_") && k.ends_with('_'))
            || (k == "GLIBC_TUNABLES" && v.to_string_lossy().contains("glibc.malloc."))
    });
    if !set_by_user {
        sys::set_thresholds(MMAP_THRESHOLD, TRIM_THRESHOLD);
    }
}

/// Held while a call runs; dropping the last one schedules a trim after [`IDLE_BEFORE_TRIM`]
/// and its release action after [`IDLE_BEFORE_RELEASE`].
#[must_use]
pub struct CallGuard {
    release: Option<Release>,
}

impl CallGuard {
    /// A call starts; `release` runs if the server is still idle [`IDLE_BEFORE_RELEASE`]
    /// after it (and every call since) ended. Outside a Tokio runtime the guard still counts,
    /// and schedules nothing.
    pub fn start(release: Option<Release>) -> CallGuard {
        STARTED.fetch_add(1, Ordering::SeqCst);
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        CallGuard { release }
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if IN_FLIGHT.fetch_sub(1, Ordering::SeqCst) != 1 {
            return;
        }
        let started = STARTED.load(Ordering::SeqCst);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let release = self.release.take();
        // No call in flight and none started since this one ended.
        let idle = move || {
            IN_FLIGHT.load(Ordering::SeqCst) == 0 && STARTED.load(Ordering::SeqCst) == started
        };
        runtime.spawn(async move {
            tokio::time::sleep(IDLE_BEFORE_TRIM).await;
            if !idle() {
                return;
            }
            // A trim walks every arena under its lock: off the runtime's workers.
            let _ = tokio::task::spawn_blocking(trim).await;
            let Some(release) = release else { return };
            tokio::time::sleep(IDLE_BEFORE_RELEASE.saturating_sub(IDLE_BEFORE_TRIM)).await;
            if !idle() {
                return;
            }
            let _ = tokio::task::spawn_blocking(move || {
                release();
                RELEASES.fetch_add(1, Ordering::SeqCst);
            })
            .await;
            // What the release frees is freed as the runtime winds the connections' tasks
            // down, after it returns.
            tokio::time::sleep(IDLE_BEFORE_TRIM).await;
            if idle() {
                let _ = tokio::task::spawn_blocking(trim).await;
            }
        });
    }
}

fn trim() {
    sys::trim();
    TRIMS.fetch_add(1, Ordering::SeqCst);
}

/// Returns the allocator's free pages to the system now, uncounted: after the simulator has
/// built its state, whose seeded backup runs leave their logs' lines freed all over the heap
/// (tens of MiB at 10,000 guests).
pub fn trim_after_start() {
    sys::trim();
}

/// Trims done since the process started.
pub fn trims() -> u64 {
    TRIMS.load(Ordering::SeqCst)
}

/// Release actions run since the process started.
pub fn releases() -> u64 {
    RELEASES.load(Ordering::SeqCst)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
mod sys {
    /// `mallopt` of the mmap and trim thresholds; glibc then stops adapting either.
    pub fn set_thresholds(mmap: i32, trim: i32) {
        // SAFETY: mallopt takes two integers and changes only the allocator's parameters; it
        // is called once, at start-up, before the runtime's threads exist.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, mmap);
            libc::mallopt(libc::M_TRIM_THRESHOLD, trim);
        }
    }

    /// `malloc_trim(0)`: every arena's free pages go back to the system.
    pub fn trim() {
        // SAFETY: malloc_trim takes an integer and only releases memory the allocator holds
        // free; it locks each arena itself.
        unsafe {
            libc::malloc_trim(0);
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod sys {
    pub fn set_thresholds(_: i32, _: i32) {}
    pub fn trim() {}
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;

    use super::*;

    /// A release action that records it ran.
    fn flag() -> (Arc<AtomicBool>, Option<Release>) {
        let ran = Arc::new(AtomicBool::new(false));
        let r = Arc::clone(&ran);
        (ran, Some(Box::new(move || r.store(true, Ordering::SeqCst))))
    }

    /// Waits (in paused time) until `count` exceeds `before`, at most `limit`.
    async fn until_above(count: fn() -> u64, before: u64, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while count() == before && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(IDLE_BEFORE_TRIM / 10).await;
        }
    }

    /// One test drives the process-wide counters (tests run in parallel threads).
    #[tokio::test(start_paused = true)]
    async fn the_allocator_is_trimmed_a_second_and_connections_released_later_after_the_last_call()
    {
        let (trimmed, released) = (trims(), releases());
        let (first_ran, first_release) = flag();
        let first = CallGuard::start(first_release);
        let second = CallGuard::start(None);
        drop(first);
        // A call is still running: nothing is scheduled, and the first call's release is
        // dropped with it.
        tokio::time::sleep(IDLE_BEFORE_RELEASE * 2).await;
        assert_eq!((trims(), releases()), (trimmed, released));

        // Another call runs within the second after the last one ended: the trim the first
        // end scheduled is dropped, the one after the later call stays.
        drop(second);
        tokio::time::sleep(IDLE_BEFORE_TRIM / 2).await;
        let (last_ran, last_release) = flag();
        drop(CallGuard::start(last_release));
        tokio::time::sleep(IDLE_BEFORE_TRIM * 3 / 4).await;
        assert_eq!(trims(), trimmed);
        until_above(trims, trimmed, IDLE_BEFORE_TRIM * 10).await;
        assert_eq!(trims(), trimmed + 1);
        assert!(!last_ran.load(Ordering::SeqCst), "not yet released");

        // Idle on: the last call's release runs, a second later a trim; the first call's
        // release never does.
        until_above(releases, released, IDLE_BEFORE_RELEASE * 2).await;
        assert_eq!(releases(), released + 1);
        assert!(last_ran.load(Ordering::SeqCst));
        assert!(!first_ran.load(Ordering::SeqCst));
        until_above(trims, trimmed + 1, IDLE_BEFORE_TRIM * 10).await;
        assert_eq!(trims(), trimmed + 2);

        // A call within the half minute cancels the release its predecessor left.
        let (cancelled_ran, cancelled) = flag();
        drop(CallGuard::start(cancelled));
        tokio::time::sleep(IDLE_BEFORE_RELEASE / 2).await;
        drop(CallGuard::start(None));
        tokio::time::sleep(IDLE_BEFORE_RELEASE * 2).await;
        assert!(!cancelled_ran.load(Ordering::SeqCst));
        assert_eq!(releases(), released + 1);
    }
}
