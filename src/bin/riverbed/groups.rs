//! `riverbed groups`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};

use riverbed::inspect::{LockState, StoreView};
use riverbed::{ConsumerConfig, GroupDescription, OffsetAndMetadata, TopicPartition};

use crate::out::{parse_time, print_json, Table};
use crate::{open_store, usage, Cli, CmdResult, Failure, Output};

#[derive(Subcommand)]
pub enum GroupsCmd {
    /// List groups with committed offsets or live members (read-only).
    #[command(after_help = "Example:\n  riverbed -d ./data groups list")]
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Show members, assignment, committed offset, end offset and lag per partition (read-only).
    #[command(
        after_help = "Examples:\n  riverbed -d ./data groups describe billing --json\n  \
        riverbed -d ./data groups describe --all-groups --state\n  \
        riverbed -d ./data groups describe billing --members"
    )]
    #[command(group(ArgGroup::new("groups").required(true).args(["group", "all_groups"])))]
    Describe {
        /// Group id.
        group: Option<String>,
        /// Every group (with committed offsets or live members).
        #[arg(long)]
        all_groups: bool,
        /// Only the group's state and member count (Kafka's --state).
        #[arg(long, conflicts_with = "members")]
        state: bool,
        /// Only the members and their assignments (Kafka's --members).
        #[arg(long)]
        members: bool,
        #[command(flatten)]
        out: Output,
    },
    /// Move a group's committed offsets. Shows the plan; changes nothing without --execute.
    #[command(
        after_help = "Examples:\n  riverbed -d ./data groups reset-offsets billing --topic events --to-earliest\n  \
        riverbed -d ./data groups reset-offsets billing --topic events:0,1 --shift-by -100 --execute\n  \
        riverbed -d ./data groups reset-offsets billing --all-topics --to-datetime 2024-05-01T00:00:00Z --execute\n\n\
        riverbed -d ./data groups reset-offsets billing --all-topics --by-duration PT1H --export > plan.csv\n  \
        riverbed -d ./data groups reset-offsets billing --from-file plan.csv --execute\n\n\
        Refused while the group has live members (stop its consumers first), as in Kafka."
    )]
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_current", "to_offset", "to_datetime", "by_duration", "shift_by", "from_file"])))]
    #[command(group(ArgGroup::new("which").args(["topic", "all_topics"])))]
    ResetOffsets(ResetArgs),
    /// Delete a group's committed offsets: all of them, or those of some topics
    /// (--delete-offsets).
    #[command(
        after_help = "Examples:\n  riverbed -d ./data groups delete billing\n  \
        riverbed -d ./data groups delete billing --delete-offsets --topic events"
    )]
    Delete {
        /// Group id.
        group: String,
        /// Delete only the committed offsets of the --topic partitions (Kafka's
        /// --delete-offsets); the group keeps the rest.
        #[arg(long, requires = "topic")]
        delete_offsets: bool,
        /// With --delete-offsets: a topic, or TOPIC:P,P,... (repeatable).
        #[arg(long, requires = "delete_offsets")]
        topic: Vec<String>,
    },
}

#[derive(Args)]
pub struct ResetArgs {
    /// Group id.
    group: String,
    /// A topic, or TOPIC:P,P,... for some partitions (repeatable).
    #[arg(long)]
    topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// To the log start.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end.
    #[arg(long)]
    to_latest: bool,
    /// To the committed offset (the log end where there is none, as Kafka's tool does).
    #[arg(long)]
    to_current: bool,
    /// To this offset (clamped to the log).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<u64>,
    /// To the first record at or after this time (RFC 3339 or ms; no zone means UTC).
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
    /// To the first record at or after this long ago: an ISO-8601 duration such as PT30M or
    /// P1DT12H (Kafka's --by-duration).
    #[arg(long, value_name = "DURATION")]
    by_duration: Option<String>,
    /// To the offsets in this CSV file, lines `topic,partition,offset` (what --export writes).
    #[arg(long, value_name = "FILE")]
    from_file: Option<std::path::PathBuf>,
    /// By this many records from the committed offset (negative: back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Make the change (without it, only the plan is shown).
    #[arg(long, conflicts_with = "dry_run")]
    execute: bool,
    /// Only show the plan (the default; Kafka's spelling).
    #[arg(long)]
    dry_run: bool,
    /// Print the plan as CSV lines `topic,partition,offset` (for --from-file).
    #[arg(long, conflicts_with = "json")]
    export: bool,
    #[command(flatten)]
    out: Output,
}

