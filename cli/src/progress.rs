//! Progress display on stderr, only when it is a terminal and text output is wanted.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;

pub struct Spinner {
    bar: Option<ProgressBar>,
}

impl Spinner {
    pub fn new(json: bool) -> Spinner {
        Self::make(
            json,
            "{spinner} {elapsed:>4} {msg}",
            ProgressBar::new_spinner,
        )
    }

    /// A line of its own in `multi`, named `prefix` (one per runner of `verify`).
    pub fn attached(multi: &indicatif::MultiProgress, json: bool, prefix: &str) -> Spinner {
        let s = Self::make(json, "{spinner} {prefix:>24} {elapsed:>4} {msg}", || {
            multi.add(ProgressBar::new_spinner())
        });
        if let Some(bar) = &s.bar {
            bar.set_prefix(prefix.to_string());
        }
        s
    }

    fn make(json: bool, template: &str, new: impl FnOnce() -> ProgressBar) -> Spinner {
        let bar = (!json && std::io::stderr().is_terminal()).then(|| {
            let bar = new();
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Spinner { bar }
    }

    /// Stops the spinner but leaves its line with a final message.
    pub fn done(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.finish_with_message(msg.to_string());
        }
    }

    pub fn stage(&self, msg: &str) {
        if let Some(bar) = &self.bar {
            bar.set_message(msg.to_string());
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Spinner {
    /// Prints a line above the spinner (or plainly on stderr without one).
    pub fn println(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}
