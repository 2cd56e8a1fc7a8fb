//! The side file: a step's effect that outlives the process, for the tests that kill one
//! (the crash-point suites, the soak and crash tests of sagas, a store's owner taken over).
//! Each line is one effect, written in one `write` and flushed to disk before the step goes
//! on, so a process killed at any point leaves whole lines only.

use std::io::Write as _;
use std::path::Path;

/// Appends `line` to the side file of `dir`, flushed to disk.
pub fn side(dir: &Path, line: &str) {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("side.txt"))
        .unwrap();
    // One write: `writeln!` on a `File` is two (the line, then its end), and a process
    // killed between them leaves a line without its end, which the next one's runs on.
    file.write_all(format!("{line}\n").as_bytes()).unwrap();
    file.sync_all().unwrap();
}

/// The lines of the side file of `dir`: the effects, in the order they happened.
pub fn side_lines(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("side.txt"))
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
