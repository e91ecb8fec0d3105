//! The one error type of the crate.
//!
//! Every fallible call returns [`Error`], a boxed [`ErrorKind`] so that `Result<T, Error>` stays
//! one pointer wide on the hot path. Errors about bytes read from disk name the file, the byte
//! position and what was expected there; I/O errors keep the original [`std::io::Error`] as their
//! [`source`](std::error::Error::source).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// The error type of every fallible Riverbed call. See [`ErrorKind`] for the cases.
pub struct Error(Box<ErrorKind>);

/// What went wrong.
#[derive(Debug)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operating-system I/O call failed.
    Io {
        /// What Riverbed was doing, e.g. "create segment file".
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The error the operating system returned.
        source: io::Error,
    },
    /// The file system had no room (`ENOSPC`, or `EDQUOT` for a quota) for a write that Riverbed
    /// makes room for before anything is written: a block reservation, a new file that could
    /// not be created or sized, a temp file of an atomic replace. Nothing of the operation was
    /// written or acknowledged, the log (or file) is as it was, and the same call succeeds once
    /// space is freed, without reopening anything. Retryable. (A failure of a write whose bytes
    /// may have reached the file, or of an fsync, is [`Io`](ErrorKind::Io) instead and poisons
    /// the log: see [`Poisoned`](ErrorKind::Poisoned).)
    NoSpace {
        /// What Riverbed was doing, e.g. "preallocate segment".
        op: &'static str,
        /// The file or directory that could not grow.
        path: PathBuf,
        /// The error the operating system returned.
        source: io::Error,
    },
    /// Bytes on disk (or bytes handed to a decoder) are not what the format says they must be.
    Corruption {
        /// The file holding the bad bytes, or `None` for bytes decoded in memory.
        path: Option<PathBuf>,
        /// Byte position of the problem within the file (or the buffer).
        position: u64,
        /// What the format requires at that position.
        expected: String,
        /// What was found instead.
        found: String,
    },
    /// A file was written by a newer (or unknown) version of the format.
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version number found in the file header.
        found: u16,
        /// The newest version this build reads.
        supported: u16,
    },
    /// A read asked for an offset outside `[log_start, log_end]` (an offset equal to `log_end` is
    /// in range: it reads nothing yet). From a consumer with `auto_offset_reset = None` this is
    /// Kafka's `OffsetOutOfRangeException`: its committed or sought position exists but is no
    /// longer (or not yet) in the log; `partition` then names the partition, and the position
    /// stays where it was until a seek.
    OffsetOutOfRange {
        /// The partition, when the read came through a consumer (`None` for a read of a bare
        /// [`Log`](crate::Log), which does not know its topic).
        partition: Option<crate::TopicPartition>,
        /// The offset asked for.
        requested: u64,
        /// The first offset still in the log.
        log_start: u64,
        /// The next offset to be written (the high watermark).
        log_end: u64,
    },
    /// A record or batch is larger than the configured maximum; nothing was written.
    RecordTooLarge {
        /// Its encoded size in bytes.
        size: usize,
        /// The configured maximum in bytes.
        max: usize,
    },
    /// A record without a key was sent to a compacted log or topic (Kafka: "Compacted topic
    /// cannot accept message without key"); nothing was written.
    KeyRequired {
        /// Position of the first keyless record in its batch (0 for a single record).
        record: u32,
    },
    /// A value given by the caller is not acceptable; nothing was changed.
    InvalidArgument(String),
    /// A configuration value is out of its allowed range.
    InvalidConfig {
        /// The field name.
        field: &'static str,
        /// Why the value was refused.
        reason: String,
    },
    /// Another handle (in this or another process) holds the directory's lock.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as the lock file names it.
        pid: Option<u32>,
    },
    /// The store's topic metadata does not account for what its directory holds: partition
    /// directories it does not name (or the metadata file is missing while partition
    /// directories exist), or partitions it names whose directory is gone. The store was not
    /// opened and nothing was changed: Riverbed never deletes data it cannot account for.
    /// Rebuild the metadata from the directories with `riverbed -d DIR topics
    /// rebuild-metadata` (or `Store::rebuild_metadata`).
    MetadataMismatch {
        /// The metadata file (`<store>/topics`).
        metadata: PathBuf,
        /// Whether the metadata file is missing.
        metadata_missing: bool,
        /// Directories holding partition data the metadata does not name.
        unaccounted: Vec<PathBuf>,
        /// Partition directories the metadata names that do not exist.
        missing: Vec<PathBuf>,
    },
    /// No topic has this name (and the store does not create topics automatically).
    UnknownTopic {
        /// The name asked for.
        topic: String,
    },
    /// A topic with this name already exists.
    TopicExists {
        /// The name.
        topic: String,
    },
    /// The topic has no such partition.
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },
    /// The consumer has no position for a partition it was not assigned.
    NotAssigned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// There is no committed offset for the partition, no position was set by a seek, and
    /// `auto_offset_reset` is `None` (Kafka's `NoOffsetForPartitionException`). A position that
    /// exists but lies outside the log is [`OffsetOutOfRange`](ErrorKind::OffsetOutOfRange).
    NoOffset {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
    /// A commit was refused because the member's view of the group is out of date: the group
    /// rebalanced (or the member was removed for not polling within `max_poll_interval`) and the
    /// partitions may belong to another member now. Poll to rejoin, then process and commit again.
    CommitFailed {
        /// Why.
        reason: String,
    },
    /// An earlier write or fsync failed, so the handle no longer knows what is durable.
    /// Reopen the log: recovery will find what actually reached the disk.
    Poisoned {
        /// The failure that poisoned the handle.
        cause: String,
        /// The operating system's error kind of that failure, when it was an I/O error
        /// ([`StorageFull`](io::ErrorKind::StorageFull) for a disk that filled up under a
        /// write or fsync, say), so that an application can tell a full disk from a failing
        /// one without parsing `cause`. Also returned by [`Error::io_kind`].
        io_kind: Option<io::ErrorKind>,
    },
    /// The log (or the store it belongs to) was closed: by [`Store::close`](crate::Store::close)
    /// while this handle (a producer, consumer or clone of the store) was still in use, or
    /// because the log was closed after a failure to start a new segment. Nothing was done.
    /// Open the store again to go on.
    Closed {
        /// The directory of the closed log.
        path: PathBuf,
    },
    /// A newer producer with the same transactional id (or a newer epoch of the same producer
    /// id) exists: this one may not write any more. Its open transaction was aborted.
    Fenced {
        /// Who was fenced, and by what.
        reason: String,
    },
    /// A batch's sequence number does not follow the last one the partition holds for its
    /// producer (a gap or a reordering), so it was refused.
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The sequence the partition expected next.
        expected: i32,
        /// The batch's base sequence.
        found: i32,
    },
    /// A transactional call made in a state where it is not allowed (commit without begin, a
    /// send outside a transaction, a transaction aborted by its timeout, ...). Nothing changed.
    InvalidTransactionState {
        /// What was wrong.
        reason: String,
    },
    /// A streams serde could not decode bytes into its type (bad length, invalid UTF-8, a null
    /// key or value for a type that has no null, ...).
    Deserialization {
        /// What was wrong with the bytes.
        reason: String,
    },
    /// A streams serde could not encode a value into bytes (a `Json<T>` whose `Serialize`
    /// failed, say). The record, state update or query that needed the bytes failed; nothing
    /// of it was written.
    Serialization {
        /// Which type, and why it has no bytes.
        reason: String,
    },
    /// User code in a streams application (a processor or a DSL closure) returned an error or
    /// panicked; the failed work was not committed, and the stream thread was stopped or
    /// replaced (see `streams::StreamsConfig::thread_error_handler`).
    StreamsProcessing {
        /// The task (input partition) and processor node where it happened.
        location: String,
        /// The error message or panic payload.
        reason: String,
        /// The error the user code or the runtime returned (`None` for a panic), so that a
        /// thread error handler can tell its kind (a
        /// [`Serialization`](ErrorKind::Serialization) failure, say) without parsing `reason`.
        /// Also the error's [`source`](std::error::Error::source).
        cause: Option<Error>,
    },
    /// An interactive query asked for a streams state store as a type the store is not: a
    /// key-value view of a window or session store, or a window view of a key-value store
    /// (Kafka's `InvalidStateStoreException` for a `QueryableStoreType` that does not accept
    /// the store). Nothing was read.
    InvalidStateStore {
        /// The store's name.
        store: String,
        /// The view asked for ("key-value store", "window store").
        requested: &'static str,
        /// What the store is ("window store", "session store", "key-value store", ...).
        actual: &'static str,
    },
}

