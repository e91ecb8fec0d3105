//! Transactions: atomic writes to any partitions of any topics, together with a consumer group's
//! offsets, as Kafka's transactional producer does.
//!
//! This module is private: the user-facing documentation (with an example) is on
//! [`TransactionalProducer`].

pub(crate) use crate::coordinator::txn as coordinator;

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, MutexGuard};

use crate::consumer::{ConsumerGroupMetadata, OffsetAndMetadata};
use crate::coordinator::offsets::OFFSETS_TOPIC;
use crate::error::{Error, ErrorKind, Result};
use crate::producer::{Metadata, ProducerRecord, RecordMetadata, Sequencer};
use crate::store::Store;
use crate::topic::TopicPartition;
use coordinator::{invalid_state, Member, OpenTxn, Target, TxnEntry};

/// Settings of a transactional producer.
///
/// Built from `TransactionConfig::default()` with one setter per setting, e.g.
/// `TransactionConfig::default().timeout(..)`, and read with
/// the `get_` getters (see ARCHITECTURE.md, "Configuration style").
#[derive(Clone, Debug)]
pub struct TransactionConfig {
    pub(crate) timeout: Duration,
}

impl TransactionConfig {
    /// A transaction open longer than this is aborted by the store (Kafka's
    /// `transaction.timeout.ms`). Default: 60 s.
    #[must_use = "a setter returns the changed configuration"]
    pub fn timeout(mut self, timeout: Duration) -> TransactionConfig {
        self.timeout = timeout;
        self
    }

    /// The [`timeout`](Self::timeout) setting.
    pub fn get_timeout(&self) -> Duration {
        self.timeout
    }
}

impl Default for TransactionConfig {
    fn default() -> TransactionConfig {
        TransactionConfig {
            timeout: Duration::from_secs(60),
        }
    }
}

/// A producer whose sends and offset commits become visible atomically: atomic writes to any
/// partitions of any topics, together with a consumer group's offsets, as Kafka's
/// transactional producer does. `Send + Sync`; its calls are serialised.
///
/// ```
/// use riverbed::{ConsumerConfig, IsolationLevel, ProducerRecord, Store, TopicConfig};
///
/// let dir = tempfile::tempdir()?;
/// let store = Store::open(dir.path())?;
/// store.create_topic("out", TopicConfig::new(1))?;
/// let producer = store.transactional_producer("copier")?;
///
/// producer.begin()?;
/// producer.send(ProducerRecord::new("out").key("k").value("kept"))?;
/// producer.commit()?;
///
/// producer.begin()?;
/// producer.send(ProducerRecord::new("out").key("k").value("dropped"))?;
/// producer.abort()?;
///
/// let mut consumer =
///     store.consumer(ConsumerConfig::default().isolation_level(IsolationLevel::ReadCommitted))?;
/// consumer.assign(&[riverbed::TopicPartition::new("out", 0)])?;
/// consumer.seek_to_beginning(&[riverbed::TopicPartition::new("out", 0)])?;
/// let values: Vec<Vec<u8>> = consumer
///     .poll(std::time::Duration::from_millis(100))?
///     .iter()
///     .map(|r| r.value().unwrap().to_vec())
///     .collect();
/// assert_eq!(values, [b"kept".to_vec()]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Guarantees (FORMAT.md section 8.3 has the durable records):
/// - **Atomic**: a `read_committed` consumer sees every record and every offset of a committed
///   transaction and none of an aborted one, also after a crash at any point. `commit` returns
///   once the decision is durable; a crash after that completes the commit at the next open, a
///   crash before it aborts the transaction.
/// - **Fencing**: a second `transactional_producer` with the same id aborts the first one's
///   open transaction; every later call of the first returns [`Fenced`](ErrorKind::Fenced).
/// - **Timeout**: a transaction open longer than [`TransactionConfig::timeout`] is aborted by the
///   store; the producer's next `send`, `send_offsets` or `commit` fails with
///   [`InvalidTransactionState`](ErrorKind::InvalidTransactionState), and `abort` acknowledges it.
/// - **Cost** with an `EveryAppend` flush policy: each send is fsynced as usual; a commit adds one
///   fsync (the decision), since its markers need none of their own (see `coordinator`). With
///   other policies a commit first flushes each partition the transaction wrote.
pub struct TransactionalProducer {
    store: Store,
    entry: Arc<Mutex<TxnEntry>>,
    producer_id: i64,
    epoch: i16,
    config: TransactionConfig,
}

