//! Progress on stderr for the long commands (`generate`, `import`): an
//! indicatif bar when stderr is a terminal, otherwise a plain line now and
//! then (logs and CI read those).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_line: Instant,
    every: Duration,
}

impl Progress {
    /// `total` positions; `template` is the bar's indicatif template;
    /// without a terminal a line is due at most once per `every`.
    pub fn new(total: u64, template: &str, every: Duration) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                Some(total),
                indicatif::ProgressDrawTarget::stderr_with_hz(2),
            );
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            started: now,
            last_line: now,
            every,
        }
    }

    /// The bar, when stderr is a terminal.
    pub fn bar(&self) -> Option<&indicatif::ProgressBar> {
        self.bar.as_ref()
    }

    /// Without a bar: whether a plain line is due now (and, if so, the
    /// next one is due `every` from now).
    pub fn line_due(&mut self) -> bool {
        if self.bar.is_some() || self.last_line.elapsed() < self.every {
            return false;
        }
        self.last_line = Instant::now();
        true
    }

    /// `n` per second since the start.
    pub fn rate(&self, n: u64) -> f64 {
        n as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
