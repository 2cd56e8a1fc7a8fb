//! The values of options: durations as the macros write them (`100ms`, `30s`, `1.5m`, `2h`,
//! `1e3ms`), read exactly, and numbers; and the value of a `name = value` option.

use std::time::Duration;

use syn::{Expr, ExprLit, Lit};

use super::ctxt::Errors;
use super::raw::{RawOption, RawValue};

/// The units of a duration, as the messages name them.
pub(crate) const UNITS: &str = "`ms`, `s`, `m` or `h`";
/// The longest duration the macros take: 100 years of 365 days. Anything longer is a slip of
/// the keyboard, and this bound keeps every duration far from what overflows: the engine adds
/// deadlines to clocks, and 100 years is a count of nanoseconds that fits an `i64` (which holds
/// 292 years) as well as a `u64`.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3_600);
/// [`MAX_DURATION`] as the messages name it.
const MAX_DURATION_TEXT: &str = "876000h (100 years)";

/// The value of `option`, written `name = value`; an error showing `example` otherwise.
pub(crate) fn assigned<'a>(
    option: &'a RawOption,
    example: &str,
    errors: &mut Errors,
) -> Option<&'a Expr> {
    match &option.value {
        RawValue::Assign(expr) => Some(expr),
        RawValue::Call(_) | RawValue::Flag => {
            errors.at(
                &option.name,
                format!("`{}` needs a value, as in `{example}`", option.name),
            );
            None
        }
    }
}

pub(crate) fn positive_duration(option: &RawOption, errors: &mut Errors) -> Option<Duration> {
    let example = format!("{} = 30s", option.name);
    let expr = assigned(option, &example, errors)?;
    let d = duration(expr, errors)?;
    if d.is_zero() {
        errors.at(expr, format!("`{}` must be longer than zero", option.name));
        return None;
    }
    Some(d)
}

fn literal(expr: &Expr) -> Option<&Lit> {
    match expr {
        Expr::Lit(ExprLit { lit, .. }) => Some(lit),
        _ => None,
    }
}

/// `100ms`, `30s`, `1.5m`, `2h`, `1e3ms`: read exactly (not through a float), to the
/// nanosecond, and at most [`MAX_DURATION`].
pub(crate) fn duration(expr: &Expr, errors: &mut Errors) -> Option<Duration> {
    let (digits, suffix) = match literal(expr) {
        Some(Lit::Int(i)) => (i.base10_digits().to_owned(), i.suffix().to_owned()),
        Some(Lit::Float(f)) => (f.base10_digits().to_owned(), f.suffix().to_owned()),
        _ => {
            errors.at(
                expr,
                format!("expected a duration such as `30s`: a number and a unit, {UNITS}"),
            );
            return None;
        }
    };
    let unit: u128 = match suffix.as_str() {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "" => {
            errors.at(
                expr,
                format!("`{digits}` has no unit; write it with one of {UNITS}, as in `{digits}s`"),
            );
            return None;
        }
        other => {
            errors.at(
                expr,
                format!("unknown unit `{other}` in `{digits}{other}`; use {UNITS}"),
            );
            return None;
        }
    };
    match nanos(&digits, unit) {
        Some(n) if n <= MAX_DURATION.as_nanos() => {
            let secs = u64::try_from(n / 1_000_000_000).ok()?;
            let subsec = u32::try_from(n % 1_000_000_000).ok()?;
            Some(Duration::new(secs, subsec))
        }
        _ => {
            errors.at(
                expr,
                format!(
                    "`{digits}{suffix}` is too long a duration: the longest is {MAX_DURATION_TEXT}"
                ),
            );
            None
        }
    }
}

/// The nanoseconds of the decimal number `digits` (`12`, `1.5`, `2e3`, `2.5E-1`) of units of
/// `unit` nanoseconds, rounded down to the nanosecond; `None` when it is too large to count.
fn nanos(digits: &str, unit: u128) -> Option<u128> {
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(at) => (&digits[..at], digits[at + 1..].parse::<i64>().ok()?),
        None => (digits, 0),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut value: u128 = 0;
    for c in whole.chars().chain(fraction.chars()) {
        let digit = c.to_digit(10)?;
        value = value.checked_mul(10)?.checked_add(u128::from(digit))?;
    }
    let mut value = value.checked_mul(unit)?;
    let shift = exponent.checked_sub(i64::try_from(fraction.len()).ok()?)?;
    if value == 0 {
        return Some(0);
    }
    if shift >= 0 {
        for _ in 0..shift {
            value = value.checked_mul(10)?;
        }
    } else {
        for _ in 0..shift.unsigned_abs().min(40) {
            value /= 10;
        }
    }
    Some(value)
}

/// A whole number of attempts.
pub(crate) fn whole(expr: &Expr, errors: &mut Errors) -> Option<u32> {
    match literal(expr) {
        Some(Lit::Int(i)) if i.suffix().is_empty() => match i.base10_parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.at(
                    expr,
                    "too large: at most 4294967295 attempts (0 means unlimited)",
                );
                None
            }
        },
        _ => {
            errors.at(
                expr,
                "expected a whole number of attempts, such as `5` (0 means unlimited)",
            );
            None
        }
    }
}

/// A number, such as a backoff coefficient.
pub(crate) fn number(expr: &Expr, errors: &mut Errors) -> Option<f64> {
    match literal(expr) {
        Some(Lit::Float(f)) if f.suffix().is_empty() => f.base10_parse().ok(),
        Some(Lit::Int(i)) if i.suffix().is_empty() => i.base10_parse::<u32>().ok().map(f64::from),
        _ => {
            errors.at(expr, "expected a number, such as `2.0`");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_duration(text: &str) -> Result<Duration, String> {
        let expr: Expr = syn::parse_str(text).map_err(|e| e.to_string())?;
        let mut errors = Errors::default();
        let d = duration(&expr, &mut errors);
        match errors.finish() {
            Ok(()) => d.ok_or_else(|| "no duration and no error".to_owned()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn durations_are_read_exactly() {
        assert_eq!(parse_duration("100ms"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("0.1s"), Ok(Duration::from_millis(100)));
        assert_eq!(parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7_200)));
        assert_eq!(parse_duration("0.000000001s"), Ok(Duration::from_nanos(1)));
        assert_eq!(parse_duration("0.0000000015s"), Ok(Duration::from_nanos(1)));
        assert_eq!(
            parse_duration("1234567.123456789s"),
            Ok(Duration::new(1_234_567, 123_456_789))
        );
        assert_eq!(nanos("2e3", 1_000_000), Some(2_000_000_000));
        assert_eq!(nanos("2.5E-1", 1_000_000_000), Some(250_000_000));
        assert_eq!(nanos("0e99999", 1), Some(0));
        assert_eq!(nanos("1e99999", 1), None);
        assert_eq!(nanos("1".repeat(60).as_str(), 1), None);
    }

    #[test]
    fn a_duration_over_a_hundred_years_is_refused_and_names_the_limit() {
        assert_eq!(parse_duration("876000h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("3153600000s"), Ok(MAX_DURATION));
        for long in [
            "876001h",
            "3153600000.000000001s",
            "18446744074s",
            "1000000000000s",
            "99999999999999999999999999999999999999999999h",
        ] {
            let error = parse_duration(long).expect_err(long);
            assert_eq!(
                error,
                format!("`{long}` is too long a duration: the longest is 876000h (100 years)")
            );
        }
    }
}
