//! Thread per core: the proxy runs one single-threaded tokio runtime per core ("shard"), each
//! accepting from the same listening sockets and keeping every connection it accepts — the
//! client's task, its tunnel, and the pooled upstream connections it uses — on its own thread.
//!
//! Why not one work-stealing runtime: a keep-alive request crosses several tasks (client
//! connection, upstream connection, body channels), and with two or more workers each
//! wake-up may land on, or unpark, the other worker. Measured on the 2-vCPU bench machine
//! (docs/PERFORMANCE.md, run 12): the multi-thread runtime spent 31-32 µs of CPU per keep-alive
//! request, one worker 24-25 µs. Shards keep the one-worker cost and still use every core.
//!
//! Every shard accepts from the same listening sockets, but a connection is served by the
//! shard with the fewest open connections, the lowest-numbered on a tie (`Shards::assign`):
//! whichever thread the kernel woke for it hands it over through that shard's inbox. Measured without this: all sixteen
//! keep-alive connections of a bench run could land on one thread, capping the proxy at one
//! core. What is still given up: a connection never moves once assigned, so sixteen equal
//! counts can still be unequal work (as with nginx's workers).

use std::cell::Cell;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

thread_local! {
    static INDEX: Cell<usize> = const { Cell::new(0) };
}

/// The shard this thread serves; 0 on the thread that started the proxy and on any thread
/// that is not a shard (tests, helpers).
pub fn index() -> usize {
    INDEX.with(Cell::get)
}

/// Marks this thread as shard `i`.
pub(crate) fn enter(i: usize) {
    INDEX.with(|c| c.set(i));
}

/// How many shards to run: `TOKIO_WORKER_THREADS` when set to a positive number (the knob
/// tokio programs already honour, used by the bench), otherwise one per core the process may
/// use.
pub fn default_count() -> usize {
    std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<NonZeroUsize>().ok())
        .or_else(|| std::thread::available_parallelism().ok())
        .map_or(1, NonZeroUsize::get)
}

/// Scheduler ticks between two polls of a shard's I/O driver (tokio's default: 61). A shard
/// runs one task at a time; a connection that is always ready (a large upload being decrypted,
/// scanned and re-encrypted) yields after each coop budget, but with the default the shard
/// ran dozens of such slices before it noticed that another connection's bytes had arrived.
/// Measured (docs/PERFORMANCE.md, run 13): small requests beside a 256 MiB upload on the same
/// shard waited up to 78-239 ms (p99.9 57-72 ms) with 61, 26-33 ms (p99.9 13-20 ms) with 16,
/// 36-52 ms (p99.9 8.5-9.8 ms) with 4; keep-alive throughput did not move measurably with 16 and
/// may have lost a few percent with 4.
pub const EVENT_INTERVAL: u32 = 16;

/// A shard's runtime: single-threaded, every driver on, I/O polled every `EVENT_INTERVAL` ticks.
pub fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .event_interval(EVENT_INTERVAL)
        .build()
}

/// Work handed to a shard: starts serving one connection on the shard's runtime.
pub type Job = Box<dyn FnOnce() + Send>;

/// Each shard's inbox and open-connection count. The inboxes are unbounded but hold at most
/// one job per accepted connection, and connections are bounded by the listeners' slots.
pub struct Shards {
    inboxes: Vec<UnboundedSender<Job>>,
    open: Arc<[AtomicUsize]>,
}

/// One connection's place in its shard's count; dropped when the connection's last task ends.
#[derive(Debug)]
pub struct Load {
    open: Arc<[AtomicUsize]>,
    shard: usize,
}

impl Drop for Load {
    fn drop(&mut self) {
        if let Some(n) = self.open.get(self.shard) {
            n.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Load {
    pub fn shard(&self) -> usize {
        self.shard
    }
}

impl Shards {
    /// `n` shards (at least one) and the inbox each must drain with `run_inbox`.
    pub fn new(n: usize) -> (Shards, Vec<UnboundedReceiver<Job>>) {
        let (inboxes, receivers) = (0..n.max(1)).map(|_| unbounded_channel()).unzip();
        let open = (0..n.max(1)).map(|_| AtomicUsize::new(0)).collect();
        (Shards { inboxes, open }, receivers)
    }

    /// The shard that should serve a new connection: the one with the fewest open, the
    /// lowest-numbered on a tie. So a light load (one agent, one connection at a time) stays on
    /// shard 0 with one warm upstream pool, whichever thread the kernel woke for the accept.
    /// Two threads assigning at once may both pick the same shard; the counts even out with
    /// the next connections. Counted from now on.
    pub fn assign(&self) -> Load {
        let mut best = 0;
        let mut fewest = usize::MAX;
        for (i, n) in self.open.iter().enumerate() {
            let n = n.load(Ordering::Relaxed);
            if n < fewest {
                (best, fewest) = (i, n);
            }
        }
        if let Some(n) = self.open.get(best) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Load {
            open: Arc::clone(&self.open),
            shard: best,
        }
    }

    /// Appends the per-shard gauge to a Prometheus text exposition: how evenly the open
    /// connections are spread.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        out.push_str("# HELP egress_shard_connections Client connections open, by the shard (thread) serving them.\n");
        out.push_str("# TYPE egress_shard_connections gauge\n");
        for (i, n) in self.open.iter().enumerate() {
            let _ = writeln!(
                out,
                "egress_shard_connections{{shard=\"{i}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }

    /// Runs `job` on `shard`; if that shard is gone (its thread failed to start), here.
    pub fn send(&self, shard: usize, job: Job) {
        match self.inboxes.get(shard) {
            Some(tx) => {
                if let Err(returned) = tx.send(job) {
                    (returned.0)();
                }
            }
            None => job(),
        }
    }
}

/// Starts the jobs other shards hand to this one, until every sender is gone.
pub async fn run_inbox(mut inbox: UnboundedReceiver<Job>) {
    while let Some(job) = inbox.recv().await {
        job();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_go_to_the_least_loaded_shard_and_leave_with_their_load() {
        let (shards, _inboxes) = Shards::new(3);
        let a = shards.assign();
        assert_eq!(a.shard(), 0, "a tie goes to the lowest shard");
        drop(a);
        let a = shards.assign();
        assert_eq!(a.shard(), 0, "sequential connections stay on one shard");
        let b = shards.assign();
        let c = shards.assign();
        assert_eq!((b.shard(), c.shard()), (1, 2));
        drop(b);
        let d = shards.assign();
        assert_eq!(d.shard(), 1, "a freed place is reused");
        let e = shards.assign();
        assert_eq!(e.shard(), 0);
    }

    #[test]
    fn each_thread_has_its_own_index() {
        enter(3);
        assert_eq!(index(), 3);
        let other = std::thread::spawn(index).join().ok();
        assert_eq!(other, Some(0));
    }
}
