//! What a store directory holds, and which of it Riverbed may remove (FORMAT.md, section 8).
//!
//! A store directory holds the store's own files (`.lock`, `topics`, `topics.tmp`,
//! `group-members`, `streams/`, the internal logs `__consumer_offsets-0` and
//! `__transaction_state-0`), one directory `<topic>-<n>` per partition the metadata file names,
//! and, after a crash, the marked directories of topic changes that were under way:
//!
//! - `<16 hex digits>.creating`: a topic create (or partition add) stages its new, empty
//!   partition directories in here, writes the metadata (the commit point), then moves them into
//!   place. A staged directory the metadata names whose place is empty is moved into place at
//!   open (the create committed); every other staged directory is removed (it is empty: the
//!   create never committed).
//! - `<16 hex digits>.deleted`: a topic delete moves the topic's partition directories in here,
//!   writes the metadata without the topic (the commit point), then removes the directory. A
//!   moved directory the metadata still names whose place is empty is moved back at open (the
//!   delete did not commit); every other one is removed (the delete committed).
//! - `<topic>-<n>.<stamp>.deleted`: a partition of a deleted topic as versions before the
//!   marked directories above left it, only ever after the deletion committed; removed at open.
//!
//! Nothing else is ever removed. An unmarked `<topic>-<n>` directory the metadata does not name
//! is data Riverbed cannot account for (a lost or stale metadata file, a directory copied in):
//! [`settle`] refuses to open the store ([`MetadataMismatch`](ErrorKind::MetadataMismatch)) and
//! [`rebuild_metadata`] writes a metadata file that names what the directories hold. Kafka
//! follows the same rule in spirit: its log manager loads every log directory it finds, and a
//! deleted partition is renamed with a `-delete` marker before it is removed, so that only
//! marked directories are ever deleted.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, ErrorKind, Result};
use crate::fs::DirLock;
use crate::topic::{self, TopicConfig};

/// Suffix of a directory in which a topic create or partition add stages new partitions.
pub(crate) const CREATING_SUFFIX: &str = ".creating";
/// Suffix of a directory into which a topic delete moves the topic's partitions.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";
/// Suffix of the copy [`rebuild_metadata`] keeps of a damaged metadata file.
const DAMAGED_SUFFIX: &str = ".damaged";

/// A new marker name: 16 hex digits of the wall clock in nanoseconds, strictly increasing
/// within the process (so two markers made in the same nanosecond still differ), then `suffix`.
pub(crate) fn marker_name(suffix: &str) -> String {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = crate::clock::now_nanos();
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return format!("{next:016x}{suffix}"),
            Err(p) => prev = p,
        }
    }
}

/// The topic and partition of a partition directory name `<topic>-<n>`: a valid, unreserved
/// topic name and a partition number written as Riverbed writes it (decimal, no sign or leading
/// zero). `None` for every other name, including the store's internal logs.
pub(crate) fn parse_partition_dir(name: &str) -> Option<(String, u32)> {
    let (t, p) = name.rsplit_once('-')?;
    if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || (p.len() > 1 && p.starts_with('0'))
    {
        return None;
    }
    let p: u32 = p.parse().ok()?;
    topic::validate_topic_name(t).ok()?;
    Some((t.to_string(), p))
}

fn is_marker(name: &str, suffix: &str) -> bool {
    name.strip_suffix(suffix)
        .is_some_and(|stem| stem.len() == 16 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A partition directory inside a marked directory.
#[derive(Debug)]
struct Staged {
    topic: String,
    partition: u32,
    path: PathBuf,
}

/// A marked directory and what it holds.
#[derive(Debug)]
struct Marked {
    path: PathBuf,
    partitions: Vec<Staged>,
    /// It holds something Riverbed never puts there (so it is left alone).
    foreign: bool,
}

/// What a store directory holds, by kind.
#[derive(Debug, Default)]
struct Scan {
    /// Unmarked partition directories.
    partitions: BTreeSet<(String, u32)>,
    creating: Vec<Marked>,
    deleting: Vec<Marked>,
    /// `<topic>-<n>.<stamp>.deleted` of earlier versions.
    legacy_deleted: Vec<PathBuf>,
}

fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| Error::io("list directory", dir, e))? {
        let e = e.map_err(|e| Error::io("list directory", dir, e))?;
        // Names that are not UTF-8 are never Riverbed's.
        if let Some(name) = e.file_name().to_str() {
            out.push((name.to_string(), e.path()));
        }
    }
    out.sort();
    Ok(out)
}

