//! Where audit lines go, written in batches.
//!
//! A `write` per line cost a few percent of the proxy's CPU per keep-alive request (an ext4 append
//! updates the inode's times on every call; in a bottle the sidecar's stdout is a pipe whose
//! reader, Docker's log copier, wakes for every line). So lines gather in a buffer and go out as
//! one `write` when it holds `FLUSH_BYTES`, or `FLUSH_AFTER` after the first line of a batch (a
//! flusher task, parked while the buffer is empty), or at shutdown (`Sink::flush`, and `Drop`).
//! Order is kept: every write of the buffer happens under its lock, and each event is serialized
//! straight into the buffer under that lock (a few hundred bytes; no per-line allocation). What a
//! crash can lose is the lines of the last `FLUSH_AFTER`; the decisions themselves were already
//! enforced. The flusher is a task on the proxy's runtime, not a thread of its own: no stack or
//! allocator arena to pay for in the 15 MB idle budget, and it parks on a `Notify` between batches.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;

/// A batch goes out once it holds this many bytes (~130 lines).
const FLUSH_BYTES: usize = 32 << 10;
/// Longest a line waits in the buffer.
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);

pub struct Sink {
    state: Arc<Mutex<State>>,
    /// Signalled when a line lands in an empty buffer, and when the sink is dropped. Held apart
    /// from `state` so the parked flusher keeps no strong reference to the buffer.
    filled: Arc<Notify>,
}

struct State {
    out: Box<dyn Write + Send>,
    buf: Vec<u8>,
}

impl State {
    /// Writes the batch. A write failure is logged, never fatal to a request: the decision was
    /// already enforced. The batch is dropped either way (a retry could duplicate lines).
    fn write_out(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let res = self
            .out
            .write_all(&self.buf)
            .and_then(|()| self.out.flush());
        self.buf.clear();
        if let Err(e) = res {
            tracing::error!(error = %e, "audit write failed");
        }
    }
}

impl Sink {
    /// These constructors spawn the flusher, so they must run inside a tokio runtime (an error
    /// otherwise).
    pub fn stdout() -> std::io::Result<Self> {
        Self::new(Box::new(std::io::stdout()))
    }

    pub fn stderr() -> std::io::Result<Self> {
        Self::new(Box::new(std::io::stderr()))
    }

    pub fn file(path: &Path) -> std::io::Result<Self> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Self::new(Box::new(f))
    }

    pub(crate) fn new(out: Box<dyn Write + Send>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(std::io::Error::other)?;
        let state = Arc::new(Mutex::new(State {
            out,
            buf: Vec::new(),
        }));
        let filled = Arc::new(Notify::new());
        runtime.spawn(flusher(Arc::downgrade(&state), Arc::clone(&filled)));
        Ok(Sink { state, filled })
    }

    /// Queues one serialized line (ending in a newline).
    #[cfg(test)]
    pub(crate) fn push_line(&self, line: &[u8]) {
        let _ = self.push_with(|buf| {
            buf.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(line));
            Ok::<(), std::convert::Infallible>(())
        });
    }

    /// Appends one line that `write` renders straight into the batch (no line buffer of its
    /// own per event), then its newline. If `write` fails, what it wrote is taken back: the
    /// batch only ever holds whole lines.
    pub(crate) fn push_with<E>(
        &self,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>,
    ) -> Result<(), E> {
        let Some(mut state) = lock(&self.state) else {
            return Ok(());
        };
        let start = state.buf.len();
        if let Err(e) = write(&mut state.buf) {
            state.buf.truncate(start);
            return Err(e);
        }
        state.buf.push(b'\n');
        if state.buf.len() >= FLUSH_BYTES {
            state.write_out();
        } else if start == 0 {
            self.filled.notify_one();
        }
        Ok(())
    }

    /// Writes out whatever is buffered (shutdown, tests).
    pub fn flush(&self) {
        if let Some(mut state) = lock(&self.state) {
            state.write_out();
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.flush();
        // Wakes the flusher so it notices the sink is gone.
        self.filled.notify_one();
    }
}

fn lock(state: &Mutex<State>) -> Option<MutexGuard<'_, State>> {
    match state.lock() {
        Ok(s) => Some(s),
        Err(_) => {
            tracing::error!("audit sink poisoned");
            None
        }
    }
}