fn live_group(view: &StoreView, group: &str) -> Result<Option<GroupDescription>, Failure> {
    Ok(view.live_groups()?.into_iter().find(|g| g.group == group))
}

fn holder_pid(dir: &Path) -> String {
    match riverbed::inspect::lock_state(dir) {
        LockState::Held { pid: Some(p) } | LockState::Unknown { pid: Some(p) } => p.to_string(),
        _ => "unknown".into(),
    }
}

/// Opens the store to change a group, refusing (changing nothing) while the group has live
/// members or another process holds the store.
fn open_for_group(dir: &Path, group: &str) -> Result<riverbed::Store, Failure> {
    let view = crate::open_view(dir)?;
    if let Some(g) = live_group(&view, group)? {
        return Err(Failure::Error(format!(
            "group {group:?} has {} live member(s) in process {}; stop its consumers first. Nothing was changed.",
            g.members.len(),
            holder_pid(dir)
        )));
    }
    open_store(dir, false)
}

/// A group id must not be empty (Kafka refuses one too).
fn check_group(group: &str) -> CmdResult {
    if group.is_empty() {
        return Err(usage("the group id must not be empty"));
    }
    Ok(())
}

pub fn run(cli: &Cli, cmd: &GroupsCmd) -> CmdResult {
    let dir = cli.dir();
    match cmd {
        GroupsCmd::Describe { group: Some(g), .. } | GroupsCmd::Delete { group: g, .. } => {
            check_group(g)?
        }
        GroupsCmd::ResetOffsets(a) => check_group(&a.group)?,
        _ => {}
    }
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    match cmd {
        GroupsCmd::List { out } => {
            let view = crate::open_view(&dir)?;
            let committed = view.committed_offsets()?;
            let live = view.live_groups()?;
            let mut names: BTreeMap<String, (usize, Option<&GroupDescription>)> = BTreeMap::new();
            for (g, _) in committed.keys() {
                names.entry(g.clone()).or_default().0 += 1;
            }
            for g in &live {
                names.entry(g.group.clone()).or_default().1 = Some(g);
            }
            if out.json {
                let v: Vec<Value> = names
                    .iter()
                    .map(|(name, (n, g))| {
                        json!({"group": name, "state": state(*g), "members": g.map_or(0, |g| g.members.len()), "committed_partitions": n})
                    })
                    .collect();
                print_json(&mut w, &json!(v))?;
            } else {
                let mut t = Table::new(&["GROUP", "STATE", "MEMBERS", "COMMITTED-PARTITIONS"]);
                for (name, (n, g)) in &names {
                    t.row(vec![
                        name.clone(),
                        state(*g).into(),
                        g.map_or(0, |g| g.members.len()).to_string(),
                        n.to_string(),
                    ]);
                }
                t.print(&mut w)?;
            }
        }
        GroupsCmd::Describe {
            group,
            all_groups: _,
            state,
            members,
            out,
        } => {
            let view = crate::open_view(&dir)?;
            let show = if *state {
                Show::State
            } else if *members {
                Show::Members
            } else {
                Show::Offsets
            };
            let groups = match group {
                Some(g) => vec![g.clone()],
                None => all_groups(&view)?,
            };
            let mut described = Vec::new();
            for g in &groups {
                described.push(describe(&dir, &view, g, show, out.json, &mut w)?);
            }
            if out.json {
                let v = if group.is_some() {
                    described.pop().unwrap_or(Value::Null)
                } else {
                    json!(described)
                };
                print_json(&mut w, &v)?;
            }
        }
        GroupsCmd::ResetOffsets(a) => reset(&dir, a, &mut w)?,
        GroupsCmd::Delete {
            group,
            delete_offsets,
            topic,
        } => {
            let view = crate::open_view(&dir)?;
            let committed = view
                .committed_offsets()?
                .into_keys()
                .filter(|(g, _)| g == group)
                .count();
            if committed == 0 {
                // As Kafka's tool: a group that does not exist cannot be deleted.
                return Err(Failure::Error(format!(
                    "group {group:?} has no committed offsets: nothing to delete"
                )));
            }
            let store = open_for_group(&dir, group)?;
            if *delete_offsets {
                let tps = topic_partitions(&view, topic)?;
                let n = store.delete_committed_offsets(group, &tps)?;
                writeln!(
                    w,
                    "deleted the committed offsets of group {group} for {n} partitions"
                )?;
            } else {
                let n = store.delete_group(group)?;
                writeln!(
                    w,
                    "deleted group {group} (committed offsets of {n} partitions)"
                )?;
            }
        }
    }
    Ok(())
}