fn read_marked(path: PathBuf) -> Result<Marked> {
    let mut m = Marked {
        partitions: Vec::new(),
        foreign: false,
        path: PathBuf::new(),
    };
    for (name, p) in list(&path)? {
        match parse_partition_dir(&name) {
            Some((topic, partition)) if p.is_dir() => m.partitions.push(Staged {
                topic,
                partition,
                path: p,
            }),
            _ => m.foreign = true,
        }
    }
    m.path = path;
    Ok(m)
}

fn scan(dir: &Path) -> Result<Scan> {
    let mut s = Scan::default();
    for (name, path) in list(dir)? {
        if !path.is_dir() {
            continue;
        }
        if is_marker(&name, CREATING_SUFFIX) {
            s.creating.push(read_marked(path)?);
        } else if is_marker(&name, DELETED_SUFFIX) {
            s.deleting.push(read_marked(path)?);
        } else if let Some(stem) = name.strip_suffix(DELETED_SUFFIX) {
            // `<topic>-<n>.<decimal stamp>`: what earlier versions left after a committed delete.
            let legacy = stem.rsplit_once('.').is_some_and(|(tp, stamp)| {
                !stamp.is_empty()
                    && stamp.bytes().all(|b| b.is_ascii_digit())
                    && parse_partition_dir(tp).is_some()
            });
            if legacy {
                s.legacy_deleted.push(path);
            }
        } else if let Some(tp) = parse_partition_dir(&name) {
            s.partitions.insert(tp);
        }
    }
    Ok(s)
}

/// The unmarked partition directories in `dir`, sorted.
pub(crate) fn partition_dirs(dir: &Path) -> Result<Vec<PathBuf>> {
    Ok(scan(dir)?
        .partitions
        .iter()
        .map(|(t, p)| crate::store::partition_dir(dir, t, *p))
        .collect())
}

/// What [`settle`] (or the cleanup before a delete) is to do.
#[derive(Debug, Default)]
struct Plan {
    /// Marked partition directories to move into place (`from`, `to`).
    moves: Vec<(PathBuf, PathBuf)>,
    /// Directories of committed deletions, removed with their contents.
    remove_all: Vec<PathBuf>,
    /// Empty staged directories of creates that never committed.
    remove_empty: Vec<PathBuf>,
    /// Marked directories to remove once emptied (unless they hold something foreign).
    markers: Vec<(PathBuf, bool)>,
    unaccounted: Vec<PathBuf>,
    missing: Vec<PathBuf>,
}

fn is_empty_dir(path: &Path) -> bool {
    std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_none())
}

