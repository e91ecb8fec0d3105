//! [`ProduceQueue`]: concurrent sends to one partition, coalesced into batch appends.

use std::collections::VecDeque;
use std::time::Duration;

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::log::Log;
use crate::record::{BatchBuilder, Compression, RecordBatch};

/// Coalesces concurrent sends to one partition into batch appends.
#[derive(Default)]
pub(crate) struct ProduceQueue {
    pending: Mutex<Pending>,
    /// Held by the sender that appends; also guards the results others collect.
    appender: Mutex<Results>,
}

#[derive(Default)]
struct Pending {
    next_seq: u64,
    /// Open batches, oldest first, each with the sequence number of its first record.
    open: Vec<(u64, BatchBuilder)>,
    /// Emptied builders, kept so that a steady stream of sends allocates nothing.
    free: Vec<BatchBuilder>,
}

/// The outcome of one coalesced append: (first seq, record count, (base offset, stored
/// timestamp) or the error, receipts left to collect).
type Appended = (u64, u64, Result<(u64, i64)>, u64);

#[derive(Default)]
struct Results {
    done: VecDeque<Appended>,
    /// The encoded batch, reused.
    encoded: Option<RecordBatch>,
    /// Emptied builders, handed back to `Pending::free` at the next append.
    spare: Vec<BatchBuilder>,
}

impl Results {
    fn take(&mut self, seq: u64) -> Option<Result<(u64, i64)>> {
        let i = self
            .done
            .iter()
            .position(|(first, n, _, _)| seq >= *first && seq < first + n)?;
        let entry = &mut self.done[i];
        let out = match &entry.2 {
            Ok((base, ts)) => Ok((base + (seq - entry.0), *ts)),
            Err(e) => Err(e.duplicate()),
        };
        entry.3 -= 1;
        if entry.3 == 0 {
            self.done.remove(i);
        }
        Some(out)
    }
}

impl ProduceQueue {
    /// Queues a record (`key`, `value`, `headers`, `timestamp`) and returns its offset and the
    /// batch's stored max timestamp once appended. Batches hold up to `batch_size` bytes (and
    /// the log's `max_message_bytes`); the sender that appends first waits `linger` for others.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &self,
        log: &Log,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
        timestamp: i64,
        compression: Compression,
        batch_size: usize,
        linger: Duration,
    ) -> Result<(u64, i64)> {
        let size = BatchBuilder::record_size_upper_bound(key, value, headers);
        let max_batch = batch_size.min(log.config().max_message_bytes).max(1);
        let seq = {
            let mut p = self.pending.lock();
            let seq = p.next_seq;
            p.next_seq += 1;
            let need_new = match p.open.last() {
                None => true,
                Some((_, b)) => !b.is_empty() && b.size_in_bytes() + size > max_batch,
            };
            if need_new {
                let builder = match p.free.pop() {
                    Some(b) if b.compression() == compression => b,
                    _ => BatchBuilder::new(compression),
                };
                p.open.push((seq, builder));
            }
            if let Some((_, b)) = p.open.last_mut() {
                b.append(timestamp, key, value, headers);
            }
            seq
        };
        let mut results = self.appender.lock();
        if let Some(r) = results.take(seq) {
            return r;
        }
        if !linger.is_zero() {
            std::thread::sleep(linger);
        }
        let batches = {
            let mut p = self.pending.lock();
            // Builders emptied by the previous append go back for reuse in the same visit.
            p.free.append(&mut results.spare);
            p.free.truncate(4);
            std::mem::take(&mut p.open)
        };
        let mut encoded = results.encoded.take().unwrap_or_else(RecordBatch::empty);
        for (first, mut builder) in batches {
            let n = builder.len() as u64;
            let outcome = builder
                .finish_into(&mut encoded)
                .and_then(|()| log.append(&encoded))
                .map(|info| (info.base_offset, info.timestamp));
            results.done.push_back((first, n, outcome, n));
            builder.clear();
            results.spare.push(builder);
        }
        results.encoded = Some(encoded);
        results.take(seq).unwrap_or_else(|| {
            Err(Error::invalid(
                "internal error: a queued record was not appended (please report)",
            ))
        })
    }
}
