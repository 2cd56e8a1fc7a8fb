//! Retry, timeout and error-handling options of a step.
//!
//! Dependency-free like the graph model: `workflow!` checks option values at build time with
//! the same [`RetryPolicy::validate`] the engine trusts at run time.

use std::time::Duration;

/// How a failed attempt is retried. The vocabulary is Temporal's, because that is what people
/// who have run workflows before expect: an initial interval, a backoff coefficient, a maximum
/// interval and a maximum number of attempts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the second attempt.
    pub initial_interval: Duration,
    /// Each further delay is the previous one times this (at least 1.0).
    pub backoff_coefficient: f64,
    /// Cap on a single delay; `None` means 100 × `initial_interval`, as in Temporal.
    pub maximum_interval: Option<Duration>,
    /// Total attempts including the first; 0 means unlimited (bound it with a deadline).
    pub maximum_attempts: u32,
    /// Random spread of each delay, as a fraction between 0.0 and 1.0: with 0.2, each delay is
    /// drawn uniformly from `[0.8 × d, 1.2 × d]`, where `d` is the backoff delay (see
    /// [`base_delay`](Self::base_delay)), and the part of that range above the maximum
    /// interval is cut off: no delay is ever longer than the maximum interval. See
    /// [`retry_delay`](Self::retry_delay) for where the draws come from.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Temporal's defaults: 1 s, ×2, capped at 100 s, unlimited attempts; no jitter.
    fn default() -> Self {
        Self {
            initial_interval: Duration::from_secs(1),
            backoff_coefficient: 2.0,
            maximum_interval: None,
            maximum_attempts: 0,
            jitter: 0.0,
        }
    }
}

/// A retry policy value that cannot work, found by [`RetryPolicy::validate`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PolicyError {
    /// The backoff coefficient is below 1.0 or not a number.
    #[error("the backoff coefficient must be a number of at least 1.0, not {0}")]
    Coefficient(f64),
    /// The jitter is outside `0.0..=1.0`.
    #[error("the jitter must be between 0.0 and 1.0, not {0}")]
    Jitter(f64),
    /// The maximum interval is shorter than the initial one.
    #[error("the maximum interval ({max:?}) is shorter than the initial interval ({initial:?})")]
    MaxBelowInitial {
        /// The initial interval.
        initial: Duration,
        /// The maximum interval.
        max: Duration,
    },
}

impl RetryPolicy {
    /// A policy that never retries: one attempt.
    pub fn never() -> Self {
        Self {
            maximum_attempts: 1,
            ..Self::default()
        }
    }

    /// Checks that the values can work together.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if self.backoff_coefficient.is_nan() || self.backoff_coefficient < 1.0 {
            return Err(PolicyError::Coefficient(self.backoff_coefficient));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(PolicyError::Jitter(self.jitter));
        }
        if let Some(max) = self.maximum_interval
            && max < self.initial_interval
        {
            return Err(PolicyError::MaxBelowInitial {
                initial: self.initial_interval,
                max,
            });
        }
        Ok(())
    }

    /// Whether another attempt may follow attempt number `attempt` (1-based).
    pub fn allows_attempt_after(&self, attempt: u32) -> bool {
        self.maximum_attempts == 0 || attempt < self.maximum_attempts
    }

    /// The longest a single delay can be: the maximum interval, or 100 × the initial interval
    /// when it is unset (as in Temporal).
    pub fn maximum_delay(&self) -> Duration {
        self.maximum_interval
            .unwrap_or_else(|| self.initial_interval.saturating_mul(100))
    }

    /// The delay before attempt `attempt + 1`, before jitter: `initial × coefficient^(attempt-1)`,
    /// capped by the [maximum delay](Self::maximum_delay).
    pub fn base_delay(&self, attempt: u32) -> Duration {
        let cap = self.maximum_delay();
        let exponent = attempt.saturating_sub(1).min(1_000) as i32;
        let secs = self.initial_interval.as_secs_f64() * self.backoff_coefficient.powi(exponent);
        if !secs.is_finite() || secs >= cap.as_secs_f64() {
            cap
        } else {
            Duration::from_secs_f64(secs.max(0.0))
        }
    }

    /// [`base_delay`](Self::base_delay) spread by the jitter; `unit` is a uniform draw in
    /// `[0, 1)` so the caller decides where randomness comes from (the engine's is
    /// [`jitter_unit`]; see [`retry_delay`](Self::retry_delay)).
    ///
    /// With `d` the base delay and `j` the jitter, the delay is `unit`'s point of the range
    /// `[d × (1 - j), min(d × (1 + j), max)]`, where `max` is the
    /// [maximum delay](Self::maximum_delay): the band around `d`, cut at the cap. It never
    /// exceeds the cap, and once the backoff has reached it the delays still spread (over
    /// `[max × (1 - j), max]`) rather than pile up on it, as they would if a delay drawn over
    /// the cap were brought back to it.
    pub fn delay_with_jitter(&self, attempt: u32, unit: f64) -> Duration {
        let base = self.base_delay(attempt);
        // Clamped for a policy that was never validated; a NaN spreads nothing.
        let jitter = if self.jitter.is_nan() {
            0.0
        } else {
            self.jitter.clamp(0.0, 1.0)
        };
        if jitter == 0.0 {
            return base;
        }
        let unit = if unit.is_nan() {
            0.5
        } else {
            unit.clamp(0.0, 1.0)
        };
        let cap = self.maximum_delay();
        let d = base.as_secs_f64();
        let low = d * (1.0 - jitter);
        let high = (d * (1.0 + jitter)).min(cap.as_secs_f64());
        let secs = low + (high - low) * unit;
        // `try_`: a huge interval would overflow `Duration` and panic. The `min` makes the cap
        // exact whatever the floating point rounded.
        Duration::try_from_secs_f64(secs.max(0.0))
            .unwrap_or(cap)
            .min(cap)
    }

    /// The delay the engine waits after attempt `attempt` (1-based) of step `step` failed in
    /// run `run_id`, on an engine whose jitter seed is `seed` (`Engine::builder().jitter_seed`,
    /// or a random one per engine when unset): the [`delay_with_jitter`](Self::delay_with_jitter)
    /// of the draw [`jitter_unit`]`(seed, run_id, step, attempt)`. It depends on those four
    /// and nothing else (not on how tasks were scheduled, nor on the process), so with a fixed
    /// seed a run's delays repeat, and two runs, two steps or two attempts draw apart. Without
    /// jitter it is the [`base_delay`](Self::base_delay), whatever the seed.
    pub fn retry_delay(&self, seed: u64, run_id: &str, step: &str, attempt: u32) -> Duration {
        if self.jitter == 0.0 {
            return self.base_delay(attempt);
        }
        self.delay_with_jitter(attempt, jitter_unit(seed, run_id, step, attempt))
    }
}