impl Error {
    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0
    }

    /// Consumes the error and returns its kind.
    pub fn into_kind(self) -> ErrorKind {
        *self.0
    }

    /// True for operating-system I/O failures.
    pub fn is_io(&self) -> bool {
        matches!(*self.0, ErrorKind::Io { .. })
    }

    /// True when the file system was full and nothing was written: the call can be retried as
    /// is once space is freed (see [`ErrorKind::NoSpace`]).
    pub fn is_no_space(&self) -> bool {
        matches!(*self.0, ErrorKind::NoSpace { .. })
    }

    /// The operating system's error kind behind this error: that of an [`Io`](ErrorKind::Io)
    /// or [`NoSpace`](ErrorKind::NoSpace) error, or of the I/O failure that
    /// [`Poisoned`](ErrorKind::Poisoned) the handle. `None` for errors that are not about I/O.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match &*self.0 {
            ErrorKind::Io { source, .. } | ErrorKind::NoSpace { source, .. } => Some(source.kind()),
            ErrorKind::Poisoned { io_kind, .. } => *io_kind,
            _ => None,
        }
    }

    /// True when bytes on disk failed a format or checksum check.
    pub fn is_corruption(&self) -> bool {
        matches!(*self.0, ErrorKind::Corruption { .. })
    }

    /// An I/O error; a full file system ([`is_no_space_io`]) becomes
    /// [`NoSpace`](ErrorKind::NoSpace). Every site that can report a full disk reports it before
    /// anything is written, or goes through the log's poisoning, which turns it back into
    /// [`Io`](ErrorKind::Io) (see [`Error::into_unclean`]).
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        if is_no_space_io(&source) {
            return ErrorKind::NoSpace {
                op,
                path: path.into(),
                source,
            }
            .into();
        }
        ErrorKind::Io {
            op,
            path: path.into(),
            source,
        }
        .into()
    }

    /// The same failure as a plain [`Io`](ErrorKind::Io) error: for a full disk met after bytes
    /// may have reached a file (or by an fsync), which is not clean and not retryable.
    pub(crate) fn into_unclean(self) -> Error {
        match *self.0 {
            ErrorKind::NoSpace { op, path, source } => ErrorKind::Io { op, path, source }.into(),
            kind => Error(Box::new(kind)),
        }
    }

    /// A copy of this error for a second caller waiting on the same operation.
    pub(crate) fn duplicate(&self) -> Error {
        Error(Box::new((*self.0).clone()))
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        ErrorKind::InvalidArgument(msg.into()).into()
    }

    pub(crate) fn config(field: &'static str, reason: impl Into<String>) -> Error {
        ErrorKind::InvalidConfig {
            field,
            reason: reason.into(),
        }
        .into()
    }

    /// Shifts the position of an in-memory corruption error by `base` (where the decoded buffer
    /// starts within a larger one).
    pub(crate) fn in_file_position(mut self, base: u64) -> Error {
        if let ErrorKind::Corruption { position, .. } = &mut *self.0 {
            *position += base;
        }
        self
    }

    /// Attaches a file to a corruption error found by an in-memory decoder, shifting its
    /// position by where the buffer starts in that file.
    pub(crate) fn in_file(self, file: &std::path::Path, base_position: u64) -> Error {
        match *self.0 {
            ErrorKind::Corruption {
                path: None,
                position,
                expected,
                found,
            } => ErrorKind::Corruption {
                path: Some(file.to_path_buf()),
                position: base_position + position,
                expected,
                found,
            }
            .into(),
            kind => Error(Box::new(kind)),
        }
    }
}

