//! Terminal output: aligned tables (hand-written: a few dozen lines, no dependency), colours
//! only when stdout is a terminal (and `NO_COLOR` is unset), times and durations.

use std::io::{IsTerminal as _, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::CliError;

/// Whether to paint: stdout is a terminal and `NO_COLOR` is not set.
pub(crate) fn colours() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// A cell's colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Paint {
    Plain,
    Green,
    Red,
    Yellow,
    Cyan,
    Dim,
    Bold,
}

impl Paint {
    fn code(self) -> Option<&'static str> {
        match self {
            Paint::Plain => None,
            Paint::Green => Some("32"),
            Paint::Red => Some("31"),
            Paint::Yellow => Some("33"),
            Paint::Cyan => Some("36"),
            Paint::Dim => Some("2"),
            Paint::Bold => Some("1"),
        }
    }

    /// `text` in this colour if `on`.
    pub(crate) fn apply(self, text: &str, on: bool) -> String {
        match self.code() {
            Some(code) if on && !text.is_empty() => format!("\x1b[{code}m{text}\x1b[0m"),
            _ => text.to_owned(),
        }
    }
}

/// The colour of a status word.
pub(crate) fn status_paint(status: &str) -> Paint {
    match status {
        "completed" | "compensated" => Paint::Green,
        "failed" | "stuck" | "parked" | "abandoned" => Paint::Red,
        "running" | "compensating" => Paint::Cyan,
        "cancelled" | "skipped" => Paint::Yellow,
        _ => Paint::Plain,
    }
}