impl std::fmt::Debug for TransactionalProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionalProducer")
            .field("producer_id", &self.producer_id)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl Store {
    /// A transactional producer for `transactional_id` with default settings.
    ///
    /// # Errors
    /// See [`transactional_producer_with`](Self::transactional_producer_with).
    pub fn transactional_producer(&self, transactional_id: &str) -> Result<TransactionalProducer> {
        self.transactional_producer_with(transactional_id, TransactionConfig::default())
    }

    /// A transactional producer for `transactional_id`. A producer that had this id before is
    /// fenced: its open transaction is aborted and its later calls fail with
    /// [`Fenced`](ErrorKind::Fenced).
    ///
    /// # Errors
    /// [`InvalidConfig`](ErrorKind::InvalidConfig) for an empty id (or one over 32767 bytes) or
    /// a zero timeout; [`Io`](ErrorKind::Io) if the registration cannot be made durable;
    /// [`NoSpace`](ErrorKind::NoSpace) if the disk has no room for it, or for the markers that
    /// end the transactions a crash left open (recovery at open puts those off on a full disk;
    /// retry once there is room).
    pub fn transactional_producer_with(
        &self,
        transactional_id: &str,
        config: TransactionConfig,
    ) -> Result<TransactionalProducer> {
        if transactional_id.is_empty() || transactional_id.len() > i16::MAX as usize {
            return Err(Error::config(
                "transactional_id",
                "must be 1 to 32767 bytes long",
            ));
        }
        if config.timeout.is_zero() {
            return Err(Error::config("timeout", "must be above zero"));
        }
        let store = self;
        // Transactions a crash left open and a full disk kept recovery from ending come first:
        // this id's new epoch must not write before the marker of its previous transaction.
        store.txns().finish_recovery(store.offsets())?;
        let entry = store.txns().entry(transactional_id)?;
        let (producer_id, epoch) = {
            let mut e = entry.lock();
            store.txns().init(&mut e, store.offsets())?;
            (e.producer_id, e.epoch)
        };
        Ok(TransactionalProducer {
            store: self.clone(),
            entry,
            producer_id,
            epoch,
            config,
        })
    }
}