/// Decides, for what `scan` found, what may be moved and removed given the partitions the
/// metadata names (`None`: the metadata file is missing, so no deletion is provably
/// committed).
fn plan(dir: &Path, scan: Scan, named: Option<&BTreeMap<String, u32>>) -> Plan {
    let names = |t: &str, p: u32| named.is_some_and(|n| n.get(t).is_some_and(|&c| p < c));
    let mut plan = Plan::default();
    // A marked partition is the one to put in place when the metadata names it and its place
    // is empty: a delete that did not commit, or a create that did.
    let mut candidates: BTreeMap<(String, u32), Vec<PathBuf>> = BTreeMap::new();
    for (marked, deleting) in scan
        .deleting
        .iter()
        .map(|m| (m, true))
        .chain(scan.creating.iter().map(|m| (m, false)))
    {
        let mut foreign = marked.foreign;
        for s in &marked.partitions {
            let key = (s.topic.clone(), s.partition);
            if names(&s.topic, s.partition) && !scan.partitions.contains(&key) {
                candidates.entry(key).or_default().push(s.path.clone());
            } else if !deleting {
                // Staged by a create that never committed: empty, unless something else put
                // files there, in which case it is left alone.
                if is_empty_dir(&s.path) {
                    plan.remove_empty.push(s.path.clone());
                } else {
                    foreign = true;
                }
            } else if named.is_some() {
                // The metadata no longer names it (or names a newer partition of the same
                // name, which is in place): its deletion committed.
                plan.remove_all.push(s.path.clone());
            } else {
                // Without metadata, a deletion is not provably committed.
                plan.unaccounted.push(s.path.clone());
                foreign = true;
            }
        }
        plan.markers.push((marked.path.clone(), foreign));
    }
    for ((t, p), paths) in candidates {
        if let [one] = paths.as_slice() {
            plan.moves
                .push((one.clone(), crate::store::partition_dir(dir, &t, p)));
        } else {
            // Two marked copies of one partition: never guess which is the data.
            plan.unaccounted.extend(paths);
        }
    }
    plan.remove_all.extend(scan.legacy_deleted);
    for (t, p) in &scan.partitions {
        if !names(t, *p) {
            plan.unaccounted
                .push(crate::store::partition_dir(dir, t, *p));
        }
    }
    if let Some(named) = named {
        for (t, &count) in named {
            for p in 0..count {
                let key = (t.clone(), p);
                if !scan.partitions.contains(&key)
                    && !plan
                        .moves
                        .iter()
                        .any(|(_, to)| *to == crate::store::partition_dir(dir, t, p))
                {
                    plan.missing.push(crate::store::partition_dir(dir, t, p));
                }
            }
        }
    }
    plan
}

fn remove_dir_all(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("remove deleted partition", path, e)),
    }
}

/// Removes what `plan` proved removable, then the emptied marked directories.
fn apply_removals(plan: &Plan) -> Result<()> {
    for path in &plan.remove_all {
        remove_dir_all(path)?;
    }
    for path in &plan.remove_empty {
        match std::fs::remove_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove staged partition", path, e)),
        }
    }
    for (path, foreign) in &plan.markers {
        if *foreign || !is_empty_dir(path) {
            tracing::warn!(
                target: "riverbed::store",
                path = %path.display(),
                "a marked directory holds files Riverbed did not put there; left in place"
            );
            continue;
        }
        match std::fs::remove_dir(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove marked directory", path, e)),
        }
    }
    Ok(())
}

/// Brings the store directory in line with its metadata at open, or refuses: moves marked
/// partitions of interrupted topic changes into place, removes what the interrupted changes
/// provably left (see the module documentation) and the metadata's temp file.
///
/// `topics` is what the metadata file names (`None`: there is none). Nothing is moved or
/// removed unless everything is accounted for.
///
/// # Errors
/// [`MetadataMismatch`](ErrorKind::MetadataMismatch) naming the metadata file and the
/// directories it does not account for, or the partitions it names that are gone;
/// [`Io`](ErrorKind::Io).
pub(crate) fn settle(dir: &Path, topics: Option<&[(String, TopicConfig)]>) -> Result<()> {
    let named: Option<BTreeMap<String, u32>> =
        topics.map(|t| t.iter().map(|(n, c)| (n.clone(), c.partitions)).collect());
    let plan = plan(dir, scan(dir)?, named.as_ref());
    let meta = dir.join(topic::METADATA_FILE);
    if !plan.unaccounted.is_empty() || !plan.missing.is_empty() {
        return Err(ErrorKind::MetadataMismatch {
            metadata: meta,
            metadata_missing: topics.is_none(),
            unaccounted: plan.unaccounted,
            missing: plan.missing,
        }
        .into());
    }
    for (from, to) in &plan.moves {
        std::fs::rename(from, to).map_err(|e| Error::io("move partition into place", to, e))?;
        tracing::info!(
            target: "riverbed::store",
            from = %from.display(),
            to = %to.display(),
            "finished an interrupted topic change: partition moved into place"
        );
    }
    if !plan.moves.is_empty() {
        crate::fs::sync_dir(dir)?;
    }
    apply_removals(&plan)?;
    let tmp = crate::fs::tmp_path(&meta);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("remove metadata temp file", &tmp, e)),
    }
    crate::fs::sync_dir(dir)
}

