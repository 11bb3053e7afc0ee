//! How long work reports its progress without printing: the pipeline asks a [`Progress`] for a
//! [`Task`] and advances it; the command line draws bars or log lines (`cli::progress`), a
//! library user may pass [`Quiet`].

/// A source of progress tasks (implemented by the command line's bars).
pub trait Progress: Sync {
    /// Starts a task of `total` units named `label` (e.g. "particles", "clusters").
    fn task(&self, total: u64, label: &str) -> Box<dyn Task>;
}

/// One counted task in progress.
pub trait Task: Send {
    /// Sets the units done and a short message (e.g. stars written).
    fn set(&mut self, done: u64, msg: &str);
    /// Ends the task.
    fn finish(self: Box<Self>);
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {
    fn task(&self, _total: u64, _label: &str) -> Box<dyn Task> {
        Box::new(Quiet)
    }
}

impl Task for Quiet {
    fn set(&mut self, _done: u64, _msg: &str) {}
    fn finish(self: Box<Self>) {}
}