fn state(g: Option<&GroupDescription>) -> &'static str {
    match g {
        None => "Empty",
        Some(g) if g.rebalancing => "Rebalancing",
        Some(_) => "Stable",
    }
}

/// Log start and end offsets of partitions, opened once each.
struct Ends<'a> {
    view: &'a StoreView,
    cache: BTreeMap<TopicPartition, Option<(u64, u64)>>,
}

impl Ends<'_> {
    fn get(&mut self, tp: &TopicPartition) -> Result<Option<(u64, u64)>, Failure> {
        if let Some(v) = self.cache.get(tp) {
            return Ok(*v);
        }
        let v = match self.view.partition(&tp.topic, tp.partition) {
            Ok(p) => Some((p.log_start_offset(), p.log_end_offset())),
            Err(e)
                if matches!(
                    e.kind(),
                    riverbed::ErrorKind::UnknownTopic { .. }
                        | riverbed::ErrorKind::UnknownPartition { .. }
                ) =>
            {
                None
            }
            Err(e) => return Err(e.into()),
        };
        self.cache.insert(tp.clone(), v);
        Ok(v)
    }
}

/// Every group with committed offsets or live members.
fn all_groups(view: &StoreView) -> Result<Vec<String>, Failure> {
    let mut names: BTreeSet<String> = view
        .committed_offsets()?
        .into_keys()
        .map(|(g, _)| g)
        .collect();
    names.extend(view.live_groups()?.into_iter().map(|g| g.group));
    Ok(names.into_iter().collect())
}

/// What `groups describe` shows (Kafka's default, --state, --members).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    Offsets,
    State,
    Members,
}