/// Removes the leftovers of earlier, committed topic deletions (and of creates that never
/// committed) while the store is open, before a new deletion, so that a crash of that deletion
/// leaves only one marked copy of each of its partitions. `named` is every topic and its
/// partition count as the metadata names them. Marked partitions the metadata names whose
/// place is empty are kept (a deletion that failed and could not be undone).
pub(crate) fn remove_committed_leftovers(dir: &Path, named: &BTreeMap<String, u32>) -> Result<()> {
    let plan = plan(dir, scan(dir)?, Some(named));
    let kept: BTreeSet<&Path> = plan.moves.iter().map(|(f, _)| f.as_path()).collect();
    let plan = Plan {
        markers: plan
            .markers
            .into_iter()
            .map(|(m, foreign)| {
                let keeps = kept.iter().any(|k| k.starts_with(&m));
                (m, foreign || keeps)
            })
            .collect(),
        ..plan
    };
    apply_removals(&plan)
}

// ---- rebuilding the metadata --------------------------------------------------------------

/// What [`Store::rebuild_metadata`](crate::Store::rebuild_metadata) is to do.
#[derive(Clone, Debug, Default)]
pub struct RebuildOptions {
    pub(crate) settings: Vec<(String, String)>,
    pub(crate) topic_settings: Vec<(String, String, String)>,
    pub(crate) replace_damaged: bool,
    pub(crate) dry_run: bool,
}

impl RebuildOptions {
    /// Settings, as `(key, value)` in the spelling of [`TopicConfig::apply`], for every topic
    /// whose configuration the metadata file does not hold.
    #[must_use = "a setter returns the changed configuration"]
    pub fn settings(mut self, settings: Vec<(String, String)>) -> RebuildOptions {
        self.settings = settings;
        self
    }

    /// Settings for one topic, `(topic, key, value)`, applied after `settings` (also to topics
    /// whose configuration the metadata file holds).
    #[must_use = "a setter returns the changed configuration"]
    pub fn topic_settings(
        mut self,
        topic_settings: Vec<(String, String, String)>,
    ) -> RebuildOptions {
        self.topic_settings = topic_settings;
        self
    }

    /// Replace a metadata file that does not decode. Its bytes are kept, renamed to
    /// `topics.<16 hex digits>.damaged`. Without it a damaged file is an error.
    #[must_use = "a setter returns the changed configuration"]
    pub fn replace_damaged(mut self, replace_damaged: bool) -> RebuildOptions {
        self.replace_damaged = replace_damaged;
        self
    }

    /// Only report what would be written.
    #[must_use = "a setter returns the changed configuration"]
    pub fn dry_run(mut self, dry_run: bool) -> RebuildOptions {
        self.dry_run = dry_run;
        self
    }

    /// The [`settings`](Self::settings) setting.
    pub fn get_settings(&self) -> &Vec<(String, String)> {
        &self.settings
    }

    /// The [`topic_settings`](Self::topic_settings) setting.
    pub fn get_topic_settings(&self) -> &Vec<(String, String, String)> {
        &self.topic_settings
    }

    /// The [`replace_damaged`](Self::replace_damaged) setting.
    pub fn get_replace_damaged(&self) -> bool {
        self.replace_damaged
    }

    /// The [`dry_run`](Self::dry_run) setting.
    pub fn get_dry_run(&self) -> bool {
        self.dry_run
    }
}

/// One topic as [`Store::rebuild_metadata`](crate::Store::rebuild_metadata) wrote it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RebuiltTopic {
    /// Topic name.
    pub name: String,
    /// Its configuration, with the partition count the directories show.
    pub config: TopicConfig,
    /// Whether the configuration came from the existing metadata file (`false`: it was
    /// unknown, so defaults were used, with the options' settings applied).
    pub config_known: bool,
}

