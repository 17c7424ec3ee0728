//! CPU-time deadlines on top of epoch interruption.
//!
//! Epoch ticks are wall-clock, so a deadline counted in ticks alone runs down while the
//! calling thread is descheduled: on a loaded machine a cost component that needs a
//! millisecond missed its 20 ms deadline and failed calls whose replies were fine. Here the
//! epoch deadline is only a wake-up: when it fires, the callback reads the CPU time the
//! thread has spent since the call was armed and extends the deadline by what is left.
//!
//! Invariant: a call is interrupted only once its thread has spent its whole deadline of CPU
//! time since [`arm`] (to within about two ticks); waiting to be scheduled never counts. A
//! guest has no imports, so it cannot block: while it is not running it is waiting for a core.

use std::time::Duration;

use wasmtime::{Store, UpdateDeadline};

use super::limits::StoreState;

/// CPU time the calling thread has spent so far; `None` if the clock cannot be read (the
/// deadline then fails closed: the call is interrupted at its first check).
#[cfg(unix)]
pub fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant POSIX defines.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

/// Without a per-thread CPU clock, wall-clock time (the plain epoch behaviour).
#[cfg(not(unix))]
pub fn thread_cpu_time() -> Option<Duration> {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    Some(START.get_or_init(std::time::Instant::now).elapsed())
}

/// Whole ticks covering `d` (at least one).
pub(crate) fn ticks(d: Duration, tick: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(tick.as_nanos().max(1))).unwrap_or(u64::MAX).max(1)
}

/// What to do when the epoch deadline fires after `used` CPU time of `deadline`.
pub(crate) fn on_epoch_deadline(used: Duration, deadline: Duration, tick: Duration) -> UpdateDeadline {
    match deadline.checked_sub(used) {
        Some(left) if !left.is_zero() => UpdateDeadline::Continue(ticks(left, tick)),
        _ => UpdateDeadline::Interrupt,
    }
}

/// Install the check on a new store: when the epoch deadline fires, extend it by the CPU
/// time left of `deadline`, or interrupt. Once per store; [`arm`] starts each call's clock.
pub(crate) fn install(store: &mut Store<StoreState>, deadline: Duration, tick: Duration) {
    store.epoch_deadline_callback(move |ctx| {
        let used = match (thread_cpu_time(), ctx.data().armed_at) {
            (Some(now), Some(armed)) => now.saturating_sub(armed),
            _ => return Ok(UpdateDeadline::Interrupt),
        };
        Ok(on_epoch_deadline(used, deadline, tick))
    });
}

/// Start the CPU clock of a call on `store` (set up by [`install`]).
pub(crate) fn arm(store: &mut Store<StoreState>, deadline: Duration, tick: Duration) {
    store.data_mut().armed_at = thread_cpu_time();
    store.set_epoch_deadline(ticks(deadline, tick));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeping_does_not_run_the_clock_and_spinning_does() {
        let cpu = || thread_cpu_time().expect("a thread CPU clock");
        let before = cpu();
        std::thread::sleep(Duration::from_millis(60));
        let slept = cpu() - before;
        assert!(slept < Duration::from_millis(20), "sleeping used {slept:?} of CPU");
        let (before, wall) = (cpu(), std::time::Instant::now());
        let mut x = 0u64;
        while cpu() - before < Duration::from_millis(30) && wall.elapsed() < Duration::from_secs(10) {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(
            cpu() - before >= Duration::from_millis(30),
            "spinning for {:?} used {:?}",
            wall.elapsed(),
            cpu() - before
        );
        assert!(x > 0);
    }

    #[test]
    fn the_deadline_extends_by_what_is_left_and_interrupts_when_spent() {
        let (deadline, tick) = (Duration::from_millis(20), Duration::from_millis(2));
        assert!(matches!(on_epoch_deadline(Duration::ZERO, deadline, tick), UpdateDeadline::Continue(10)));
        assert!(matches!(on_epoch_deadline(Duration::from_millis(15), deadline, tick), UpdateDeadline::Continue(3)));
        assert!(matches!(
            on_epoch_deadline(Duration::from_micros(19_999), deadline, tick),
            UpdateDeadline::Continue(1)
        ));
        assert!(matches!(on_epoch_deadline(deadline, deadline, tick), UpdateDeadline::Interrupt));
        assert!(matches!(on_epoch_deadline(Duration::from_secs(1), deadline, tick), UpdateDeadline::Interrupt));
    }
}