/// Describes one group: prints it as a table, or returns it as JSON (printed by the caller, so
/// that --all-groups prints one array).
fn describe(
    dir: &Path,
    view: &StoreView,
    group: &str,
    show: Show,
    json_out: bool,
    w: &mut dyn Write,
) -> Result<Value, Failure> {
    let committed: BTreeMap<TopicPartition, OffsetAndMetadata> = view
        .committed_offsets()?
        .into_iter()
        .filter(|((g, _), _)| g == group)
        .map(|((_, tp), o)| (tp, o))
        .collect();
    let live = live_group(view, group)?;
    if committed.is_empty() && live.is_none() {
        return Err(Failure::Error(format!(
            "group {group:?} has no committed offsets and no live members"
        )));
    }
    let members: Vec<Value> = live.as_ref().map_or(Vec::new(), |g| {
        g.members
            .iter()
            .map(|(m, ps)| {
                json!({"member": m, "assignment": ps.iter().map(|tp| tp.to_string()).collect::<Vec<_>>()})
            })
            .collect()
    });
    if show == Show::State {
        let (generation, n) = live
            .as_ref()
            .map_or((None, 0), |g| (Some(g.generation), g.members.len()));
        if json_out {
            return Ok(json!({"group": group, "state": state(live.as_ref()),
                             "generation": generation, "members": n}));
        }
        let mut t = Table::new(&["GROUP", "STATE", "GENERATION", "MEMBERS"]);
        t.row(vec![
            group.to_string(),
            state(live.as_ref()).into(),
            generation.map_or_else(|| "-".into(), |g| g.to_string()),
            n.to_string(),
        ]);
        t.print(w)?;
        return Ok(Value::Null);
    }
    if show == Show::Members {
        if json_out {
            return Ok(json!({"group": group, "members": members}));
        }
        let mut t = Table::new(&["GROUP", "MEMBER", "PARTITIONS", "ASSIGNMENT"]);
        for (m, ps) in live.as_ref().map_or(&[][..], |g| &g.members[..]) {
            let list: Vec<String> = ps.iter().map(ToString::to_string).collect();
            t.row(vec![
                group.to_string(),
                m.clone(),
                ps.len().to_string(),
                list.join(","),
            ]);
        }
        t.print(w)?;
        return Ok(Value::Null);
    }
    let mut owner: BTreeMap<TopicPartition, String> = BTreeMap::new();
    if let Some(g) = &live {
        for (m, parts) in &g.members {
            for tp in parts {
                owner.insert(tp.clone(), m.clone());
            }
        }
    }
    let all: BTreeSet<TopicPartition> = committed.keys().chain(owner.keys()).cloned().collect();
    let mut ends = Ends {
        view,
        cache: BTreeMap::new(),
    };
    let mut rows = Vec::new();
    let mut total_lag = 0;
    for tp in all {
        let c = committed.get(&tp).map(|o| o.offset);
        let se = ends.get(&tp)?;
        let lag = se.map(|(s, e)| e.saturating_sub(c.unwrap_or(s).max(s)));
        total_lag += lag.unwrap_or(0);
        rows.push((tp.clone(), c, se.map(|x| x.1), lag, owner.get(&tp).cloned()));
    }
    if json_out {
        let parts: Vec<Value> = rows
            .iter()
            .map(|(tp, c, e, lag, m)| {
                json!({"topic": tp.topic, "partition": tp.partition, "committed_offset": c,
                       "log_end_offset": e, "lag": lag, "member": m})
            })
            .collect();
        return Ok(json!({"group": group, "state": state(live.as_ref()),
                "generation": live.as_ref().map(|g| g.generation), "members": members,
                "partitions": parts, "total_lag": total_lag}));
    }
    match &live {
        Some(g) => writeln!(
            w,
            "Group: {group}  State: {}  Generation: {}  Members: {} (process {})",
            state(Some(g)),
            g.generation,
            g.members.len(),
            holder_pid(dir)
        )?,
        None => writeln!(w, "Group: {group}  State: Empty  Members: 0")?,
    }
    let mut t = Table::new(&[
        "TOPIC",
        "PARTITION",
        "COMMITTED",
        "LOG-END",
        "LAG",
        "MEMBER",
    ]);
    let dash = || "-".to_string();
    for (tp, c, e, lag, m) in rows {
        t.row(vec![
            tp.topic,
            tp.partition.to_string(),
            c.map_or_else(dash, |c| c.to_string()),
            e.map_or_else(dash, |e| e.to_string()),
            lag.map_or_else(dash, |l| l.to_string()),
            m.unwrap_or_else(dash),
        ]);
    }
    t.print(w)?;
    writeln!(w, "Total lag: {total_lag}")?;
    Ok(Value::Null)
}