impl TransactionalProducer {
    /// The entry, if this producer still owns it.
    fn entry(&self) -> Result<MutexGuard<'_, TxnEntry>> {
        let e = self.entry.lock();
        if e.producer_id != self.producer_id || e.epoch != self.epoch {
            return Err(ErrorKind::Fenced {
                reason: format!(
                    "transactional id {:?} has a newer producer (id {}, epoch {}; this one has \
                     epoch {})",
                    e.id, e.producer_id, e.epoch, self.epoch
                ),
            }
            .into());
        }
        Ok(e)
    }

    /// The entry with an open transaction that may still send.
    fn open_entry(&self, what: &str) -> Result<MutexGuard<'_, TxnEntry>> {
        let e = self.entry()?;
        if e.aborted_by_timeout {
            return Err(invalid_state(&format!(
                "the transaction was aborted after its timeout of {:?}; call abort() before \
                 {what}",
                self.config.timeout
            )));
        }
        match &e.open {
            None => Err(invalid_state(&format!(
                "{what} outside a transaction: call begin() first"
            ))),
            Some(o) if o.failed.is_some() => Err(invalid_state(&format!(
                "{what} after a failed send: abort the transaction"
            ))),
            Some(_) => Ok(e),
        }
    }

    /// The producer id and epoch.
    pub fn producer_id_and_epoch(&self) -> (i64, i16) {
        (self.producer_id, self.epoch)
    }

    /// Starts a transaction.
    ///
    /// # Errors
    /// [`Fenced`](ErrorKind::Fenced); [`InvalidTransactionState`](ErrorKind::InvalidTransactionState)
    /// if a transaction is open (or was aborted by its timeout and not yet acknowledged).
    pub fn begin(&self) -> Result<()> {
        let mut e = self.entry()?;
        // The markers of the previous transaction, if a full disk held them back, come first.
        let store = &self.store;
        store.txns().finish_markers(&mut e, store.offsets())?;
        if e.open.is_some() || e.aborted_by_timeout {
            return Err(invalid_state(
                "begin while a transaction is open: commit or abort it first",
            ));
        }
        e.open = Some(OpenTxn {
            started: Instant::now(),
            timeout: self.config.timeout,
            members: Vec::new(),
            failed: None,
        });
        Ok(())
    }

    /// Sends a record in the open transaction.
    ///
    /// # Errors
    /// As [`send_batch`](Self::send_batch).
    pub fn send<B: AsRef<[u8]>>(&self, record: ProducerRecord<B>) -> Result<RecordMetadata> {
        self.send_batch([record])?
            .pop()
            .ok_or_else(|| Error::invalid("a sent record has no metadata"))
    }

    /// Sends records in the open transaction, one batch per partition, and returns their
    /// metadata in the order given.
    ///
    /// # Errors
    /// [`Fenced`](ErrorKind::Fenced); [`InvalidTransactionState`](ErrorKind::InvalidTransactionState)
    /// outside a transaction; the errors of [`Producer::send`](crate::Producer::send). Validation
    /// errors change nothing; an append error leaves the transaction able only to abort.
    pub fn send_batch<B: AsRef<[u8]>>(
        &self,
        records: impl IntoIterator<Item = ProducerRecord<B>>,
    ) -> Result<Vec<RecordMetadata>> {
        self.send_records(records, Metadata::PerRecord)
    }

    /// Sends records in the open transaction like [`send_batch`](Self::send_batch) (same
    /// batching, validation and errors) without reporting where each went, which saves
    /// building a [`RecordMetadata`] per record (see [`Producer::send_all`](crate::Producer::send_all)).
    ///
    /// # Errors
    /// As [`send_batch`](Self::send_batch).
    pub fn send_all<B: AsRef<[u8]>>(
        &self,
        records: impl IntoIterator<Item = ProducerRecord<B>>,
    ) -> Result<()> {
        self.send_records(records, Metadata::Skip).map(|_| ())
    }

    fn send_records<B: AsRef<[u8]>>(
        &self,
        records: impl IntoIterator<Item = ProducerRecord<B>>,
        metadata: Metadata,
    ) -> Result<Vec<RecordMetadata>> {
        let mut guard = self.open_entry("send")?;
        let e = &mut *guard;
        let mut seq = Sequencer {
            producer_id: e.producer_id,
            epoch: e.epoch,
            next: std::mem::take(&mut e.sequences),
            batch_size: crate::producer::ProducerConfig::default().batch_size,
        };
        let Some(open) = e.open.as_mut() else {
            return Err(invalid_state("send outside a transaction"));
        };
        let result = seq.send(
            &self.store,
            &records.into_iter().collect::<Vec<_>>(),
            true,
            metadata,
            |tp, part, first| {
                if !open.members.iter().any(|(t, _)| t == tp) {
                    open.members.push((
                        tp.clone(),
                        Member {
                            target: Target::Partition(Arc::clone(part)),
                            first_sequence: first,
                        },
                    ));
                }
            },
        );
        e.sequences = seq.next;
        if let Err(err) = &result {
            if is_write_failure(err) {
                open.failed = Some(err.to_string());
            }
        }
        result
    }

    /// Adds a consumer group's offsets to the open transaction (Kafka's
    /// `sendOffsetsToTransaction`): they become the group's committed offsets when the
    /// transaction commits, and are dropped if it aborts.
    ///
    /// # Errors
    /// [`Fenced`](ErrorKind::Fenced); [`InvalidTransactionState`](ErrorKind::InvalidTransactionState)
    /// outside a transaction; [`CommitFailed`](ErrorKind::CommitFailed) if the member in `group`
    /// no longer owns one of the partitions (the group rebalanced), in which case nothing is
    /// written.
    pub fn send_offsets(
        &self,
        group: &ConsumerGroupMetadata,
        offsets: &[(TopicPartition, OffsetAndMetadata)],
    ) -> Result<()> {
        let mut guard = self.open_entry("send_offsets")?;
        if offsets.is_empty() {
            return Ok(());
        }
        let store = &self.store;
        let tps: Vec<&TopicPartition> = offsets.iter().map(|(tp, _)| tp).collect();
        let g = store.existing_group(&group.group_id);
        match g {
            Some(g) => g.check_commit(group.member_id.as_deref(), group.generation, &tps)?,
            None if group.member_id.is_some() => {
                return Err(ErrorKind::CommitFailed {
                    reason: format!("group {:?} has no members", group.group_id),
                }
                .into())
            }
            None => {}
        }
        let e = &mut *guard;
        let offsets_tp = TopicPartition::new(OFFSETS_TOPIC, 0);
        let seq = e.sequences.get(&offsets_tp).copied().unwrap_or(0);
        let fields = crate::record::ProducerFields {
            producer_id: e.producer_id,
            producer_epoch: e.epoch,
            base_sequence: seq,
        };
        let Some(open) = e.open.as_mut() else {
            return Err(invalid_state("send_offsets outside a transaction"));
        };
        match store
            .offsets()
            .commit_transactional(&group.group_id, offsets, fields)
        {
            Ok(n) => {
                if !open.members.iter().any(|(t, _)| *t == offsets_tp) {
                    open.members.push((
                        offsets_tp.clone(),
                        Member {
                            target: Target::Offsets,
                            first_sequence: seq,
                        },
                    ));
                }
                let next = (i64::from(seq) + i64::from(n)) % (i64::from(i32::MAX) + 1);
                e.sequences.insert(offsets_tp, next as i32);
                Ok(())
            }
            Err(err) => {
                if is_write_failure(&err) {
                    open.failed = Some(err.to_string());
                }
                Err(err)
            }
        }
    }

    /// Commits the open transaction: when this returns, every record and offset of it is
    /// durable and visible to `read_committed` consumers — unless the disk was full when its
    /// markers were written: the commit is decided and stands (Kafka answers `EndTxn` at the
    /// same point), and the markers, which make it visible, are written as soon as there is room
    /// (by the store's maintenance thread, or before this producer's next call).
    ///
    /// # Errors
    /// [`Fenced`](ErrorKind::Fenced); [`InvalidTransactionState`](ErrorKind::InvalidTransactionState)
    /// without an open transaction, after a failed send, or after the timeout aborted it;
    /// [`NoSpace`](ErrorKind::NoSpace) before the decision (nothing decided: retry `commit`, or
    /// abort); [`Io`](ErrorKind::Io). An error before the decision is durable leaves the
    /// transaction open (abort it); an I/O error after it (writing markers) leaves the commit
    /// to be completed at the next open.
    pub fn commit(&self) -> Result<()> {
        let mut e = self.entry()?;
        if e.aborted_by_timeout {
            return Err(invalid_state(&format!(
                "the transaction was aborted after its timeout of {:?}; call abort()",
                self.config.timeout
            )));
        }
        let store = &self.store;
        let result = store.txns().commit(&mut e, store.offsets());
        store.notify().notify();
        result
    }

    /// Aborts the open transaction (or acknowledges one its timeout aborted): none of its
    /// records or offsets will be visible to `read_committed` consumers.
    ///
    /// # Errors
    /// [`Fenced`](ErrorKind::Fenced); [`InvalidTransactionState`](ErrorKind::InvalidTransactionState)
    /// without an open transaction; [`Io`](ErrorKind::Io) writing a marker (the transaction is
    /// then aborted at the next open).
    pub fn abort(&self) -> Result<()> {
        let mut e = self.entry()?;
        if e.aborted_by_timeout {
            e.aborted_by_timeout = false;
            return Ok(());
        }
        if e.open.is_none() {
            return Err(invalid_state("abort without begin"));
        }
        let store = &self.store;
        let result = store.txns().abort(&mut e, store.offsets());
        store.notify().notify();
        result
    }
}

/// Whether a send error may have written something (so the transaction can only abort), as
/// opposed to a validation error that changed nothing.
fn is_write_failure(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Io { .. }
            | ErrorKind::Poisoned { .. }
            | ErrorKind::Fenced { .. }
            | ErrorKind::OutOfOrderSequence { .. }
    )
}

#[allow(dead_code)]
fn assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<TransactionalProducer>();
}