/// The engine's jitter draw: uniform in `[0, 1)`, a function of the engine's seed, the run id,
/// the step's name and the attempt number only. The four are hashed (FNV-1a) into the seed of
/// one step of wyrand, the generator of the `fastrand` crate: the draw is, to the bit, what
/// `fastrand::Rng::with_seed(hash).f64()` gives, as the engine drew before this function was
/// public.
pub fn jitter_unit(seed: u64, run_id: &str, step: &str, attempt: u32) -> f64 {
    let mut hash = crate::fnv::Fnv1a::with_seed(seed);
    hash.write(run_id.as_bytes());
    hash.write(&[0xff]);
    hash.write(step.as_bytes());
    hash.write(&[0xff]);
    hash.write(&attempt.to_le_bytes());
    unit_from_seed(hash.finish())
}

/// `fastrand::Rng::with_seed(seed).f64()`, written out so that this module keeps no
/// dependency (the proc-macro compiles it) and the draws do not move with `fastrand`'s version.
fn unit_from_seed(mut state: u64) -> f64 {
    loop {
        state = state.wrapping_add(0x2d35_8dcc_aa6c_78a5);
        let t = u128::from(state) * u128::from(state ^ 0x8bb8_4b93_962e_acc9);
        let x = (t as u64) ^ ((t >> 64) as u64);
        let unit = (x >> 1) as f64 * (1.0 / (1_u64 << 63) as f64);
        // Rounding can reach 1.0; fastrand draws again then, and so does this.
        if unit < 1.0 {
            return unit;
        }
    }
}

/// What a failure of this step, after its retries, does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// The run fails (the default).
    #[default]
    Fail,
    /// The run goes on; the steps downstream receive `None` for this step's output.
    Continue,
}

/// Why a step's output may be missing, so that the steps that take it receive an `Option`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The step continues on error (`on_error = continue`): when it fails, it has no output.
    ContinuesOnError,
    /// The step has a `when` guard: when the guard says no, it does not run.
    Guarded,
}

/// Whether the output of a step may be missing, and why: the one rule the macros check at
/// build time and the engine's `Builder` at run time. `on_error` is the step's setting in
/// force (its own, else the workflow's default).
pub fn may_be_missing(guarded: bool, on_error: Option<OnError>) -> Option<Missing> {
    if on_error == Some(OnError::Continue) {
        Some(Missing::ContinuesOnError)
    } else if guarded {
        Some(Missing::Guarded)
    } else {
        None
    }
}