/// A table: a header row, then rows of cells, each column as wide as its widest cell.
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<(String, Paint)>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Table {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<(String, Paint)>) {
        self.rows.push(cells);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table; the last column is not padded.
    pub(crate) fn print(&self, out: &mut impl Write, colour: bool) -> Result<(), CliError> {
        let mut widths: Vec<usize> = self.header.iter().map(|h| width(h)).collect();
        for row in &self.rows {
            for (i, (cell, _)) in row.iter().enumerate() {
                if let Some(w) = widths.get_mut(i) {
                    *w = (*w).max(width(cell));
                }
            }
        }
        let header: Vec<(String, Paint)> = self
            .header
            .iter()
            .map(|h| ((*h).to_owned(), Paint::Bold))
            .collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, paint)) in row.iter().enumerate() {
                let last = i + 1 == row.len();
                line.push_str(&paint.apply(cell, colour));
                if !last {
                    let pad = widths
                        .get(i)
                        .copied()
                        .unwrap_or(0)
                        .saturating_sub(width(cell));
                    line.push_str(&" ".repeat(pad + 2));
                }
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Display width, counting each char as one column (good enough for names and the few
/// symbols used here).
pub(crate) fn width(text: &str) -> usize {
    text.chars().count()
}

/// `text` on one line, cut to `max` columns with an ellipsis.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', " ");
    if width(&one_line) <= max {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// A plain cell.
pub(crate) fn cell(text: impl Into<String>) -> (String, Paint) {
    (text.into(), Paint::Plain)
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS` (UTC).
pub(crate) fn time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rest) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Unix milliseconds as an RFC 3339 time, for `--json`.
pub(crate) fn iso(ms: i64) -> String {
    let t = time(ms);
    format!("{}T{}.{:03}Z", &t[..10], &t[11..], ms.rem_euclid(1000))
}

/// A duration: `850ms`, `1.2s`, `2m05s`, `1h02m`.
pub(crate) fn duration(ms: i64) -> String {
    match ms {
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{}m{:02}s", ms / 60_000, ms % 60_000 / 1000),
        ms => format!("{}h{:02}m", ms / 3_600_000, ms % 3_600_000 / 60_000),
    }
}

/// A duration as `30s`, `15m`, `2h`, `7d` or `2w`, in milliseconds; `None` for anything else
/// (a negative number, an unknown unit, one too large).
pub(crate) fn duration_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    let unit = text.chars().last().filter(|c| c.is_ascii_alphabetic())?;
    let number: i64 = text[..text.len() - 1].parse().ok().filter(|n| *n >= 0)?;
    let scale = match unit {
        's' => 1000,
        'm' => 60_000,
        'h' => 3_600_000,
        'd' => 86_400_000,
        'w' => 7 * 86_400_000,
        _ => return None,
    };
    number.checked_mul(scale)
}

/// `--since`: a duration back from now (`30s`, `15m`, `2h`, `7d`), a date (`2026-11-21`) or
/// a UTC time (`2026-11-21T12:00:00Z`, `2026-11-21 12:00`), as unix milliseconds.
pub(crate) fn parse_since(text: &str, now: i64) -> Result<i64, CliError> {
    let bad = || {
        CliError::Usage(format!(
            "--since `{text}`: expected a duration back from now (30s, 15m, 2h, 7d) or a UTC \
             date or time (2026-11-21, 2026-11-21T12:00:00Z)"
        ))
    };
    let text = text.trim();
    if text.chars().last().is_some_and(|c| c.is_ascii_alphabetic()) && !text.contains('-') {
        return Ok(now - duration_ms(text).ok_or_else(bad)?);
    }
    let text = text.trim_end_matches('Z');
    let (date, clock) = match text.split_once(['T', ' ']) {
        Some((date, clock)) => (date, Some(clock)),
        None => (text, None),
    };
    let mut ymd = date.split('-').map(|p| p.parse::<i64>());
    let (Some(Ok(y)), Some(Ok(m)), Some(Ok(d)), None) =
        (ymd.next(), ymd.next(), ymd.next(), ymd.next())
    else {
        return Err(bad());
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let mut secs = days_from_civil(y, m, d) * 86_400;
    if let Some(clock) = clock {
        let parts: Vec<&str> = clock.split(':').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(bad());
        }
        let mut scale = 3600;
        for part in parts {
            let value: f64 = part.parse().map_err(|_| bad())?;
            secs += (value * f64::from(scale)) as i64;
            scale /= 60;
        }
    }
    Ok(secs * 1000)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Writes `value` as pretty JSON and a newline.
pub(crate) fn json(out: &mut impl Write, value: &serde_json::Value) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Usage(format!("cannot encode the output as JSON: {e}")))?;
    writeln!(out, "{text}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_only_when_on() {
        assert_eq!(Paint::Green.apply("ok", false), "ok");
        assert_eq!(Paint::Green.apply("ok", true), "\x1b[32mok\x1b[0m");
        assert_eq!(Paint::Red.apply("", true), "");
        assert_eq!(Paint::Plain.apply("x", true), "x");
    }

    #[test]
    fn a_table_aligns_its_columns() {
        let mut t = Table::new(vec!["A", "LONGER"]);
        t.row(vec![cell("wide cell"), cell("x")]);
        t.row(vec![cell("b"), cell("")]);
        let mut out = Vec::new();
        assert!(t.print(&mut out, false).is_ok());
        let text = String::from_utf8(out).unwrap_or_default();
        assert_eq!(text, "A          LONGER\nwide cell  x\nb\n");
    }

    #[test]
    fn times_round_trip() {
        assert_eq!(time(0), "1970-01-01 00:00:00");
        let t = parse_since("2026-11-21T12:07:05Z", 0).ok();
        assert_eq!(t.map(time).as_deref(), Some("2026-11-21 12:07:05"));
        assert_eq!(
            parse_since("2024-02-29", 0).ok().map(time).as_deref(),
            Some("2024-02-29 00:00:00")
        );
        assert_eq!(
            parse_since("2h", 10_000_000).ok(),
            Some(10_000_000 - 7_200_000)
        );
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("2026-13-01", 0).is_err());
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(850), "850ms");
        assert_eq!(duration(1234), "1.2s");
        assert_eq!(duration(125_000), "2m05s");
        assert_eq!(duration(3_720_000), "1h02m");
    }
}
