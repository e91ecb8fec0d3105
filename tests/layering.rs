//! The layering check: "calls only go down" (ARCHITECTURE.md, section Layers), as a test.
//!
//! It reads every `src/**/*.rs` file (not `src/bin/`, a user of the public API), strips comments
//! and string literals, and collects each path that leaves the file's top-level module:
//! `crate::<module>`, `crate::<Item>` (resolved through the crate root's `pub use` lines to the
//! module that defines the item), grouped `crate::{..}` imports, and `super::` chains that
//! climb out of the top-level module. Each such reference is an edge from the file's top-level
//! module to another; the test fails, naming file, line and edge, when an edge goes to a module
//! that is not strictly below in [`LAYERS`]. Modules in one row are peers that may not refer to
//! each other, so the rows also rule out every cycle. A module missing from the table fails too.
//!
//! Test modules (`#[cfg(test)]`) count like the code around them. The crate root (`lib.rs`)
//! declares and re-exports every module, so it is the one file not checked.
//!
//! Run it alone with `cargo test --test layering`. `RIVERBED_LAYERING_SRC=<dir>` checks another
//! source tree (to see it fail on an older one). Uses nothing but std.
//!
//! KEEP IN SYNC with the diagram in ARCHITECTURE.md ("Layers"): the same modules, in the same
//! order.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, top first. A module may refer only to modules in rows below its own.
const LAYERS: &[&[&str]] = &[
    // The Kafka wire protocol front (feature `server`): serves a store to remote clients.
    &["server"],
    // Riverbed Streams: built on the public API.
    &["streams"],
    // Read-only tools over a data directory another process may own.
    &["inspect"],
    // The transactional producer (a producer plus offsets in one transaction).
    &["txn"],
    // The clients: each keeps the `Store` handle it was made from.
    &["producer", "consumer"],
    // The handle users open: lock, topic admin and metadata, groups, maintenance.
    &["store"],
    // The store's internal logs: committed offsets, the transaction coordinator.
    &["coordinator"],
    // Topics and partitions at run time: `Topic`, `Partition`, `Notify`, the produce queue.
    &["partition"],
    // Group membership and assignment (pure; no I/O).
    &["group"],
    // Names, `TopicConfig`, the `topics` metadata file.
    &["topic"],
    // One partition's log; the key-to-partition hash and the sticky partitioner.
    &["log", "partitioner"],
    &["config"],
    &["segment", "small_file"],
    &["record"],
    &["fs"],
    &["failpoint", "clock"],
    &["error"],
    &["topic_partition"],
];

fn rank_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|row| row.contains(&module))
}

