//! Progress on stderr: a bar (bytes, bytes/s, ETA) on a terminal; with -v and no terminal
//! (a log, a CI job), a line now and then; nothing otherwise. Before a long LLM run, one line
//! that says what it will cost and what is faster (unless -q).

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often the line mode speaks: a long run (Qwen at 7 tokens/s takes hours) shows it is
/// alive without flooding a log.
const LINE_EVERY: Duration = Duration::from_secs(60);

/// A run shorter than this gets no cost notice: the user is not kept waiting.
const NOTICE_OVER: Duration = Duration::from_secs(60);
/// How long the first steps are timed before the estimate: long enough for a few steps of
/// the slowest tier (Qwen at 7 tokens/s), short enough to come before the user gives up.
const NOTICE_AFTER: Duration = Duration::from_secs(5);

/// Where progress goes; `set_position` may be called from any worker thread.
pub struct Progress {
    view: View,
    notice: Option<Mutex<CostNotice>>,
}

enum View {
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
        Progress {
            view: View::new(total, label, quiet, verbose),
            notice: None,
        }
    }

    /// Adds the cost notice: once the first steps have been timed, if coding all `total`
    /// bytes will take over a minute at their speed, one line on stderr names the estimate
    /// and `faster` (the quicker choices). Nothing with -q or when the size is unknown.
    pub fn with_cost_notice(
        mut self,
        total: Option<u64>,
        quiet: bool,
        what: &str,
        faster: &str,
    ) -> Self {
        if let (false, Some(total)) = (quiet, total) {
            self.notice = Some(Mutex::new(CostNotice::new(
                total,
                what,
                faster,
                Instant::now(),
            )));
        }
        self
    }

    /// `done` bytes of the input (or output) are through.
    pub fn set_position(&self, done: u64) {
        if let Some(notice) = &self.notice {
            let line = notice
                .lock()
                .ok()
                .and_then(|mut n| n.observe(done, Instant::now()));
            if let Some(line) = line {
                match &self.view {
                    View::Bar(bar) => bar.println(line),
                    _ => eprintln!("{line}"),
                }
            }
        }
        self.view.set_position(done);
    }

    pub fn finish(&self) {
        if let View::Bar(bar) = &self.view {
            bar.finish_and_clear();
        }
    }
}

impl View {
    fn new(total: Option<u64>, label: &str, quiet: bool, verbose: bool) -> View {
        if quiet {
            return View::Hidden;
        }
        if !std::io::stderr().is_terminal() {
            if !verbose {
                return View::Hidden;
            }
            let now = Instant::now();
            return View::Lines(Mutex::new(LineState {
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
        View::Bar(bar)
    }

    fn set_position(&self, done: u64) {
        match self {
            View::Bar(bar) => bar.set_position(done),
            View::Lines(state) => {
                let Ok(mut state) = state.lock() else { return };
                let now = Instant::now();
                if now.duration_since(state.last) >= LINE_EVERY {
                    state.last = now;
                    eprintln!("{}", state.line(done, now));
                }
            }
            View::Hidden => {}
        }
    }
}

/// Times the first steps and, once, decides whether the whole run deserves a warning.
struct CostNotice {
    total: u64,
    what: String,
    faster: String,
    started: Instant,
    /// When the first bytes were through, and how many: the model is loaded and the input
    /// tokenized by then, so the rate from here on is the steps' own.
    first: Option<(Instant, u64)>,
    decided: bool,
}

impl CostNotice {
    fn new(total: u64, what: &str, faster: &str, started: Instant) -> CostNotice {
        CostNotice {
            total,
            what: what.to_string(),
            faster: faster.to_string(),
            started,
            first: None,
            decided: false,
        }
    }

    /// The notice, the one time it is due: "nzip: coding 1.2 MB with M will take about
    /// 1 h 20 m here (0.25 KB/s); faster: ...".
    fn observe(&mut self, done: u64, now: Instant) -> Option<String> {
        if self.decided || done == 0 {
            return None;
        }
        let Some((t0, d0)) = self.first else {
            self.first = Some((now, done));
            return None;
        };
        let timed = now.duration_since(t0);
        if timed < NOTICE_AFTER || done <= d0 {
            return None;
        }
        self.decided = true;
        let rate = (done - d0) as f64 / timed.as_secs_f64();
        let left = self.total.saturating_sub(done) as f64 / rate;
        let whole = now.duration_since(self.started).as_secs_f64() + left;
        (whole > NOTICE_OVER.as_secs_f64()).then(|| {
            format!(
                "nzip: {} will take about {} on this machine ({:.2} KB/s); faster: {}",
                self.what,
                hms(whole),
                rate / 1000.0,
                self.faster
            )
        })
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
    fn cost_notice_comes_once_and_only_for_long_runs() {
        let t = Instant::now();
        let at = |s: u64| t + Duration::from_secs(s);
        // 100 KB at 250 B/s after loading for 2 s: about 6 m 40 s.
        let mut slow = CostNotice::new(100_000, "coding 100.0 KB", "--fast", t);
        assert_eq!(slow.observe(0, at(1)), None);
        assert_eq!(slow.observe(250, at(2)), None);
        assert_eq!(slow.observe(1_000, at(5)), None, "not timed long enough");
        assert_eq!(
            slow.observe(1_750, at(8)).as_deref(),
            Some("nzip: coding 100.0 KB will take about 6 m 41 s on this machine (0.25 KB/s); faster: --fast")
        );
        assert_eq!(slow.observe(2_000, at(9)), None, "said once");
        // 100 KB at 10 KB/s: done in 12 s, nothing to say.
        let mut quick = CostNotice::new(100_000, "coding", "--fast", t);
        assert_eq!(quick.observe(10_000, at(2)), None);
        assert_eq!(quick.observe(70_000, at(8)), None);
        assert_eq!(quick.observe(80_000, at(9)), None);
    }

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