/// What [`Store::rebuild_metadata`](crate::Store::rebuild_metadata) did.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MetadataRebuild {
    /// The metadata file.
    pub path: PathBuf,
    /// Every topic it now names, sorted by name.
    pub topics: Vec<RebuiltTopic>,
    /// Topics the old metadata named that have no partition directory left (so no data).
    pub dropped: Vec<String>,
    /// Where the damaged metadata file's bytes were kept, if one was replaced.
    pub damaged_copy: Option<PathBuf>,
    /// Whether the file was written (false for a dry run).
    pub written: bool,
}

/// The largest file whose name ends with one of `exts` in `dir`.
fn largest(dir: &Path, exts: &[&str]) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| exts.iter().any(|x| n.ends_with(x)))
        })
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .max()
        .unwrap_or(0)
}

/// The configuration of a topic whose settings are unknown: the defaults, except that nothing
/// is deleted by retention (`retention_ms=none`) until the user says otherwise, and the segment
/// and index bounds are large enough for the files found (smaller ones would make recovery
/// refuse, or cut, batches the segments hold).
fn unknown_config(dirs: &[PathBuf]) -> TopicConfig {
    let mut c = TopicConfig::new(dirs.len() as u32).retention_ms(None);
    let seg = dirs
        .iter()
        .map(|d| largest(d, &[".log"]))
        .max()
        .unwrap_or(0);
    let idx = dirs
        .iter()
        .map(|d| largest(d, &[".index", ".timeindex"]))
        .max()
        .unwrap_or(0);
    c.log.segment_bytes = c.log.segment_bytes.max(seg).min(u64::from(u32::MAX));
    c.log.index_max_bytes = c
        .log
        .index_max_bytes
        .max(u32::try_from(idx).unwrap_or(u32::MAX));
    c
}