/// The options of one step. Unset fields fall back to the workflow's defaults, then to the
/// engine's: one attempt, no timeout, no deadline, `on_error = fail`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StepOptions {
    /// How failed attempts are retried.
    pub retry: Option<RetryPolicy>,
    /// Time allowed for one attempt (Temporal's start-to-close).
    pub timeout: Option<Duration>,
    /// Time allowed for all attempts together, delays included (schedule-to-close).
    pub deadline: Option<Duration>,
    /// What a final failure does to the run.
    pub on_error: Option<OnError>,
    /// A step whose attempt was interrupted by a crash is not run again on resume (its effect
    /// may have happened); it comes back as interrupted instead. For effects that must not
    /// happen twice and have no idempotency key to lean on.
    pub at_most_once: Option<bool>,
}

impl StepOptions {
    /// No option set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the retry policy.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Sets the per-attempt timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the deadline over all attempts. It counts from the first attempt's start, across
    /// a crash too: a step taken up by a new process has only what was left of it (by the
    /// wall clock, from the start the store recorded).
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// Sets what a final failure does.
    pub fn on_error(mut self, on_error: OnError) -> Self {
        self.on_error = Some(on_error);
        self
    }

    /// Marks the step at-most-once: an attempt interrupted by a crash is not repeated.
    pub fn at_most_once(mut self) -> Self {
        self.at_most_once = Some(true);
        self
    }

    /// These options with every unset field taken from `defaults`.
    pub fn or(&self, defaults: &StepOptions) -> StepOptions {
        StepOptions {
            retry: self.retry.or(defaults.retry),
            timeout: self.timeout.or(defaults.timeout),
            deadline: self.deadline.or(defaults.deadline),
            on_error: self.on_error.or(defaults.on_error),
            at_most_once: self.at_most_once.or(defaults.at_most_once),
        }
    }

