//! Progress on stderr: a bar (bytes, bytes/s, ETA) on a terminal; with -v and no terminal
//! (a log, a CI job), a line now and then; nothing otherwise.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the line mode speaks: a long run (Qwen at 7 tokens/s takes hours) shows it is
/// alive without flooding a log.
const LINE_EVERY: Duration = Duration::from_secs(60);

/// Where progress goes; `set_position` may be called from any worker thread.
pub enum Progress {
    Bar(ProgressBar),
    Lines(Mutex<LineState>),
    Hidden,
}

pub struct LineState {
    label: String,
    total: Option<u64>,
    started: Instant,
    last: Instant,
}

impl Progress {
    /// Progress over `total` bytes, or a counter when the total is not known (a pipe).
    pub fn new(total: Option<u64>, label: &str, quiet: bool, verbose: bool) -> Progress {
        if quiet {
            return Progress::Hidden;
        }
        if !std::io::stderr().is_terminal() {
            if !verbose {
                return Progress::Hidden;
            }
            let now = Instant::now();
            return Progress::Lines(Mutex::new(LineState {
                label: label.to_string(),
                total,
                started: now,
                last: now,
            }));
        }
        let (bar, template) = match total {
            Some(total) => (
                ProgressBar::new(total),
                "{msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            ),
            None => (
                ProgressBar::no_length(),
                "{msg} {bytes} {binary_bytes_per_sec} {elapsed}",
            ),
        };
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_message(label.to_string());
        Progress::Bar(bar)
    }

    /// `done` bytes of the input (or output) are through.
    pub fn set_position(&self, done: u64) {
        match self {
            Progress::Bar(bar) => bar.set_position(done),
            Progress::Lines(state) => {
                let Ok(mut state) = state.lock() else { return };
                let now = Instant::now();
                if now.duration_since(state.last) >= LINE_EVERY {
                    state.last = now;
                    eprintln!("{}", state.line(done, now));
                }
            }
            Progress::Hidden => {}
        }
    }

    pub fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

impl LineState {
    /// "compress: 12.0 KB of 148.5 KB (8.1%), 0.20 KB/s, 10 m 0 s so far, about 1 h 52 m left"
    fn line(&self, done: u64, now: Instant) -> String {
        let secs = now.duration_since(self.started).as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let mut line = format!("{}: {:.1} KB", self.label, done as f64 / 1000.0);
        if let Some(total) = self.total.filter(|&t| t > 0) {
            line += &format!(
                " of {:.1} KB ({:.1}%)",
                total as f64 / 1000.0,
                100.0 * done as f64 / total as f64
            );
        }
        line += &format!(", {:.2} KB/s, {} so far", rate / 1000.0, hms(secs));
        if let Some(total) = self.total.filter(|&t| t > done && done > 0) {
            line += &format!(", about {} left", hms((total - done) as f64 / rate));
        }
        line
    }
}

/// "1 h 52 m", "10 m 0 s", "42 s".
fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} m {s} s"),
        (h, m, _) => format!("{h} h {m} m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_gives_share_rate_and_time_left() {
        let started = Instant::now();
        let state = LineState {
            label: "compress".into(),
            total: Some(150_000),
            started,
            last: started,
        };
        let line = state.line(15_000, started + Duration::from_secs(600));
        assert_eq!(
            line,
            "compress: 15.0 KB of 150.0 KB (10.0%), 0.03 KB/s, 10 m 0 s so far, about 1 h 30 m left"
        );
        let piped = LineState {
            total: None,
            ..state
        };
        assert_eq!(
            piped.line(2_000, started + Duration::from_secs(42)),
            "compress: 2.0 KB, 0.05 KB/s, 42 s so far"
        );
    }
}