/// The partitions a reset applies to.
fn targets(view: &StoreView, group: &str, a: &ResetArgs) -> Result<Vec<TopicPartition>, Failure> {
    let mut out = BTreeSet::new();
    if a.all_topics {
        for (g, tp) in view.committed_offsets()?.keys() {
            if g == group {
                out.insert(tp.clone());
            }
        }
        if out.is_empty() {
            return Err(Failure::Error(format!(
                "group {group:?} has no committed offsets, so --all-topics names no partition; \
                 name them with --topic"
            )));
        }
    } else if a.topic.is_empty() {
        return Err(usage(
            "name the partitions to move: --topic TOPIC[:P,...] or --all-topics",
        ));
    }
    out.extend(topic_partitions(view, &a.topic)?);
    Ok(out.into_iter().collect())
}

/// The partitions `--topic` specs name (`TOPIC` for all, `TOPIC:P,P,...` for some).
fn topic_partitions(view: &StoreView, specs: &[String]) -> Result<Vec<TopicPartition>, Failure> {
    let mut out = BTreeSet::new();
    for spec in specs {
        let (topic, parts) = match spec.split_once(':') {
            Some((t, ps)) => {
                let mut v = Vec::new();
                for p in ps.split(',') {
                    v.push(p.parse::<u32>().map_err(|_| {
                        crate::usage(format!("--topic {spec:?}: expected TOPIC or TOPIC:P,P,..."))
                    })?);
                }
                (t, Some(v))
            }
            None => (spec.as_str(), None),
        };
        let n = view.topic_config(topic)?.get_partitions();
        for p in parts.unwrap_or_else(|| (0..n).collect()) {
            if p >= n {
                return Err(Failure::Error(format!(
                    "topic {topic:?} has no partition {p} (it has {n})"
                )));
            }
            out.insert(TopicPartition::new(topic, p));
        }
    }
    Ok(out.into_iter().collect())
}

type Plan = Vec<(TopicPartition, Option<u64>, u64)>;

fn plan(view: &StoreView, a: &ResetArgs) -> Result<Plan, Failure> {
    let committed = view.committed_offsets()?;
    let mut out = Vec::new();
    let datetime = match (&a.to_datetime, &a.by_duration) {
        (Some(t), _) => Some(parse_time(t).map_err(crate::usage)?),
        (None, Some(d)) => {
            let ago = parse_duration(d).map_err(crate::usage)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            Some(now.saturating_sub(ago))
        }
        (None, None) => None,
    };
    let from_file = match &a.from_file {
        Some(path) => Some(read_plan_file(path)?),
        None => None,
    };
    let targets = match &from_file {
        Some(f) => f.keys().cloned().collect(),
        None => targets(view, &a.group, a)?,
    };
    for tp in targets {
        let p = view.partition(&tp.topic, tp.partition)?;
        let (s, e) = (p.log_start_offset(), p.log_end_offset());
        let current = committed
            .get(&(a.group.clone(), tp.clone()))
            .map(|o| o.offset);
        let new = if let Some(f) = &from_file {
            f[&tp]
        } else if a.to_earliest {
            s
        } else if a.to_latest {
            e
        } else if a.to_current {
            current.unwrap_or(e)
        } else if let Some(o) = a.to_offset {
            o
        } else if let Some(t) = datetime {
            p.offset_for_timestamp(t)?.map_or(e, |(o, _)| o)
        } else if let Some(n) = a.shift_by {
            let from = current.unwrap_or(s) as i128 + i128::from(n);
            from.clamp(0, i128::from(u64::MAX)) as u64
        } else {
            return Err(usage("no --to-* option"));
        };
        out.push((tp, current, new.clamp(s, e)));
    }
    Ok(out)
}

