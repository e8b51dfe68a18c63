//! Write-behind of a data set while it arrives: its bytes go to the handler's
//! [`DataSetSink`] on a blocking thread, in chunks, while the association keeps reading.
//!
//! One association is serial (the sender waits for each response), so a durable write that
//! starts only after the last byte adds its whole duration to every instance. Here the PDVs'
//! own buffers are gathered as they arrive (moved, not copied: the assembler keeps its own copy
//! of the data set); a full chunk of them is written by `spawn_blocking`, in one gathered write,
//! while the next one fills, so the runtime's threads never block on the file system. At most
//! one chunk is being written and one filling: memory is bounded by
//! [`DataSetStream::memory`] per association, reserved from the receive budget without waiting
//! (when the budget has no room the data set is simply written at the end, as without
//! streaming).
//!
//! A write that takes longer than the stream's stall limit (the association's idle timeout)
//! fails the stream too: a hung disk must not hold the association; the write goes on in the
//! background and its sink is dropped when it ends.
//!
//! A sink that fails stops the stream (the rest is not written); the handler learns it from
//! [`crate::Streamed`] and still has the whole data set in memory. A stream that is not finished
//! (refused, aborted, association lost) has its sink dropped on a blocking thread, which is
//! where the handler's sink removes what it wrote.

use std::time::Duration;

use tokio::task::JoinHandle;

use crate::budget::Reservation;
use crate::DataSetSink;

/// Bytes handed to the sink in one write (the last PDV may take a chunk past it).
const CHUNK: usize = 1 << 20;

/// A sink and the chunk being filled for it.
pub(crate) struct DataSetStream<S: DataSetSink> {
    /// The sink when no write is running.
    idle: Option<S>,
    /// The write running on a blocking thread; gives the sink back.
    writing: Option<JoinHandle<Result<S, String>>>,
    /// PDV buffers not yet handed to the sink, and their length in all.
    pending: Vec<Vec<u8>>,
    pending_len: usize,
    /// The first failure; later bytes are dropped.
    failed: Option<String>,
    /// The longest one write may take before the stream fails.
    stall_limit: Duration,
    /// Budget memory for the two chunks; given back with the stream.
    _memory: Reservation,
}

impl<S: DataSetSink> DataSetStream<S> {
    /// Memory a stream holds at most, for a peer whose PDVs are at most `max_pdv` bytes: the
    /// chunk being written and the one filling, each at most a chunk and one PDV.
    pub(crate) fn memory(max_pdv: usize) -> usize {
        2 * CHUNK.saturating_add(max_pdv)
    }

    /// A stream into `sink`, its memory held by `memory`; a write slower than `stall_limit`
    /// fails it.
    pub(crate) fn new(sink: S, memory: Reservation, stall_limit: Duration) -> Self {
        DataSetStream {
            idle: Some(sink),
            writing: None,
            pending: Vec::new(),
            pending_len: 0,
            failed: None,
            stall_limit,
            _memory: memory,
        }
    }

    /// Takes the next PDV buffer of the data set; waits only when a chunk is full and the
    /// previous one is still being written.
    pub(crate) async fn push(&mut self, bytes: Vec<u8>) {
        if self.pending_len >= CHUNK {
            self.flush().await;
        }
        if self.failed.is_none() && !bytes.is_empty() {
            self.pending_len += bytes.len();
            self.pending.push(bytes);
        }
    }

    /// Waits for the running write, then starts writing the pending bytes.
    async fn flush(&mut self) {
        self.settle().await;
        let Some(mut sink) = self.idle.take() else {
            return;
        };
        let chunk = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        self.writing = Some(tokio::task::spawn_blocking(move || {
            // On failure the sink is dropped here, on this blocking thread.
            sink.write_parts(&chunk).map(|()| sink)
        }));
    }

    /// Waits for the running write, if any, and takes its sink back (or its failure).
    async fn settle(&mut self) {
        let Some(writing) = self.writing.take() else {
            return;
        };
        // On a stall the handle is dropped: the write goes on, and its sink is dropped on its
        // blocking thread when it ends (which removes what it wrote).
        match tokio::time::timeout(self.stall_limit, writing).await {
            Ok(Ok(Ok(sink))) => self.idle = Some(sink),
            Ok(Ok(Err(e))) => self.fail(e),
            Ok(Err(e)) => self.fail(format!("write task failed: {e}")),
            Err(_) => self.fail(format!(
                "write-behind stalled: a write took over {} s",
                self.stall_limit.as_secs_f64()
            )),
        }
    }

    fn fail(&mut self, error: String) {
        self.failed = Some(error);
        self.pending = Vec::new();
        self.pending_len = 0;
    }

