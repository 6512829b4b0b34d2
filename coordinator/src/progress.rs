//! Progress bars for interactive runs: training steps, then generated images, drawn on the
//! terminal from the job status the state task publishes. Log lines (the coordinator's and its
//! local workers') are written through [`Terminal`] so that they scroll above the bars.

use std::io::Write;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::sync::watch;

use anygan_proto::v1;

/// The terminal shared by the bars and the log lines.
#[derive(Clone, Debug)]
pub struct Terminal {
    bars: MultiProgress,
}

impl Terminal {
    /// Some when stderr is a terminal (and bars are wanted): then logs should go through it.
    pub fn interactive(wanted: bool) -> Option<Self> {
        (wanted && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| Self {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        })
    }

    /// Writes whole lines above the bars.
    pub fn write_lines(&self, bytes: &[u8]) {
        self.bars.suspend(|| {
            let _ = std::io::stderr().write_all(bytes);
        });
    }

    /// A tracing writer that prints above the bars.
    pub fn make_writer(&self) -> tracing_subscriber::fmt::writer::BoxMakeWriter {
        let terminal = self.clone();
        tracing_subscriber::fmt::writer::BoxMakeWriter::new(move || LineWriter {
            terminal: terminal.clone(),
            buffer: Vec::new(),
        })
    }

    /// Draws the job's progress until the job ends.
    pub async fn follow(self, mut status: watch::Receiver<v1::JobStatus>) {
        let style = ProgressStyle::with_template(
            "{prefix:>10} [{bar:40}] {pos}/{len} {msg} ({elapsed}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let training = self.bars.add(ProgressBar::new(0).with_style(style.clone()));
        training.set_prefix("training");
        let mut generating: Option<ProgressBar> = None;
        loop {
            let now = status.borrow_and_update().clone();
            training.set_length(now.target_steps);
            training.set_position(now.completed_steps);
            training.set_message(format!(
                "steps, {} workers, {:.0} img/s",
                now.workers.len(),
                now.images_per_second
            ));
            let wanted: u64 = now.generation_progress.iter().map(|c| c.wanted).sum();
            if wanted > 0 {
                let bar = generating.get_or_insert_with(|| {
                    training.finish();
                    let bar = self
                        .bars
                        .add(ProgressBar::new(wanted).with_style(style.clone()));
                    bar.set_prefix("generating");
                    bar.set_message("images");
                    bar
                });
                bar.set_position(now.generation_progress.iter().map(|c| c.done).sum());
            }
            let over =
                now.phase == v1::JobPhase::Done as i32 || now.phase == v1::JobPhase::Failed as i32;
            if over || status.changed().await.is_err() {
                training.finish();
                if let Some(bar) = generating {
                    bar.finish();
                }
                return;
            }
        }
    }
}

/// Buffers one event's output and writes it in one piece when dropped.
struct LineWriter {
    terminal: Terminal,
    buffer: Vec<u8>,
}

impl Write for LineWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buffer.is_empty() {
            self.terminal.write_lines(&self.buffer);
        }
    }
}