/// An ISO-8601 duration, `PnDTnHnMnS` (Kafka's `--by-duration`), in milliseconds.
fn parse_duration(s: &str) -> Result<i64, String> {
    let bad =
        || format!("--by-duration {s:?}: expected an ISO-8601 duration like PT30M or P1DT12H");
    let rest = s.strip_prefix(['P', 'p']).ok_or_else(bad)?;
    let (days, time) = match rest.split_once(['T', 't']) {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut ms: i64 = 0;
    let mut any = false;
    let mut add = |part: &str, units: &[(char, i64)]| -> Result<(), String> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || (c == '.' && !num.contains('.')) {
                num.push(c);
                continue;
            }
            let unit = units
                .iter()
                .find(|(u, _)| u.eq_ignore_ascii_case(&c))
                .ok_or_else(bad)?;
            let n: f64 = num.parse().map_err(|_| bad())?;
            ms = ms.saturating_add((n * unit.1 as f64) as i64);
            num.clear();
            any = true;
        }
        if num.is_empty() {
            Ok(())
        } else {
            Err(bad())
        }
    };
    add(days, &[('D', 86_400_000)])?;
    if let Some(t) = time {
        if t.is_empty() {
            return Err(bad());
        }
        add(t, &[('H', 3_600_000), ('M', 60_000), ('S', 1000)])?;
    }
    if !any {
        return Err(bad());
    }
    Ok(ms)
}

/// Reads a reset plan, lines `topic,partition,offset` (Kafka's export format for one group;
/// lines `group,topic,partition,offset` of other groups are refused).
fn read_plan_file(path: &Path) -> Result<BTreeMap<TopicPartition, u64>, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Error(format!("cannot read {}: {e}", path.display())))?;
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let bad = || {
            usage(format!(
                "{}:{}: expected topic,partition,offset, found {line:?}",
                path.display(),
                i + 1
            ))
        };
        let f: Vec<&str> = line.split(',').collect();
        let [topic, partition, offset] = f[..] else {
            return Err(bad());
        };
        let tp = TopicPartition::new(topic, partition.parse().map_err(|_| bad())?);
        out.insert(tp, offset.parse().map_err(|_| bad())?);
    }
    if out.is_empty() {
        return Err(usage(format!("{} names no partition", path.display())));
    }
    Ok(out)
}

fn reset(dir: &Path, a: &ResetArgs, w: &mut dyn Write) -> CmdResult {
    // With --execute the store is locked first, so that the plan shown is the plan made.
    let store = if a.execute {
        Some(open_for_group(dir, &a.group)?)
    } else {
        None
    };
    let view = crate::open_view(dir)?;
    let plan = plan(&view, a)?;
    if a.export {
        for (tp, _, n) in &plan {
            writeln!(w, "{},{},{n}", tp.topic, tp.partition)?;
        }
    } else if a.out.json {
        let v: Vec<Value> = plan
            .iter()
            .map(|(tp, c, n)| json!({"topic": tp.topic, "partition": tp.partition, "current_offset": c, "new_offset": n}))
            .collect();
        print_json(
            w,
            &json!({"group": a.group, "executed": a.execute, "plan": v}),
        )?;
    } else {
        let mut t = Table::new(&["TOPIC", "PARTITION", "CURRENT", "NEW"]);
        for (tp, c, n) in &plan {
            t.row(vec![
                tp.topic.clone(),
                tp.partition.to_string(),
                c.map_or_else(|| "-".into(), |c| c.to_string()),
                n.to_string(),
            ]);
        }
        t.print(w)?;
    }
    let Some(store) = store else {
        if !a.out.json && !a.export {
            writeln!(
                w,
                "Dry run: nothing was changed. Add --execute to move the offsets."
            )?;
        }
        return Ok(());
    };
    let mut consumer = store.consumer(ConsumerConfig::new(a.group.as_str()))?;
    let tps: Vec<TopicPartition> = plan.iter().map(|(tp, _, _)| tp.clone()).collect();
    consumer.assign(&tps)?;
    let offsets: Vec<(TopicPartition, OffsetAndMetadata)> = plan
        .into_iter()
        .map(|(tp, _, n)| (tp, OffsetAndMetadata::new(n)))
        .collect();
    consumer.commit_offsets(&offsets)?;
    consumer.close()?;
    if !a.out.json && !a.export {
        writeln!(w, "Moved the offsets of {} partitions.", offsets.len())?;
    }
    Ok(())
}
