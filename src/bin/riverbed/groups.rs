//! `riverbed groups`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};

use riverbed::inspect::{LockState, StoreView};
use riverbed::{ConsumerConfig, GroupDescription, OffsetAndMetadata, TopicPartition};

use crate::out::{parse_time, print_json, Table};
use crate::{open_store, Cli, CmdResult, Failure, Output};

#[derive(Subcommand)]
pub enum GroupsCmd {
    /// List groups with committed offsets or live members (read-only).
    #[command(after_help = "Example:\n  riverbed -d ./data groups list")]
    List {
        #[command(flatten)]
        out: Output,
    },
    /// Show members, assignment, committed offset, end offset and lag per partition (read-only).
    #[command(after_help = "Example:\n  riverbed -d ./data groups describe billing --json")]
    Describe {
        /// Group id.
        group: String,
        #[command(flatten)]
        out: Output,
    },
    /// Move a group's committed offsets. Shows the plan; changes nothing without --execute.
    #[command(
        after_help = "Examples:\n  riverbed -d ./data groups reset-offsets billing --topic events --to-earliest\n  \
        riverbed -d ./data groups reset-offsets billing --topic events:0,1 --shift-by -100 --execute\n  \
        riverbed -d ./data groups reset-offsets billing --all-topics --to-datetime 2024-05-01T00:00:00Z --execute\n\n\
        Refused while the group has live members (stop its consumers first), as in Kafka."
    )]
    #[command(group(ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
    #[command(group(ArgGroup::new("which").required(true).args(["topic", "all_topics"])))]
    ResetOffsets(ResetArgs),
    /// Delete a group's committed offsets.
    #[command(after_help = "Example:\n  riverbed -d ./data groups delete billing")]
    Delete {
        /// Group id.
        group: String,
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
    /// To this offset (clamped to the log).
    #[arg(long, value_name = "OFFSET")]
    to_offset: Option<u64>,
    /// To the first record at or after this time (RFC 3339 or ms).
    #[arg(long, value_name = "TIME")]
    to_datetime: Option<String>,
    /// By this many records from the committed offset (negative: back).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    shift_by: Option<i64>,
    /// Make the change (without it, only the plan is shown).
    #[arg(long)]
    execute: bool,
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
    let view = StoreView::open(dir)?;
    if let Some(g) = live_group(&view, group)? {
        return Err(Failure::Error(format!(
            "group {group:?} has {} live member(s) in process {}; stop its consumers first. Nothing was changed.",
            g.members.len(),
            holder_pid(dir)
        )));
    }
    open_store(dir, false)
}

pub fn run(cli: &Cli, cmd: &GroupsCmd) -> CmdResult {
    let dir = cli.dir();
    let stdout = std::io::stdout();
    let mut w = stdout.lock();
    match cmd {
        GroupsCmd::List { out } => {
            let view = StoreView::open(&dir)?;
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
        GroupsCmd::Describe { group, out } => describe(&dir, group, *out, &mut w)?,
        GroupsCmd::ResetOffsets(a) => reset(&dir, a, &mut w)?,
        GroupsCmd::Delete { group } => {
            let store = open_for_group(&dir, group)?;
            let n = store.delete_group(group)?;
            writeln!(
                w,
                "deleted group {group} (committed offsets of {n} partitions)"
            )?;
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

fn describe(dir: &Path, group: &str, out: Output, w: &mut dyn Write) -> CmdResult {
    let view = StoreView::open(dir)?;
    let committed: BTreeMap<TopicPartition, OffsetAndMetadata> = view
        .committed_offsets()?
        .into_iter()
        .filter(|((g, _), _)| g == group)
        .map(|((_, tp), o)| (tp, o))
        .collect();
    let live = live_group(&view, group)?;
    if committed.is_empty() && live.is_none() {
        return Err(Failure::Error(format!(
            "group {group:?} has no committed offsets and no live members"
        )));
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
        view: &view,
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
    if out.json {
        let parts: Vec<Value> = rows
            .iter()
            .map(|(tp, c, e, lag, m)| {
                json!({"topic": tp.topic, "partition": tp.partition, "committed_offset": c,
                       "log_end_offset": e, "lag": lag, "member": m})
            })
            .collect();
        let members: Vec<Value> = live.as_ref().map_or(Vec::new(), |g| {
            g.members
                .iter()
                .map(|(m, ps)| {
                    json!({"member": m, "assignment": ps.iter().map(|tp| tp.to_string()).collect::<Vec<_>>()})
                })
                .collect()
        });
        print_json(
            w,
            &json!({"group": group, "state": state(live.as_ref()),
                    "generation": live.as_ref().map(|g| g.generation), "members": members,
                    "partitions": parts, "total_lag": total_lag}),
        )?;
        return Ok(());
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
    Ok(())
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
    }
    for spec in &a.topic {
        let (topic, parts) = match spec.split_once(':') {
            Some((t, ps)) => {
                let mut v = Vec::new();
                for p in ps.split(',') {
                    v.push(p.parse::<u32>().map_err(|_| {
                        Failure::Error(format!("--topic {spec:?}: expected TOPIC or TOPIC:P,P,..."))
                    })?);
                }
                (t, Some(v))
            }
            None => (spec.as_str(), None),
        };
        let n = view.topic_config(topic)?.partitions;
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
    let datetime = match &a.to_datetime {
        Some(t) => Some(parse_time(t).map_err(Failure::Error)?),
        None => None,
    };
    for tp in targets(view, &a.group, a)? {
        let p = view.partition(&tp.topic, tp.partition)?;
        let (s, e) = (p.log_start_offset(), p.log_end_offset());
        let current = committed
            .get(&(a.group.clone(), tp.clone()))
            .map(|o| o.offset);
        let new = if a.to_earliest {
            s
        } else if a.to_latest {
            e
        } else if let Some(o) = a.to_offset {
            o
        } else if let Some(t) = datetime {
            p.offset_for_timestamp(t)?.map_or(e, |(o, _)| o)
        } else if let Some(n) = a.shift_by {
            let from = current.unwrap_or(s) as i128 + i128::from(n);
            from.clamp(0, i128::from(u64::MAX)) as u64
        } else {
            return Err(Failure::Error("no --to-* option".into()));
        };
        out.push((tp, current, new.clamp(s, e)));
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
    let view = StoreView::open(dir)?;
    let plan = plan(&view, a)?;
    if a.out.json {
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
        if !a.out.json {
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
    if !a.out.json {
        writeln!(w, "Moved the offsets of {} partitions.", offsets.len())?;
    }
    Ok(())
}