/// Parks until a batch starts, gives it `FLUSH_AFTER` to fill, writes it; ends once the sink is
/// gone. The lock is never held across an `.await`.
async fn flusher(weak: Weak<Mutex<State>>, filled: Arc<Notify>) {
    loop {
        let empty = {
            let Some(state) = weak.upgrade() else { return };
            let Some(s) = lock(&state) else { return };
            s.buf.is_empty()
        };
        if empty {
            // A line (or the drop) that came before this wait left a permit: none is lost.
            filled.notified().await;
            continue;
        }
        tokio::time::sleep(FLUSH_AFTER).await;
        let Some(state) = weak.upgrade() else { return };
        let Some(mut s) = lock(&state) else { return };
        s.write_out();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// A writer the test can read back, counting `write` calls.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<(Vec<u8>, usize)>>);

    impl Write for Captured {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let mut g = self.0.lock().map_err(|_| std::io::ErrorKind::Other)?;
            g.0.extend_from_slice(b);
            g.1 += 1;
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn get(&self) -> (Vec<u8>, usize) {
            self.0.lock().map(|g| g.clone()).unwrap_or_default()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lone_line_arrives_without_a_flush() {
        let w = Captured::default();
        let sink = Sink::new(Box::new(w.clone())).unwrap();
        sink.push_line(b"{\"a\":1}\n");
        assert!(w.get().0.is_empty(), "written at once, not batched");
        let t0 = Instant::now();
        while w.get().0.is_empty() {
            assert!(t0.elapsed() < Duration::from_secs(5), "never flushed");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(t0.elapsed() >= FLUSH_AFTER / 2);
        assert_eq!(w.get().0, b"{\"a\":1}\n");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_burst_goes_out_in_few_writes_in_order() {
        let w = Captured::default();
        let sink = Sink::new(Box::new(w.clone())).unwrap();
        let mut want = Vec::new();
        for i in 0..2000 {
            let line = format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "x".repeat(200));
            sink.push_line(line.as_bytes());
            want.extend_from_slice(line.as_bytes());
        }
        sink.flush();
        let (got, writes) = w.get();
        assert_eq!(got, want);
        assert!(writes < 2000 / 50, "{writes} writes for 2000 lines");
    }

    /// Lines that keep coming while the flusher sleeps or writes are written by later rounds,
    /// with nobody calling `flush` (the path a busy proxy takes).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_steady_trickle_is_written_by_the_flusher_alone() {
        let w = Captured::default();
        let sink = Arc::new(Sink::new(Box::new(w.clone())).unwrap());
        let pusher = {
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || {
                for i in 0..300 {
                    sink.push_line(format!("{i}\n").as_bytes());
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        let want: Vec<u8> = (0..300)
            .flat_map(|i| format!("{i}\n").into_bytes())
            .collect();
        let t0 = Instant::now();
        while w.get().0 != want {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "{} of {} bytes written",
                w.get().0.len(),
                want.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(pusher.is_finished() || t0.elapsed() < Duration::from_secs(10));
        assert!(w.get().1 > 1, "written in more than one batch");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropping_the_sink_writes_the_rest_and_stops_the_flusher() {
        let w = Captured::default();
        let sink = Sink::new(Box::new(w.clone())).unwrap();
        let weak = Arc::downgrade(&sink.state);
        let filled = Arc::clone(&sink.filled);
        sink.push_line(b"last\n");
        drop(sink);
        assert_eq!(w.get().0, b"last\n");
        assert!(
            weak.upgrade().is_none(),
            "the parked flusher kept the buffer alive"
        );
        // Woken by the drop, the flusher ends and lets go of its handle on the signal.
        let t0 = Instant::now();
        while Arc::strong_count(&filled) > 1 {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "the flusher did not end"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_line_that_fails_to_render_leaves_nothing_behind() {
        let w = Captured::default();
        let sink = Sink::new(Box::new(w.clone())).unwrap();
        sink.push_line(b"before\n");
        let failed = sink.push_with(|buf| {
            buf.extend_from_slice(b"{\"half\":");
            Err("cannot render")
        });
        assert_eq!(failed, Err("cannot render"));
        sink.push_line(b"after\n");
        sink.flush();
        assert_eq!(w.get().0, b"before\nafter\n");
    }

    #[test]
    fn outside_a_runtime_it_is_an_error_not_a_panic() {
        assert!(Sink::new(Box::new(Captured::default())).is_err());
    }
}