    /// The retry policy in force: the one set, or a single attempt.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry.unwrap_or_else(RetryPolicy::never)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(initial_ms: u64, coefficient: f64, max_ms: Option<u64>) -> RetryPolicy {
        RetryPolicy {
            initial_interval: Duration::from_millis(initial_ms),
            backoff_coefficient: coefficient,
            maximum_interval: max_ms.map(Duration::from_millis),
            maximum_attempts: 0,
            jitter: 0.0,
        }
    }

    #[test]
    fn delays_grow_by_the_coefficient_up_to_the_cap() {
        let p = policy(100, 2.0, Some(1_000));
        let delays: Vec<u128> = (1..=6).map(|a| p.base_delay(a).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
    }

    #[test]
    fn the_default_cap_is_a_hundred_times_the_initial_interval() {
        let p = policy(10, 10.0, None);
        assert_eq!(p.base_delay(50), Duration::from_millis(1_000));
    }

    #[test]
    fn jitter_stays_inside_its_band() {
        let p = RetryPolicy {
            jitter: 0.5,
            ..policy(1_000, 1.0, None)
        };
        assert_eq!(p.delay_with_jitter(1, 0.0), Duration::from_millis(500));
        assert_eq!(p.delay_with_jitter(1, 0.5), Duration::from_millis(1_000));
        assert!(p.delay_with_jitter(1, 0.999_999) < Duration::from_millis(1_500));
    }

    #[test]
    fn jitter_never_takes_a_delay_over_the_maximum_interval() {
        // The policy of issue 11: 100 ms, 200 ms, then 250 ms (400 ms capped).
        let p = RetryPolicy {
            jitter: 0.2,
            maximum_attempts: 4,
            ..policy(100, 2.0, Some(250))
        };
        let max = Duration::from_millis(250);
        // Below the cap the band is whole: 200 ms ± 20 %.
        assert_eq!(p.delay_with_jitter(2, 0.0), Duration::from_millis(160));
        assert_eq!(p.delay_with_jitter(2, 0.5), Duration::from_millis(200));
        // At the cap the band is cut there, and spread over what is left of it.
        assert_eq!(p.delay_with_jitter(3, 0.0), Duration::from_millis(200));
        assert_eq!(p.delay_with_jitter(3, 0.5), Duration::from_millis(225));
        assert!(p.delay_with_jitter(3, 0.999_999) <= max);
        assert_eq!(p.delay_with_jitter(3, 1.0), max);
        // A band that straddles the cap: 225 ms ± 20 % is cut at 250 ms.
        let straddling = RetryPolicy {
            jitter: 0.2,
            ..policy(225, 1.0, Some(250))
        };
        assert_eq!(
            straddling.delay_with_jitter(1, 0.0),
            Duration::from_millis(180)
        );
        assert_eq!(straddling.delay_with_jitter(1, 1.0), max);
        for seed in 0..1_000 {
            for attempt in 1..=3 {
                let d = p.retry_delay(seed, "order-17", "charge", attempt);
                assert!(d <= max, "seed {seed}, attempt {attempt}: {d:?}");
            }
        }
        // Without a maximum interval, the cap is 100 × the initial one.
        let uncapped = RetryPolicy {
            jitter: 1.0,
            ..policy(10, 10.0, None)
        };
        assert_eq!(uncapped.delay_with_jitter(5, 1.0), Duration::from_secs(1));
    }

    #[test]
    fn a_huge_jittered_delay_saturates_instead_of_panicking() {
        let p = RetryPolicy {
            initial_interval: Duration::MAX,
            jitter: 1.0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay_with_jitter(3, 1.0), Duration::MAX);
        assert!(p.delay_with_jitter(3, 0.999) <= Duration::MAX);
        let unchecked = RetryPolicy {
            backoff_coefficient: f64::NAN,
            jitter: f64::INFINITY,
            ..policy(100, 1.0, Some(1_000))
        };
        assert!(unchecked.delay_with_jitter(2, f64::NAN) <= Duration::from_secs(1));
    }

    #[test]
    fn jitter_draws_depend_on_every_part_of_the_key() {
        let a = jitter_unit(1, "r", "s", 1);
        assert_eq!(a, jitter_unit(1, "r", "s", 1));
        assert!((0.0..1.0).contains(&a));
        assert_ne!(a, jitter_unit(2, "r", "s", 1));
        assert_ne!(a, jitter_unit(1, "q", "s", 1));
        assert_ne!(a, jitter_unit(1, "r", "t", 1));
        assert_ne!(a, jitter_unit(1, "r", "s", 2));
        // The separators keep the run id and the step apart.
        assert_ne!(jitter_unit(1, "ab", "c", 1), jitter_unit(1, "a", "bc", 1));
    }

    /// The draw is fastrand's, so an engine seeded before this module drew for itself waits
    /// the same delays as it did then.
    #[test]
    fn the_draw_is_fastrands() {
        for seed in [0, 1, 7, 0xdead_beef, u64::MAX, 0x8000_0000_0000_0000] {
            assert_eq!(
                unit_from_seed(seed),
                fastrand::Rng::with_seed(seed).f64(),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_engines_delay_is_the_jittered_delay_of_its_draw() {
        let p = RetryPolicy {
            jitter: 0.3,
            ..policy(100, 2.0, Some(1_000))
        };
        let unit = jitter_unit(9, "run", "step", 2);
        assert_eq!(
            p.retry_delay(9, "run", "step", 2),
            p.delay_with_jitter(2, unit)
        );
        let steady = policy(100, 2.0, Some(1_000));
        assert_eq!(
            steady.retry_delay(9, "run", "step", 2),
            steady.base_delay(2)
        );
    }

    #[test]
    fn bad_values_are_refused_with_the_reason() {
        assert_eq!(
            policy(1, 0.5, None).validate(),
            Err(PolicyError::Coefficient(0.5))
        );
        assert!(matches!(
            policy(1_000, 2.0, Some(10)).validate(),
            Err(PolicyError::MaxBelowInitial { .. })
        ));
        let jittery = RetryPolicy {
            jitter: 1.5,
            ..RetryPolicy::default()
        };
        assert_eq!(jittery.validate(), Err(PolicyError::Jitter(1.5)));
        assert_eq!(RetryPolicy::default().validate(), Ok(()));
    }

    #[test]
    fn attempts_are_bounded_unless_zero() {
        let three = RetryPolicy {
            maximum_attempts: 3,
            ..RetryPolicy::default()
        };
        assert!(three.allows_attempt_after(2));
        assert!(!three.allows_attempt_after(3));
        assert!(RetryPolicy::default().allows_attempt_after(1_000_000));
        assert!(!RetryPolicy::never().allows_attempt_after(1));
    }

    #[test]
    fn step_options_fall_back_to_defaults_field_by_field() {
        let defaults = StepOptions::new()
            .timeout(Duration::from_secs(5))
            .on_error(OnError::Continue);
        let own = StepOptions::new().timeout(Duration::from_secs(1));
        let merged = own.or(&defaults);
        assert_eq!(merged.timeout, Some(Duration::from_secs(1)));
        assert_eq!(merged.on_error, Some(OnError::Continue));
        assert_eq!(merged.retry_policy(), RetryPolicy::never());
    }

    #[test]
    fn an_output_may_be_missing_when_guarded_or_continuing_on_error() {
        use super::{Missing, OnError, may_be_missing};
        assert_eq!(may_be_missing(false, None), None);
        assert_eq!(may_be_missing(false, Some(OnError::Fail)), None);
        assert_eq!(may_be_missing(true, None), Some(Missing::Guarded));
        let continues = Some(Missing::ContinuesOnError);
        assert_eq!(may_be_missing(false, Some(OnError::Continue)), continues);
        assert_eq!(may_be_missing(true, Some(OnError::Continue)), continues);
    }
}
