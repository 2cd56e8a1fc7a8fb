//! Properties of retry delays, drawn the way the engine draws them
//! ([`RetryPolicy::retry_delay`]: seed, run id, step, attempt → delay): no delay is longer than
//! the maximum interval, jitter included; each stays inside its band; and a delay depends on
//! its key only.

use std::time::Duration;

use proptest::prelude::*;
use sagaflow_graph::RetryPolicy;
use sagaflow_graph::policy::jitter_unit;

/// A duration from nothing to about a year, in nanoseconds, with small ones as likely as
/// large ones.
fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0_u64..=1_000_000_000).prop_map(Duration::from_nanos),
        (0_u64..=31_536_000_000_000_000).prop_map(Duration::from_nanos),
    ]
}

/// A policy `validate` accepts: any interval, coefficient and jitter in range, the maximum
/// interval unset or at least the initial one.
fn valid_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        duration(),
        prop_oneof![Just(1.0), 1.0_f64..4.0, 1.0_f64..1e6],
        prop::option::of(duration()),
        0_u32..10,
        prop_oneof![Just(0.0), Just(1.0), 0.0_f64..=1.0],
    )
        .prop_map(
            |(initial, coefficient, extra, attempts, jitter)| RetryPolicy {
                initial_interval: initial,
                backoff_coefficient: coefficient,
                maximum_interval: extra.map(|e| initial.saturating_add(e)),
                maximum_attempts: attempts,
                jitter,
            },
        )
        .prop_filter("valid", |p| p.validate().is_ok())
}

/// Any policy at all, as code may build one without validating it.
fn any_policy() -> impl Strategy<Value = RetryPolicy> {
    (
        any::<u64>().prop_map(Duration::from_nanos),
        any::<f64>(),
        prop::option::of(any::<u64>().prop_map(Duration::from_nanos)),
        any::<u32>(),
        any::<f64>(),
    )
        .prop_map(
            |(initial, coefficient, max, attempts, jitter)| RetryPolicy {
                initial_interval: initial,
                backoff_coefficient: coefficient,
                maximum_interval: max,
                maximum_attempts: attempts,
                jitter,
            },
        )
}

/// Attempts from the first few to the very last.
fn attempt() -> impl Strategy<Value = u32> {
    prop_oneof![1_u32..20, any::<u32>()]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn no_delay_is_longer_than_the_maximum_interval(
        policy in valid_policy(),
        seed in any::<u64>(),
        run_id in "[a-z0-9-]{0,24}",
        step in "[a-z_]{1,12}",
        attempt in attempt(),
    ) {
        let delay = policy.retry_delay(seed, &run_id, &step, attempt);
        prop_assert!(delay <= policy.maximum_delay(), "{delay:?} > {:?}", policy.maximum_delay());
        if let Some(max) = policy.maximum_interval {
            prop_assert!(delay <= max, "{delay:?} > {max:?}");
        }
    }

    #[test]
    fn each_delay_stays_inside_its_band(
        policy in valid_policy(),
        seed in any::<u64>(),
        run_id in "[a-z0-9-]{0,24}",
        attempt in attempt(),
    ) {
        let delay = policy.retry_delay(seed, &run_id, "step", attempt).as_secs_f64();
        let base = policy.base_delay(attempt).as_secs_f64();
        let cap = policy.maximum_delay().as_secs_f64();
        // A nanosecond of slack each way, plus the floating point's own on long delays.
        let slack = 1e-9 + base * 1e-12;
        prop_assert!(delay >= base * (1.0 - policy.jitter) - slack, "{delay} below the band of {base}");
        prop_assert!(delay <= (base * (1.0 + policy.jitter)).min(cap) + slack, "{delay} above the band of {base}");
    }

    #[test]
    fn a_delay_depends_on_its_key_only(
        policy in valid_policy(),
        seed in any::<u64>(),
        run_id in "[a-z0-9-]{0,24}",
        attempt in attempt(),
    ) {
        prop_assert_eq!(
            policy.retry_delay(seed, &run_id, "step", attempt),
            policy.retry_delay(seed, &run_id.clone(), "step", attempt)
        );
        let unit = jitter_unit(seed, &run_id, "step", attempt);
        prop_assert!((0.0..1.0).contains(&unit));
        prop_assert_eq!(
            policy.retry_delay(seed, &run_id, "step", attempt),
            policy.delay_with_jitter(attempt, unit)
        );
    }

    #[test]
    fn even_an_unchecked_policy_stays_under_its_cap_and_does_not_panic(
        policy in any_policy(),
        seed in any::<u64>(),
        attempt in attempt(),
        unit in any::<f64>(),
    ) {
        let cap = policy.maximum_delay();
        prop_assert!(policy.retry_delay(seed, "run", "step", attempt) <= cap);
        prop_assert!(policy.delay_with_jitter(attempt, unit) <= cap);
    }
}

/// Issue 11's policy, over many seeds and run ids: never more than 250 ms, and the delays
/// at the cap spread below it.
#[test]
fn the_policy_of_issue_11_waits_at_most_its_maximum() {
    let policy = RetryPolicy {
        initial_interval: Duration::from_millis(100),
        backoff_coefficient: 2.0,
        maximum_interval: Some(Duration::from_millis(250)),
        maximum_attempts: 4,
        jitter: 0.2,
    };
    let max = Duration::from_millis(250);
    let mut at_cap = Vec::new();
    for seed in 0..200 {
        for run in 0..20 {
            let run_id = format!("run-{run}");
            for attempt in 1..4 {
                let delay = policy.retry_delay(seed, &run_id, "charge", attempt);
                assert!(
                    delay <= max,
                    "seed {seed}, {run_id}, attempt {attempt}: {delay:?}"
                );
                if attempt == 3 {
                    at_cap.push(delay);
                }
            }
        }
    }
    assert!(at_cap.iter().all(|d| *d >= Duration::from_millis(200)));
    let on_the_cap = at_cap.iter().filter(|d| **d == max).count();
    assert!(
        on_the_cap < at_cap.len() / 100,
        "{on_the_cap} of {} delays sit on the cap",
        at_cap.len()
    );
}

/// With one seed, the same run id draws the same delays, and another run id others.
#[test]
fn a_seed_repeats_the_delays_of_a_run_id_and_not_of_another() {
    let policy = RetryPolicy {
        jitter: 0.5,
        maximum_attempts: 6,
        ..RetryPolicy::default()
    };
    let delays = |seed: u64, run_id: &str| -> Vec<Duration> {
        (1..6)
            .map(|attempt| policy.retry_delay(seed, run_id, "fetch", attempt))
            .collect()
    };
    assert_eq!(delays(7, "order-17"), delays(7, "order-17"));
    assert_ne!(delays(7, "order-17"), delays(7, "order-18"));
    assert_ne!(delays(7, "order-17"), delays(8, "order-17"));
}