    /// Writes what is pending and gives the sink back, every byte pushed written to it, or the
    /// first failure.
    pub(crate) async fn finish(mut self) -> Result<S, String> {
        if !self.pending.is_empty() {
            self.flush().await;
        }
        self.settle().await;
        match (self.failed.take(), self.idle.take()) {
            (None, Some(sink)) => Ok(sink),
            (Some(e), sink) => {
                discard_sink(sink);
                Err(e)
            }
            (None, None) => Err("data set stream lost its sink".into()),
        }
    }

    /// Abandons the stream: the sink is dropped on a blocking thread (after a running write).
    pub(crate) fn discard(mut self) {
        discard_sink(self.idle.take());
        if let Some(writing) = self.writing.take() {
            tokio::spawn(async move {
                if let Ok(Ok(sink)) = writing.await {
                    discard_sink(Some(sink));
                }
            });
        }
    }
}

/// Drops `sink` on a blocking thread: a sink's drop may touch the file system.
pub(crate) fn discard_sink<S: DataSetSink>(sink: Option<S>) {
    if let Some(sink) = sink {
        drop(tokio::task::spawn_blocking(move || drop(sink)));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::budget::MemoryBudget;

    /// A stall limit no healthy test write comes near.
    const LIMIT: Duration = Duration::from_secs(30);

    /// Records what it was given; fails the write that would pass `fail_past` bytes.
    struct Recorder {
        got: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        fail_past: usize,
        dropped: Arc<Mutex<bool>>,
    }

    impl DataSetSink for Recorder {
        fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
            let mut got = self.got.lock().unwrap();
            if got.len() + bytes.len() > self.fail_past {
                return Err("disk full".into());
            }
            got.extend_from_slice(bytes);
            Ok(())
        }

        fn write_parts(&mut self, parts: &[Vec<u8>]) -> Result<(), String> {
            *self.writes.lock().unwrap() += 1;
            parts.iter().try_for_each(|part| self.write(part))
        }
    }

    impl Drop for Recorder {
        fn drop(&mut self) {
            *self.dropped.lock().unwrap() = true;
        }
    }

    type Shared<T> = Arc<Mutex<T>>;

    fn recorder(fail_past: usize) -> (Recorder, Shared<Vec<u8>>, Shared<bool>) {
        let got = Arc::default();
        let dropped = Arc::default();
        let rec = Recorder {
            got: Arc::clone(&got),
            writes: Arc::default(),
            fail_past,
            dropped: Arc::clone(&dropped),
        };
        (rec, got, dropped)
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_byte_arrives_in_order_in_chunks() {
        let budget = MemoryBudget::new(64 << 20);
        let (rec, got, _) = recorder(usize::MAX);
        let writes = Arc::clone(&rec.writes);
        let mut stream = DataSetStream::new(rec, budget.reservation(), LIMIT);
        let want = data(10 * CHUNK + 12_345);
        for pdv in want.chunks(16_372) {
            stream.push(pdv.to_vec()).await;
        }
        let sink = stream.finish().await.expect("no failure");
        assert!(*got.lock().unwrap() == want);
        // Chunked: one gathered write per chunk of PDVs (a chunk ends at the PDV that fills
        // it) and one for the rest, not one per PDV.
        let writes = *writes.lock().unwrap();
        let expected = want.len() / (CHUNK + 16_372)..=want.len() / CHUNK + 1;
        assert!(expected.contains(&writes), "{writes} writes");
        drop(sink);
    }

    /// Writes into a file (page cache), as the spool's sink does before its commit.
    struct FileSink(std::fs::File);

    impl DataSetSink for FileSink {
        fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
            std::io::Write::write_all(&mut self.0, bytes).map_err(|e| e.to_string())
        }
    }

    fn file_sink(name: &str) -> FileSink {
        let path =
            std::env::temp_dir().join(format!("radroute-stream-{}-{name}", std::process::id()));
        let file = std::fs::File::create(&path).expect("create");
        let _ = std::fs::remove_file(&path);
        FileSink(file)
    }

    /// The receive task's time for a 10 MB data set in 64 KiB PDVs, write-behind by
    /// spawn_blocking per 1 MiB chunk (this module) vs one writer thread per data set fed by a
    /// bounded channel: medians of 21 (ms), printed. Not a pass/fail test.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "measurement: cargo test -p radroute-receive --release -- --ignored --nocapture write_behind_cost"]
    async fn write_behind_cost() {
        let data = data(10_000_000);
        let budget = MemoryBudget::new(64 << 20);
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let (mut pooled, mut thread) = (Vec::new(), Vec::new());
        for n in 0..21 {
            let t = std::time::Instant::now();
            let mut stream =
                DataSetStream::new(file_sink(&format!("p{n}")), budget.reservation(), LIMIT);
            for pdv in data.chunks(65_530) {
                stream.push(pdv.to_vec()).await;
            }
            drop(stream.finish().await.expect("written"));
            pooled.push(t.elapsed().as_secs_f64() * 1e3);

            let t = std::time::Instant::now();
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(1);
            let mut sink = file_sink(&format!("t{n}"));
            let writer = std::thread::spawn(move || {
                while let Some(chunk) = rx.blocking_recv() {
                    sink.write(&chunk).expect("write");
                }
                sink
            });
            let mut pending = Vec::with_capacity(CHUNK);
            for pdv in data.chunks(65_530) {
                if pending.len() + pdv.len() > CHUNK {
                    let full = std::mem::replace(&mut pending, Vec::with_capacity(CHUNK));
                    tx.send(full).await.expect("send");
                }
                pending.extend_from_slice(pdv);
            }
            tx.send(pending).await.expect("send");
            drop(tx);
            let sink = tokio::task::spawn_blocking(move || writer.join().expect("join"))
                .await
                .expect("join");
            drop(sink);
            thread.push(t.elapsed().as_secs_f64() * 1e3);
        }
        println!(
            "10 MB in 64 KiB PDVs, receive task until all written (median of 21): spawn_blocking per chunk {:.2} ms, writer thread + channel {:.2} ms",
            median(pooled),
            median(thread)
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_stops_the_stream_and_drops_the_sink() {
        let budget = MemoryBudget::new(64 << 20);
        let (rec, got, dropped) = recorder(3 * CHUNK);
        let mut stream = DataSetStream::new(rec, budget.reservation(), LIMIT);
        for pdv in data(8 * CHUNK).chunks(65_536) {
            stream.push(pdv.to_vec()).await;
        }
        let err = stream.finish().await.err().expect("failure reported");
        assert_eq!(err, "disk full");
        assert!(got.lock().unwrap().len() <= 3 * CHUNK);
        assert!(*dropped.lock().unwrap(), "sink dropped on failure");
    }

    /// Blocks every write until `release` gets a message or is dropped (a hung disk); notes
    /// its drop.
    struct Hung {
        release: std::sync::mpsc::Receiver<()>,
        dropped: Arc<Mutex<bool>>,
    }

    impl DataSetSink for Hung {
        fn write(&mut self, _bytes: &[u8]) -> Result<(), String> {
            self.release.recv().map_err(|e| e.to_string())
        }
    }

    impl Drop for Hung {
        fn drop(&mut self) {
            *self.dropped.lock().unwrap() = true;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_that_stalls_fails_the_stream_within_its_limit() {
        let budget = MemoryBudget::new(64 << 20);
        let (release, hung) = std::sync::mpsc::channel();
        let dropped = Arc::new(Mutex::new(false));
        let sink = Hung {
            release: hung,
            dropped: Arc::clone(&dropped),
        };
        let limit = Duration::from_millis(300);
        let mut stream = DataSetStream::new(sink, budget.reservation(), limit);
        let started = std::time::Instant::now();
        // The first chunk's write hangs; the second chunk waits for it, then gives up.
        let fed = async {
            for pdv in data(3 * CHUNK).chunks(65_536) {
                stream.push(pdv.to_vec()).await;
            }
            stream.finish().await
        };
        let err = tokio::time::timeout(Duration::from_secs(10), fed)
            .await
            .expect("the stream gives up on the stalled write")
            .err()
            .expect("a stalled write fails the stream");
        assert!(err.contains("stalled"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert!(
            !*dropped.lock().unwrap(),
            "the hung write still holds its sink"
        );
        // The disk answers at last (here: with an error): the write ends and its sink is
        // dropped, not reused.
        drop(release);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while !*dropped.lock().unwrap() {
            assert!(std::time::Instant::now() < deadline, "sink never dropped");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_discarded_stream_drops_its_sink_and_returns_its_memory() {
        let budget = MemoryBudget::new(64 << 20);
        let (rec, _, dropped) = recorder(usize::MAX);
        let mut memory = budget.reservation();
        assert!(memory.try_cover(DataSetStream::<Recorder>::memory(65_536)));
        let mut stream = DataSetStream::new(rec, memory, LIMIT);
        for pdv in data(3 * CHUNK).chunks(65_536) {
            stream.push(pdv.to_vec()).await;
        }
        stream.discard();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !*dropped.lock().unwrap() {
            assert!(std::time::Instant::now() < deadline, "sink never dropped");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(budget.available(), 64 << 20);
    }
}
