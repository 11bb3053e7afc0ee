//! Progress of long work: a bar on a terminal, plain `tracing` lines in batch logs. The
//! pipeline's [`upsample::observe::Progress`] as the command line shows it.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;
use upsample::observe::{Progress, Task};

/// Progress bars on a terminal, log lines otherwise.
pub struct Bars;

impl Progress for Bars {
    fn task(&self, total: u64, label: &str) -> Box<dyn Task> {
        Box::new(Bar::new(total, label))
    }
}

/// Reports progress of a counted task (bar on a TTY; otherwise a log line every ~10%).
pub struct Bar {
    bar: Option<ProgressBar>,
    label: String,
    total: u64,
    next_log: u64,
    start: Instant,
}

impl Bar {
    /// Starts a task of `total` units named `label`.
    pub fn new(total: u64, label: &str) -> Bar {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} (ETA {eta})")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            b.set_style(style.progress_chars("=> "));
            b.set_prefix(label.to_string());
            b
        });
        Bar {
            bar,
            label: label.to_string(),
            total,
            next_log: 0,
            start: Instant::now(),
        }
    }
}

impl Task for Bar {
    fn set(&mut self, done: u64, msg: &str) {
        match &self.bar {
            Some(b) => {
                b.set_position(done);
                b.set_message(msg.to_string());
            }
            None => {
                if done >= self.next_log || done == self.total {
                    let elapsed = self.start.elapsed().as_secs_f64();
                    let eta = if done > 0 {
                        elapsed * (self.total - done.min(self.total)) as f64 / done as f64
                    } else {
                        f64::NAN
                    };
                    tracing::info!(
                        "{}: {done}/{} {msg} (elapsed {elapsed:.0} s, ETA {eta:.0} s)",
                        self.label,
                        self.total
                    );
                    self.next_log = done + (self.total / 10).max(1);
                }
            }
        }
    }

    fn finish(self: Box<Self>) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}