/// Writes a metadata file naming every topic whose partition directories the store directory
/// holds (see [`Store::rebuild_metadata`](crate::Store::rebuild_metadata)).
pub(crate) fn rebuild_metadata(dir: &Path, options: &RebuildOptions) -> Result<MetadataRebuild> {
    std::fs::read_dir(dir).map_err(|e| Error::io("open store directory", dir, e))?;
    let _lock = DirLock::acquire(dir)?;
    let meta = dir.join(topic::METADATA_FILE);
    let mut damaged = false;
    let old: Option<BTreeMap<String, TopicConfig>> = match std::fs::read(&meta) {
        Ok(bytes) => match topic::decode_metadata(&bytes, &meta) {
            Ok(t) => Some(t.into_iter().collect()),
            Err(e) if e.is_corruption() && options.replace_damaged => {
                damaged = true;
                None
            }
            Err(e) => return Err(e),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io("read topic metadata", &meta, e)),
    };
    let named: Option<BTreeMap<String, u32>> = old
        .as_ref()
        .map(|o| o.iter().map(|(n, c)| (n.clone(), c.partitions)).collect());
    let scan = scan(dir)?;
    // Partitions present: the unmarked directories, and the marked ones the next open would
    // move into place. Without metadata, a deletion's marked partitions count too: their
    // deletion is not provably committed.
    let mut found: BTreeMap<String, BTreeSet<u32>> = BTreeMap::new();
    for (t, p) in &scan.partitions {
        found.entry(t.clone()).or_default().insert(*p);
    }
    let plan = plan(dir, scan, named.as_ref());
    for (_, to) in &plan.moves {
        let name = to.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        if let Some((t, p)) = parse_partition_dir(name) {
            found.entry(t).or_default().insert(p);
        }
    }
    if named.is_none() {
        for path in &plan.unaccounted {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if let Some((t, p)) = parse_partition_dir(name) {
                if path.parent() != Some(dir) {
                    found.entry(t).or_default().insert(p);
                }
            }
        }
    }
    for (t, _, _) in &options.topic_settings {
        if !found.contains_key(t) {
            return Err(Error::invalid(format!(
                "a setting names topic {t:?}, but the store holds no partition directory of it"
            )));
        }
    }
    let mut topics = Vec::new();
    for (t, parts) in &found {
        let count = parts.last().map_or(0, |p| p + 1);
        let known = old.as_ref().and_then(|o| o.get(t));
        let want = known.map_or(count, |c| c.partitions.max(count));
        if parts.len() as u32 != want {
            let gaps: Vec<String> = (0..want)
                .filter(|p| !parts.contains(p))
                .map(|p| crate::store::partition_dir(dir, t, p).display().to_string())
                .collect();
            let have: Vec<String> = parts.iter().map(u32::to_string).collect();
            return Err(Error::invalid(format!(
                "topic {t:?} has partition directories {} but not {}; a topic's partitions are \
                 0..n without gaps, and Riverbed will not guess what the missing ones held. \
                 Restore them, or create empty directories in their place to rebuild them as \
                 empty partitions, then run this again",
                have.join(", "),
                gaps.join(", ")
            )));
        }
        let (mut config, config_known) = match known {
            Some(c) => (c.clone(), true),
            None => {
                let dirs: Vec<PathBuf> = (0..count)
                    .map(|p| crate::store::partition_dir(dir, t, p))
                    .collect();
                let mut c = unknown_config(&dirs);
                let s: Vec<(&str, &str)> = options
                    .settings
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                c.apply(&s)?;
                (c, false)
            }
        };
        let s: Vec<(&str, &str)> = options
            .topic_settings
            .iter()
            .filter(|(topic, _, _)| topic == t)
            .map(|(_, k, v)| (k.as_str(), v.as_str()))
            .collect();
        config.apply(&s)?;
        config.partitions = count;
        config.validate()?;
        topics.push(RebuiltTopic {
            name: t.clone(),
            config,
            config_known,
        });
    }
    let dropped = old
        .as_ref()
        .map(|o| {
            o.keys()
                .filter(|t| !found.contains_key(*t))
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    let mut report = MetadataRebuild {
        path: meta.clone(),
        topics,
        dropped,
        damaged_copy: None,
        written: false,
    };
    if options.dry_run {
        return Ok(report);
    }
    if damaged {
        let copy = dir.join(format!(
            "{}.{}",
            topic::METADATA_FILE,
            marker_name(DAMAGED_SUFFIX)
        ));
        std::fs::rename(&meta, &copy)
            .map_err(|e| Error::io("keep damaged metadata file", &copy, e))?;
        crate::fs::sync_dir(dir)?;
        report.damaged_copy = Some(copy);
    }
    let bytes = topic::encode_metadata(report.topics.iter().map(|t| (t.name.as_str(), &t.config)));
    crate::fs::write_atomic(&meta, &bytes)?;
    report.written = true;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// No name the store keeps for itself, or gives a marker, reads as a partition directory,
    /// so no user topic can collide with one.
    #[test]
    fn internal_and_marker_names_are_never_partition_directories() {
        let internal = [
            ".lock",
            topic::METADATA_FILE,
            "topics.tmp",
            crate::group::published::FILE_NAME,
            "group-members.tmp",
            crate::store::server_metrics::FILE_NAME,
            "server-metrics.tmp",
            crate::fs::STREAMS_DIR,
            crate::coordinator::offsets::OFFSETS_DIR,
            crate::coordinator::txn::TXN_LOG_DIR,
            "0000000000000001.creating",
            "0000000000000001.deleted",
            "topics.0000000000000001.damaged",
            "t-0.123.deleted",
        ];
        for name in internal {
            assert_eq!(parse_partition_dir(name), None, "{name}");
        }
        assert_eq!(parse_partition_dir("t-0"), Some(("t".into(), 0)));
        assert_eq!(parse_partition_dir("__t-12"), Some(("__t".into(), 12)));
        assert_eq!(parse_partition_dir("a-b-3"), Some(("a-b".into(), 3)));
        for name in ["t-01", "t-+1", "t-", "-1", "t-99999999999"] {
            assert_eq!(parse_partition_dir(name), None, "{name}");
        }
        let a = marker_name(CREATING_SUFFIX);
        let b = marker_name(CREATING_SUFFIX);
        assert!(a < b && is_marker(&a, CREATING_SUFFIX), "{a} {b}");
    }
}