impl From<ErrorKind> for Error {
    fn from(kind: ErrorKind) -> Error {
        Error(Box::new(kind))
    }
}

/// Whether an OS error means the file system (or the user's quota) is full.
pub(crate) fn is_no_space_io(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

fn clone_io(source: &io::Error) -> io::Error {
    match source.raw_os_error() {
        Some(code) => io::Error::from_raw_os_error(code),
        None => io::Error::new(source.kind(), source.to_string()),
    }
}

/// An I/O error cannot be cloned; its copy keeps the kind, the raw OS code when there is one,
/// and the message.
impl Clone for ErrorKind {
    fn clone(&self) -> ErrorKind {
        use ErrorKind as K;
        match self {
            K::Io { op, path, source } => K::Io {
                op,
                path: path.clone(),
                source: clone_io(source),
            },
            K::NoSpace { op, path, source } => K::NoSpace {
                op,
                path: path.clone(),
                source: clone_io(source),
            },
            K::Corruption {
                path,
                position,
                expected,
                found,
            } => K::Corruption {
                path: path.clone(),
                position: *position,
                expected: expected.clone(),
                found: found.clone(),
            },
            K::UnsupportedVersion {
                path,
                found,
                supported,
            } => K::UnsupportedVersion {
                path: path.clone(),
                found: *found,
                supported: *supported,
            },
            K::OffsetOutOfRange {
                partition,
                requested,
                log_start,
                log_end,
            } => K::OffsetOutOfRange {
                partition: partition.clone(),
                requested: *requested,
                log_start: *log_start,
                log_end: *log_end,
            },
            K::RecordTooLarge { size, max } => K::RecordTooLarge {
                size: *size,
                max: *max,
            },
            K::KeyRequired { record } => K::KeyRequired { record: *record },
            K::InvalidArgument(m) => K::InvalidArgument(m.clone()),
            K::InvalidConfig { field, reason } => K::InvalidConfig {
                field,
                reason: reason.clone(),
            },
            K::Locked { path, pid } => K::Locked {
                path: path.clone(),
                pid: *pid,
            },
            K::MetadataMismatch {
                metadata,
                metadata_missing,
                unaccounted,
                missing,
            } => K::MetadataMismatch {
                metadata: metadata.clone(),
                metadata_missing: *metadata_missing,
                unaccounted: unaccounted.clone(),
                missing: missing.clone(),
            },
            K::UnknownTopic { topic } => K::UnknownTopic {
                topic: topic.clone(),
            },
            K::TopicExists { topic } => K::TopicExists {
                topic: topic.clone(),
            },
            K::UnknownPartition {
                topic,
                partition,
                partitions,
            } => K::UnknownPartition {
                topic: topic.clone(),
                partition: *partition,
                partitions: *partitions,
            },
            K::NotAssigned { topic, partition } => K::NotAssigned {
                topic: topic.clone(),
                partition: *partition,
            },
            K::NoOffset { topic, partition } => K::NoOffset {
                topic: topic.clone(),
                partition: *partition,
            },
            K::CommitFailed { reason } => K::CommitFailed {
                reason: reason.clone(),
            },
            K::Poisoned { cause, io_kind } => K::Poisoned {
                cause: cause.clone(),
                io_kind: *io_kind,
            },
            K::Closed { path } => K::Closed { path: path.clone() },
            K::Fenced { reason } => K::Fenced {
                reason: reason.clone(),
            },
            K::OutOfOrderSequence {
                producer_id,
                expected,
                found,
            } => K::OutOfOrderSequence {
                producer_id: *producer_id,
                expected: *expected,
                found: *found,
            },
            K::InvalidTransactionState { reason } => K::InvalidTransactionState {
                reason: reason.clone(),
            },
            K::Deserialization { reason } => K::Deserialization {
                reason: reason.clone(),
            },
            K::Serialization { reason } => K::Serialization {
                reason: reason.clone(),
            },
            K::StreamsProcessing {
                location,
                reason,
                cause,
            } => K::StreamsProcessing {
                location: location.clone(),
                reason: reason.clone(),
                cause: cause.as_ref().map(|c| Error(Box::new(c.kind().clone()))),
            },
            K::InvalidStateStore {
                store,
                requested,
                actual,
            } => K::InvalidStateStore {
                store: store.clone(),
                requested,
                actual,
            },
        }
    }
}

/// Builds a corruption error for bytes decoded in memory (no file yet). Cold: decoders call it
/// only on bad input, and keeping it out of line keeps their hot paths small.
#[cold]
#[inline(never)]
pub(crate) fn corrupt(
    position: u64,
    expected: impl Into<String>,
    found: impl Into<String>,
) -> Error {
    ErrorKind::Corruption {
        path: None,
        position,
        expected: expected.into(),
        found: found.into(),
    }
    .into()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.0 {
            ErrorKind::Io { op, path, source } => {
                write!(f, "I/O error during {op} on {}: {source}", path.display())
            }
            ErrorKind::NoSpace { op, path, source } => write!(
                f,
                "no space on the file system for {op} on {} ({source}); nothing was written: free \
                 space and retry",
                path.display()
            ),
            ErrorKind::Corruption {
                path,
                position,
                expected,
                found,
            } => {
                match path {
                    Some(p) => write!(f, "corrupt data in {} at byte {position}", p.display())?,
                    None => write!(f, "corrupt data at byte {position}")?,
                }
                write!(f, ": expected {expected}, found {found}")
            }
            ErrorKind::UnsupportedVersion {
                path,
                found,
                supported,
            } => write!(
                f,
                "{} has format version {found}, but this build of riverbed reads versions up to \
                 {supported}; upgrade riverbed to open it",
                path.display()
            ),
            ErrorKind::OffsetOutOfRange {
                partition: None,
                requested,
                log_start,
                log_end,
            } => write!(
                f,
                "offset {requested} is out of range: the log holds offsets {log_start}..{log_end}"
            ),
            ErrorKind::OffsetOutOfRange {
                partition: Some(tp),
                requested,
                log_start,
                log_end,
            } => write!(
                f,
                "position {requested} of {}-{} is out of range: the log holds offsets \
                 {log_start}..{log_end} (a consumer may also stand at {log_end}) and \
                 auto_offset_reset is None: seek to a valid offset, or choose Earliest or Latest",
                tp.topic, tp.partition
            ),
            ErrorKind::RecordTooLarge { size, max } => write!(
                f,
                "record batch of {size} bytes exceeds the maximum of {max} bytes; nothing was \
                 written (raise max_message_bytes or send smaller records)"
            ),
            ErrorKind::KeyRequired { record } => write!(
                f,
                "a compacted log cannot accept a record without a key (record {record} of the \
                 batch has none); nothing was written"
            ),
            ErrorKind::InvalidArgument(msg) => write!(f, "invalid argument: {msg}"),
            ErrorKind::InvalidConfig { field, reason } => {
                write!(f, "invalid configuration for {field}: {reason}")
            }
            ErrorKind::Locked { path, pid } => match pid {
                Some(pid) if *pid == std::process::id() => write!(
                    f,
                    "{} is locked by another open handle in this process; close it first",
                    path.display()
                ),
                Some(pid) => write!(
                    f,
                    "{} is locked by process {pid}; stop it (or close its handle) first",
                    path.display()
                ),
                None => write!(
                    f,
                    "{} is locked by another open handle (in this or another process); close it \
                     first",
                    path.display()
                ),
            },
            ErrorKind::MetadataMismatch {
                metadata,
                metadata_missing,
                unaccounted,
                missing,
            } => {
                let list = |v: &[PathBuf]| {
                    v.iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if *metadata_missing {
                    write!(f, "the topic metadata file {} is missing", metadata.display())?;
                } else {
                    write!(
                        f,
                        "the topic metadata file {} does not match the store directory",
                        metadata.display()
                    )?;
                }
                if !unaccounted.is_empty() {
                    write!(
                        f,
                        "; partition data it does not name: {}",
                        list(unaccounted)
                    )?;
                }
                if !missing.is_empty() {
                    write!(
                        f,
                        "; partitions it names whose directory is missing: {}",
                        list(missing)
                    )?;
                }
                let dir = metadata.parent().unwrap_or(metadata);
                write!(
                    f,
                    ". Nothing was opened or deleted. Rebuild the metadata from the directories                      with `riverbed -d {} topics rebuild-metadata` (see its --help), or move                      the directories out of the store",
                    dir.display()
                )
            }
            ErrorKind::UnknownTopic { topic } => write!(
                f,
                "unknown topic {topic:?}: create it first (or enable auto_create_topics)"
            ),
            ErrorKind::TopicExists { topic } => write!(f, "topic {topic:?} already exists"),
            ErrorKind::UnknownPartition {
                topic,
                partition,
                partitions,
            } => write!(
                f,
                "topic {topic:?} has no partition {partition} (it has {partitions}: 0..{partitions})"
            ),
            ErrorKind::NotAssigned { topic, partition } => write!(
                f,
                "partition {topic}-{partition} is not assigned to this consumer"
            ),
            ErrorKind::NoOffset { topic, partition } => write!(
                f,
                "no committed offset for {topic}-{partition} and auto_offset_reset is None: seek \
                 first, or choose Earliest or Latest"
            ),
            ErrorKind::CommitFailed { reason } => write!(f, "commit failed: {reason}"),
            ErrorKind::Closed { path } => write!(
                f,
                "the log in {} is closed (its store was closed); open the store again",
                path.display()
            ),
            ErrorKind::Poisoned { cause, .. } => write!(
                f,
                "the log is poisoned by an earlier failure ({cause}); reopen it to recover"
            ),
            ErrorKind::Fenced { reason } => write!(f, "producer fenced: {reason}"),
            ErrorKind::OutOfOrderSequence {
                producer_id,
                expected,
                found,
            } => write!(
                f,
                "out-of-order sequence for producer {producer_id}: expected {expected}, found \
                 {found}"
            ),
            ErrorKind::InvalidTransactionState { reason } => {
                write!(f, "invalid transaction state: {reason}")
            }
            ErrorKind::Deserialization { reason } => write!(
                f,
                "cannot deserialize: {reason} (check the key and value types of the stream, or \
                 configure DeserializationHandler::LogAndContinue to skip such records)"
            ),
            ErrorKind::Serialization { reason } => write!(
                f,
                "cannot serialize: {reason} (the value's type has no bytes for it; fix the type \
                 or its serde)"
            ),
            ErrorKind::StreamsProcessing {
                location, reason, ..
            } => write!(
                f,
                "streams processing failed in {location}: {reason}; the application stopped \
                 and its uncommitted work will be processed again on restart"
            ),
            ErrorKind::InvalidStateStore {
                store,
                requested,
                actual,
            } => write!(
                f,
                "cannot get state store {store:?} because the queryable store type \
                 [{requested}] does not accept the actual store type [{actual}]"
            ),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            ErrorKind::Io { source, .. } | ErrorKind::NoSpace { source, .. } => Some(source),
            ErrorKind::StreamsProcessing {
                cause: Some(cause), ..
            } => Some(cause),
            _ => None,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_position_and_expectation() {
        let e = corrupt(17, "CRC 0x00000001", "CRC 0x00000002").in_file("/d/0.log".as_ref(), 100);
        let text = e.to_string();
        assert!(text.contains("/d/0.log"), "{text}");
        assert!(text.contains("byte 117"), "{text}");
        assert!(text.contains("expected CRC 0x00000001"), "{text}");
        assert!(e.is_corruption());
    }

    #[test]
    fn io_error_keeps_source() {
        let e = Error::io("open", "/x", io::Error::from(io::ErrorKind::NotFound));
        assert!(e.is_io());
        assert!(std::error::Error::source(&e).is_some());
    }
}
