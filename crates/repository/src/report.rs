//! How an install tells the user what it is doing. The library never prints directly: it talks
//! to a [`Reporter`]. [`Console`] is the one `wws` uses (messages on stdout, a byte progress bar
//! on stderr when stderr is a terminal, plain lines otherwise); tests use [`Recorder`].

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives progress messages and download progress.
pub trait Reporter: Sync {
    /// One line for the user, e.g. `🚀 Installing the runtime...`.
    fn line(&self, message: &str);
    /// A warning for the user (e.g. plain `http://`, an index of a newer version).
    fn warn(&self, message: &str);
    /// A download of `label` starts; `total` is its size when known.
    fn download(&self, label: &str, total: Option<u64>) -> Box<dyn DownloadProgress + '_>;
}

/// Progress of one download.
pub trait DownloadProgress {
    /// `bytes` more arrived.
    fn advance(&self, bytes: u64);
    /// The download ended (successfully or not): remove the bar.
    fn finish(&self);
}

/// Prints to the terminal: lines on stdout, warnings on stderr, a progress bar on stderr.
#[derive(Debug, Default)]
pub struct Console;

impl Reporter for Console {
    fn line(&self, message: &str) {
        let mut out = std::io::stdout().lock();
        // A closed stdout must not fail an install.
        let _ = writeln!(out, "{message}");
        let _ = out.flush();
    }

    fn warn(&self, message: &str) {
        eprintln!("⚠️  {message}");
    }

    fn download(&self, label: &str, total: Option<u64>) -> Box<dyn DownloadProgress + '_> {
        if !std::io::stderr().is_terminal() {
            return Box::new(PlainProgress);
        }
        let bar = match total {
            Some(n) => ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()),
            None => ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        };
        let template = if total.is_some() {
            "   {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}"
        } else {
            "   {msg} {spinner} {bytes} {bytes_per_sec}"
        };
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(label.to_string());
        Box::new(BarProgress(bar))
    }
}

/// No bar when stderr is not a terminal: the `Pulling` line already said what is fetched.
struct PlainProgress;

impl DownloadProgress for PlainProgress {
    fn advance(&self, _bytes: u64) {}
    fn finish(&self) {}
}

struct BarProgress(ProgressBar);

impl DownloadProgress for BarProgress {
    fn advance(&self, bytes: u64) {
        self.0.inc(bytes);
    }
    fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// Keeps every line in memory (tests, and callers that want to log instead of print).
#[derive(Debug, Default)]
pub struct Recorder {
    lines: Mutex<Vec<String>>,
}

impl Recorder {
    /// Everything reported so far, warnings prefixed with `warning: `.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn push(&self, line: String) {
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(line);
        }
    }
}

impl Reporter for Recorder {
    fn line(&self, message: &str) {
        self.push(message.to_string());
    }

    fn warn(&self, message: &str) {
        self.push(format!("warning: {message}"));
    }

    fn download(&self, _label: &str, _total: Option<u64>) -> Box<dyn DownloadProgress + '_> {
        Box::new(PlainProgress)
    }
}