/// Replaces comments, string literals and char literals with spaces (newlines kept, so line
/// numbers stay right).
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let blank = |c: u8| if c == b'\n' { b'\n' } else { b' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !is_ident(b[i - 1]))
        {
            // A raw string r"..." or r#"..."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"'
                    && b[j + 1..]
                        .iter()
                        .take(hashes)
                        .filter(|&&h| h == b'#')
                        .count()
                        == hashes
                {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(b[i..j.min(b.len())].iter().map(|&c| blank(c)));
            i = j;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out.push(b' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\''), or a lifetime ('a), which is kept.
            let end = if b.get(i + 1) == Some(&b'\\') {
                b[i + 3..]
                    .iter()
                    .position(|&c| c == b'\'')
                    .map(|p| i + 3 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    out.extend(std::iter::repeat_n(b' ', e + 1 - i));
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// The identifier starting at `i` (after spaces).
fn ident_at(b: &[u8], mut i: usize) -> (String, usize) {
    while i < b.len() && b[i].is_ascii_whitespace() {
        i += 1;
    }
    let start = i;
    while i < b.len() && is_ident(b[i]) {
        i += 1;
    }
    (String::from_utf8_lossy(&b[start..i]).into_owned(), i)
}

/// The first identifier of each comma-separated entry of the `{ .. }` group opening at `i`.
fn group_heads(b: &[u8], i: usize) -> Vec<(String, usize)> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut j = i;
    let mut expect = true;
    while j < b.len() {
        match b[j] {
            b'{' => {
                depth += 1;
                if depth == 1 {
                    expect = true;
                }
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => expect = true,
            c if depth == 1 && expect && is_ident(c) => {
                let (id, end) = ident_at(b, j);
                heads.push((id, j));
                expect = false;
                j = end;
                continue;
            }
            _ => {}
        }
        j += 1;
    }
    heads
}

/// One file's module path: `src/a/b.rs` is `[a, b]`, `src/a/mod.rs` and `src/a.rs` are `[a]`.
fn module_path(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Item name → top-level module, from the crate root's `pub use <module>::..` lines (not the
/// `internals` facade).
fn root_reexports(lib: &str) -> BTreeMap<String, String> {
    let lib = strip(lib);
    let lib = match lib.find("pub mod internals") {
        Some(i) => &lib[..i],
        None => &lib[..],
    };
    let mut map = BTreeMap::new();
    for stmt in lib.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let body = &stmt[at + "pub use ".len()..];
        let module: String = body
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let names = match (body.find('{'), body.rfind('}')) {
            (Some(a), Some(z)) => body[a + 1..z].to_string(),
            _ => body.rsplit("::").next().unwrap_or("").to_string(),
        };
        for name in names.split(',') {
            let name = name.rsplit("::").next().unwrap_or("").trim();
            let name = name.rsplit(" as ").next().unwrap_or("").trim();
            if !name.is_empty() && name != "self" {
                map.insert(name.to_string(), module.clone());
            }
        }
    }
    map
}

#[derive(Debug)]
struct Edge {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
    text: String,
}

fn edges(root: &Path) -> (Vec<Edge>, BTreeSet<String>) {
    let lib = std::fs::read_to_string(root.join("lib.rs")).expect("read lib.rs");
    let reexports = root_reexports(&lib);
    let mut files = Vec::new();
    rs_files(root, &mut files);
    let mut out = Vec::new();
    let mut modules = BTreeSet::new();
    for file in files {
        let path = module_path(root, &file);
        if path.is_empty() || path == ["lib"] || path[0] == "bin" || path == ["main"] {
            continue;
        }
        let top = path[0].clone();
        modules.insert(top.clone());
        let src = std::fs::read_to_string(&file).expect("read source");
        let text = strip(&src);
        let b = text.as_bytes();
        let line_of = |i: usize| 1 + b[..i].iter().filter(|&&c| c == b'\n').count();
        // Inline `mod x { .. }` blocks add to the module depth that `super::` climbs.
        let mut braces: Vec<bool> = Vec::new();
        let mut pending_mod = false;
        let mut i = 0;
        let push = |at: usize, target: String, out: &mut Vec<Edge>| {
            let target = if target
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_lowercase())
                && !reexports.contains_key(&target)
            {
                target
            } else {
                match reexports.get(&target) {
                    Some(m) => m.clone(),
                    None => format!("<unresolved crate::{target}>"),
                }
            };
            if target != top {
                let l = line_of(at);
                out.push(Edge {
                    file: file.clone(),
                    line: l,
                    from: top.clone(),
                    to: target,
                    text: src.lines().nth(l - 1).unwrap_or("").trim().to_string(),
                });
            }
        };
        while i < b.len() {
            let c = b[i];
            if c == b'{' {
                braces.push(pending_mod);
                pending_mod = false;
                i += 1;
                continue;
            }
            if c == b'}' {
                braces.pop();
                i += 1;
                continue;
            }
            if c == b';' {
                pending_mod = false;
            }
            if !is_ident(c) || (i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b'$')) {
                i += 1;
                continue;
            }
            let (word, end) = ident_at(b, i);
            if word == "mod" {
                pending_mod = true;
            } else if word == "crate" && text[end..].starts_with("::") {
                let after = end + 2;
                if b.get(after) == Some(&b'{') {
                    for (head, at) in group_heads(b, after) {
                        if head != "self" {
                            push(at, head, &mut out);
                        }
                    }
                } else {
                    let (target, _) = ident_at(b, after);
                    push(i, target, &mut out);
                }
            } else if word == "super" && text[end..].starts_with("::") {
                let mut k = 1;
                let mut j = end + 2;
                loop {
                    let (w, e) = ident_at(b, j);
                    if w == "super" && text[e..].starts_with("::") {
                        k += 1;
                        j = e + 2;
                    } else {
                        break;
                    }
                }
                let depth = path.len() + braces.iter().filter(|m| **m).count();
                if k >= depth {
                    // Climbed to the crate root: what follows names a top-level module or item.
                    if b.get(j) == Some(&b'{') {
                        for (head, at) in group_heads(b, j) {
                            push(at, head, &mut out);
                        }
                    } else {
                        let (target, _) = ident_at(b, j);
                        push(i, target, &mut out);
                    }
                }
            }
            i = end;
        }
    }
    (out, modules)
}

#[test]
fn calls_only_go_down() {
    let root = match std::env::var_os("RIVERBED_LAYERING_SRC") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
    };
    let (edges, modules) = edges(&root);
    let mut problems = Vec::new();
    for m in &modules {
        if rank_of(m).is_none() {
            problems.push(format!(
                "module `{m}` is not in the layer table of tests/layering.rs (nor, presumably, in ARCHITECTURE.md's diagram)"
            ));
        }
    }
    let mut seen = BTreeSet::new();
    for e in &edges {
        let ok = match (rank_of(&e.from), rank_of(&e.to)) {
            (Some(a), Some(b)) => b > a,
            (Some(_), None) => false,
            (None, _) => continue,
        };
        if !ok {
            let why = match (rank_of(&e.from), rank_of(&e.to)) {
                (_, None) => "is not in the layer table".to_string(),
                (Some(a), Some(b)) if a == b => "is a peer (same row)".to_string(),
                _ => "is above it".to_string(),
            };
            problems.push(format!(
                "{}:{}: `{}` -> `{}`, which {why}: {}",
                e.file.display(),
                e.line,
                e.from,
                e.to,
                e.text
            ));
            seen.insert((e.from.clone(), e.to.clone()));
        }
    }
    assert!(
        problems.is_empty(),
        "{} reference(s) break the layering (edges: {}):\n{}",
        problems.len(),
        seen.iter()
            .map(|(a, b)| format!("{a}->{b}"))
            .collect::<Vec<_>>()
            .join(" "),
        problems.join("\n")
    );
}

/// The checker itself finds what it should: paths, grouped imports, root re-exports and
/// `super::` chains that leave a module, and none in comments or strings.
#[test]
fn the_checker_sees_edges() {
    let dir = std::env::temp_dir().join(format!("riverbed-layering-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("log")).unwrap();
    std::fs::write(
        dir.join("lib.rs"),
        "mod log;\npub use store::{Store, StoreConfig};\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("log/mod.rs"),
        "// crate::streams in a comment\nuse crate::{error::Error, topic};\nfn f() { let s = \"crate::inspect\"; let c = '\"'; crate::Store::open(); }\nmod inner { use super::super::txn::X; use super::Y; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("log/sub.rs"),
        "use super::super::group::G;\nuse super::z;\n",
    )
    .unwrap();
    let (edges, _) = edges(&dir);
    let got: BTreeSet<(String, usize)> = edges.iter().map(|e| (e.to.clone(), e.line)).collect();
    let _ = std::fs::remove_dir_all(&dir);
    let want: BTreeSet<(String, usize)> = [
        ("error".to_string(), 2),
        ("topic".to_string(), 2),
        ("store".to_string(), 3),
        ("txn".to_string(), 4),
        ("group".to_string(), 1),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "{edges:#?}");
}
