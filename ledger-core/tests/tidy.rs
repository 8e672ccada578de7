//! The shape of the workspace, checked: the import graph of every crate's top-level modules has
//! no cycle, no function is over 70 lines, and nothing points at files outside the repository.
//! It reads the sources of the whole workspace (`CARGO_MANIFEST_DIR/..`), with hand-written
//! scanning: comments, string literals and `#[cfg(test)]` items are blanked out, then every
//! `crate::x` and `super::x` path that leaves its top-level module is an edge.
//!
//! ledger-core must be clean, and its modules must sit in the layers of [`CORE_LAYERS`].
//! ledger-node and ledger-client are being reshaped by others: their known cycles and long
//! functions are listed below (as measured when this test was written), so the test passes today
//! and fails on a *new* cycle or long function. Shrink those lists as the crates are reshaped;
//! the test also fails on an entry that no longer happens, so the lists cannot go stale.
//! `TIDY_GRAPH=1 cargo test -p ledger-core --test tidy -- --nocapture` prints every graph.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest function body allowed, in lines (from the `fn` line to its closing brace).
const MAX_FN_LINES: usize = 70;

/// Long functions of ledger-core that are honest match tables: one arm per event kind, each arm
/// a field mapping or a single call, nothing else in the function. Splitting them would only
/// scatter one table over many functions. (file, function)
const CORE_MATCH_TABLES: &[(&str, &str)] = &[
    // Model → protobuf, one arm per event kind.
    ("wire.rs", "kind_to_pb"),
    // Protobuf → model, one arm per event kind.
    ("wire.rs", "kind_from_pb"),
    // The signer policy: one arm per kind (and per stored record a kind's rule needs), each a
    // single call.
    ("signers.rs", "authorize"),
];

/// Known cycles, each as the sorted set of the modules of one strongly connected component.
/// (crate target, modules) None is left: every crate imports without a cycle.
const KNOWN_CYCLES: &[(&str, &[&str])] = &[];

/// Known long functions outside ledger-core's match tables. (crate, file, function) None is
/// left.
const KNOWN_LONG: &[(&str, &str, &str)] = &[];

/// ledger-core's layers, top first, as ARCHITECTURE.md draws them: a module imports only from
/// layers below its own. A new module must be placed here.
const CORE_LAYERS: &[&[&str]] = &[
    &["state"],
    &["effects"],
    &["projection"],
    &["rules", "signers", "statement"],
    &["authority", "fact"],
    &["genesis", "records"],
    &["envelope", "json"],
    &["wire", "schema", "rulebook", "validate"],
    &["event", "log_tree"],
    &["params", "act", "merkle", "checkpoint"],
    &[
        "ids",
        "jurisdiction",
        "money",
        "time",
        "limits",
        "refusal",
        "kv",
    ],
];

/// One compiled target: its name, its source directory and its root file.
struct Target {
    name: &'static str,
    src: &'static str,
    root: &'static str,
}

const TARGETS: &[Target] = &[
    Target {
        name: "ledger-core",
        src: "ledger-core/src",
        root: "lib.rs",
    },
    Target {
        name: "ledger-node",
        src: "ledger-node/src",
        root: "lib.rs",
    },
    Target {
        name: "ledger-client",
        src: "ledger-client/src",
        root: "lib.rs",
    },
    Target {
        name: "ledger-client (bin)",
        src: "ledger-client/src",
        root: "main.rs",
    },
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ledger-core sits in the workspace")
        .to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// Scanning: blank out what is not code.

/// The source with comments, string and char literals replaced by spaces (newlines kept, so line
/// numbers stay true) and every `#[cfg(test)]` item blanked.
fn code_of(src: &str) -> String {
    let stripped = strip_comments_and_literals(src);
    blank_test_items(&stripped)
}

fn strip_comments_and_literals(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && (i == 0 || !(b[i - 1].is_alphanumeric() || b[i - 1] == '_'))
            && raw_string_start(&b, i).is_some()
        {
            let hashes = raw_string_start(&b, i).expect("checked");
            let close: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            out.push('"');
            i += 2 + hashes;
            while i < b.len() && !b[i..].starts_with(&close) {
                out.push(blank(b[i]));
                i += 1;
            }
            out.push('"');
            i += close.len();
        } else if c == '"' {
            out.push('"');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push('"');
            i += 1;
        } else if c == '\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a): only the former closes.
            let len = if next == Some('\\') {
                b[i + 2..].iter().position(|&x| x == '\'').map(|p| p + 3)
            } else if b.get(i + 2) == Some(&'\'') {
                Some(3)
            } else {
                None
            };
            match len {
                Some(n) => {
                    out.push_str("' '");
                    out.extend(std::iter::repeat_n(' ', n - 3));
                    i += n;
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
    out
}

/// `r"`, `r#"`, `r##"`...: the number of hashes, if a raw string starts at `i`.
fn raw_string_start(b: &[char], i: usize) -> Option<usize> {
    let mut j = i + 1;
    while b.get(j) == Some(&'#') {
        j += 1;
    }
    (b.get(j) == Some(&'"')).then_some(j - i - 1)
}

/// Blanks every item marked `#[cfg(test)]`: up to its `;`, or its braced block.
fn blank_test_items(code: &str) -> String {
    let mut b: Vec<char> = code.chars().collect();
    let pattern: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + pattern.len() <= b.len() {
        if b[i..i + pattern.len()] != pattern[..] {
            i += 1;
            continue;
        }
        let mut j = i + pattern.len();
        let end = loop {
            match b.get(j) {
                None => break b.len(),
                Some(';') => break j + 1,
                Some('{') => break matching_brace(&b, j).map_or(b.len(), |e| e + 1),
                _ => j += 1,
            }
        };
        for c in &mut b[i..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end;
    }
    b.into_iter().collect()
}

/// The index of the `}` that closes the `{` at `open`.
fn matching_brace(b: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, &c) in b.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn ident_at(b: &[char], i: usize) -> String {
    b[i..].iter().take_while(|c| is_ident_char(**c)).collect()
}

/// Skips whitespace forwards from `i`.
fn skip_ws(b: &[char], mut i: usize) -> usize {
    while i < b.len() && b[i].is_whitespace() {
        i += 1;
    }
    i
}

// ---------------------------------------------------------------------------------------------
// Modules of a target and the import graph.

/// `mod x;` / `pub mod x;` / `pub(crate) mod x;` declarations of a file (not inline modules).
fn declared_modules(code: &str) -> Vec<String> {
    let b: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = find_word(&b, i, "mod") {
        let j = skip_ws(&b, p + 3);
        let name = ident_at(&b, j);
        let k = skip_ws(&b, j + name.len());
        if !name.is_empty() && b.get(k) == Some(&';') {
            out.push(name);
        }
        i = p + 3;
    }
    out
}

/// The next occurrence of `word` as a whole word at or after `from`.
fn find_word(b: &[char], from: usize, word: &str) -> Option<usize> {
    let w: Vec<char> = word.chars().collect();
    let mut i = from;
    while i + w.len() <= b.len() {
        if b[i..i + w.len()] == w[..]
            && (i == 0 || !is_ident_char(b[i - 1]))
            && b.get(i + w.len()).is_none_or(|c| !is_ident_char(*c))
        {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Names the root file re-exports (`pub use m::{A, B}`, `pub use m::A`), by the module they
/// come from, so that `crate::A` counts as a use of `m`.
fn root_reexports(code: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for stmt in code.split(';') {
        let s = stmt.trim();
        let Some(rest) = s.strip_prefix("pub use ") else {
            continue;
        };
        let rest = rest.trim();
        let Some((module, names)) = rest.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        let names = names.trim().trim_start_matches('{').trim_end_matches('}');
        for n in names.split(',') {
            let n = n.trim();
            let n = n.rsplit("::").next().unwrap_or(n);
            let n = n.split(" as ").last().unwrap_or(n).trim();
            if !n.is_empty() {
                out.insert(n.to_string(), module.to_string());
            }
        }
    }
    out
}

/// Every source file of a target's module `m`: `m.rs`, `m/mod.rs` and everything under `m/`.
fn files_of(src: &Path, m: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let single = src.join(format!("{m}.rs"));
    if single.is_file() {
        out.push(single);
    }
    let dir = src.join(m);
    if dir.is_dir() {
        walk(&dir, &mut |p| {
            if p.extension().is_some_and(|e| e == "rs") {
                out.push(p.to_path_buf());
            }
        });
    }
    out.sort();
    out
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name != "target" && !name.starts_with('.') {
                walk(&p, f);
            }
        } else {
            f(&p);
        }
    }
}

/// The module path of a file under `src` (`a/b.rs` → [a, b]; `a/mod.rs` → [a]).
fn module_path(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).expect("file under src");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// The top-level modules a file's code refers to through `crate::` and `super::` paths.
/// `path` is the file's module path; inline `mod x { .. }` blocks extend it while inside them.
fn references(
    code: &str,
    path: &[String],
    resolve: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let b: Vec<char> = code.chars().collect();
    let inline = inline_modules(&b);
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let word_start = i == 0 || !is_ident_char(b[i - 1]) && b[i - 1] != ':';
        if !word_start
            || !(b[i..].starts_with(&['c', 'r', 'a', 't', 'e', ':', ':'])
                || b[i..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']))
        {
            i += 1;
            continue;
        }
        // Resolve the leading `crate::` / `super::super::...` to an absolute module path.
        let mut here: Vec<String> = path.to_vec();
        here.extend(
            inline
                .iter()
                .filter(|(s, e, _)| *s < i && i < *e)
                .map(|(_, _, n)| n.clone()),
        );
        let mut j = i;
        let mut abs: Vec<String> = here.clone();
        loop {
            if b[j..].starts_with(&['c', 'r', 'a', 't', 'e', ':', ':']) {
                abs.clear();
                j += 7;
            } else if b[j..].starts_with(&['s', 'u', 'p', 'e', 'r', ':', ':']) {
                abs.pop();
                j += 7;
            } else {
                break;
            }
        }
        j = skip_ws(&b, j);
        let firsts: Vec<String> = if b.get(j) == Some(&'{') {
            let end = matching_brace(&b, j).unwrap_or(b.len() - 1);
            let inner: String = b[j + 1..end].iter().collect();
            split_top_level(&inner)
                .into_iter()
                .map(|s| s.trim().split("::").next().unwrap_or("").trim().to_string())
                .collect()
        } else {
            vec![ident_at(&b, j)]
        };
        for first in firsts {
            let target = match abs.first() {
                Some(top) => Some(top.clone()),
                None => resolve(&first),
            };
            if let Some(t) = target {
                out.push(t);
            }
        }
        i = j;
    }
    out
}

/// Inline modules (`mod x { .. }`) as (start, end, name).
fn inline_modules(b: &[char]) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(p) = find_word(b, i, "mod") {
        let j = skip_ws(b, p + 3);
        let name = ident_at(b, j);
        let k = skip_ws(b, j + name.len());
        if !name.is_empty() && b.get(k) == Some(&'{') {
            if let Some(e) = matching_brace(b, k) {
                out.push((k, e, name));
            }
        }
        i = p + 3;
    }
    out
}

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut cur) = (0, String::new());
    for c in s.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// The import graph of a target at top-level-module granularity: module → modules it uses.
fn import_graph(t: &Target) -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace().join(t.src);
    let root_code = code_of(&read(&src.join(t.root)));
    let modules: BTreeSet<String> = declared_modules(&root_code).into_iter().collect();
    let reexports = root_reexports(&root_code, &modules);
    let resolve = |name: &str| -> Option<String> {
        if modules.contains(name) {
            Some(name.to_string())
        } else {
            reexports.get(name).cloned()
        }
    };
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &modules {
        let edges = graph.entry(m.clone()).or_default();
        for file in files_of(&src, m) {
            let code = code_of(&read(&file));
            for r in references(&code, &module_path(&src, &file), &resolve) {
                if &r != m {
                    edges.insert(r);
                }
            }
        }
    }
    graph
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()))
}

/// Strongly connected components with more than one module (Tarjan), each sorted.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Tarjan<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    impl<'a> Tarjan<'a> {
        fn visit(&mut self, v: &'a str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on_stack.insert(v);
            for w in self.graph.get(v).into_iter().flatten() {
                let w = w.as_str();
                if !self.graph.contains_key(w) {
                    continue;
                }
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let lw = self.low[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(lw);
                } else if self.on_stack.contains(w) {
                    let iw = self.index[w];
                    let lv = self.low.get_mut(v).expect("visited");
                    *lv = (*lv).min(iw);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on_stack.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v);
        }
    }
    t.out.sort();
    t.out
}

/// One path around a strongly connected component, for the failure message (a → b → … → a).
fn cycle_path(graph: &BTreeMap<String, BTreeSet<String>>, comp: &[String]) -> String {
    let inside: BTreeSet<&str> = comp.iter().map(|s| s.as_str()).collect();
    let start = comp[0].as_str();
    // Breadth-first from start's successors back to start, within the component.
    let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(v) = queue.pop_front() {
        for w in graph[v]
            .iter()
            .map(|s| s.as_str())
            .filter(|w| inside.contains(w))
        {
            if w == start {
                let mut path = vec![start, v];
                let mut x = v;
                while x != start {
                    x = prev[x];
                    path.push(x);
                }
                path.reverse();
                return path.join(" → ");
            }
            if !prev.contains_key(w) {
                prev.insert(w, v);
                queue.push_back(w);
            }
        }
    }
    comp.join(", ")
}

// ---------------------------------------------------------------------------------------------
// Function lengths.

/// Every function of a target's sources longer than [`MAX_FN_LINES`]: (file name relative to
/// src, function, lines).
fn long_functions(src_dir: &str) -> Vec<(String, String, usize)> {
    let src = workspace().join(src_dir);
    let mut out = Vec::new();
    walk(&src, &mut |p| {
        if p.extension().is_none_or(|e| e != "rs") {
            return;
        }
        let rel = p
            .strip_prefix(&src)
            .expect("under src")
            .to_string_lossy()
            .to_string();
        let code: Vec<char> = code_of(&read(p)).chars().collect();
        let mut i = 0;
        while let Some(f) = find_word(&code, i, "fn") {
            i = f + 2;
            let name_at = skip_ws(&code, f + 2);
            let name = ident_at(&code, name_at);
            if name.is_empty() {
                continue;
            }
            // The body opens at the first `{` after the signature, unless a `;` ends it first
            // (a trait method without a body).
            let Some(open) = code[name_at..]
                .iter()
                .position(|&c| c == '{' || c == ';')
                .map(|k| name_at + k)
                .filter(|&k| code[k] == '{')
            else {
                continue;
            };
            let Some(close) = matching_brace(&code, open) else {
                continue;
            };
            let line_of = |k: usize| code[..k].iter().filter(|&&c| c == '\n').count();
            let lines = line_of(close) - line_of(f) + 1;
            if lines > MAX_FN_LINES {
                out.push((rel.clone(), name, lines));
            }
        }
    });
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------------
// The checks.

#[test]
fn no_module_import_cycles() {
    let mut failures = Vec::new();
    let mut seen_known = BTreeSet::new();
    for t in TARGETS {
        let graph = import_graph(t);
        assert!(
            graph.len() >= 2,
            "{}: found only {} modules; is the scanner still reading {}?",
            t.name,
            graph.len(),
            t.src
        );
        if std::env::var_os("TIDY_GRAPH").is_some() {
            for (m, uses) in &graph {
                eprintln!(
                    "{}: {m} → {}",
                    t.name,
                    uses.iter().cloned().collect::<Vec<_>>().join(" ")
                );
            }
        }
        for comp in cycles(&graph) {
            let known = KNOWN_CYCLES.iter().any(|(name, mods)| {
                *name == t.name && mods.iter().copied().eq(comp.iter().map(|s| s.as_str()))
            });
            if known {
                eprintln!("known: {}: cycle {}", t.name, cycle_path(&graph, &comp));
                seen_known.insert((t.name, comp.clone()));
            } else {
                failures.push(format!(
                    "{}: import cycle {}  (whole component: {})",
                    t.name,
                    cycle_path(&graph, &comp),
                    comp.join(", ")
                ));
            }
        }
    }
    for (name, mods) in KNOWN_CYCLES {
        let comp: Vec<String> = mods.iter().map(|s| s.to_string()).collect();
        if !seen_known.contains(&(*name, comp)) {
            failures.push(format!(
                "{name}: the known cycle {mods:?} is gone or changed; update KNOWN_CYCLES"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn core_modules_import_downwards_only() {
    let graph = import_graph(&TARGETS[0]);
    let layer_of = |m: &str| CORE_LAYERS.iter().position(|l| l.contains(&m));
    let mut failures = Vec::new();
    for (m, uses) in &graph {
        let Some(mine) = layer_of(m) else {
            failures.push(format!(
                "ledger-core: module {m} is in no layer of CORE_LAYERS"
            ));
            continue;
        };
        for u in uses {
            // Layers are listed top first: a lower layer has a larger position.
            if layer_of(u).is_none_or(|theirs| theirs <= mine) {
                failures.push(format!(
                    "ledger-core: {m} imports {u}, which is not in a layer below it"
                ));
            }
        }
    }
    for m in CORE_LAYERS.iter().flat_map(|l| l.iter()) {
        if !graph.contains_key(*m) {
            failures.push(format!(
                "ledger-core: CORE_LAYERS names {m}, which is no module"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn no_function_over_70_lines() {
    let mut failures = Vec::new();
    let mut crates: Vec<(&str, &str)> = TARGETS.iter().map(|t| (t.name, t.src)).collect();
    crates.dedup_by_key(|(_, src)| *src);
    let mut seen_known = BTreeSet::new();
    for (name, src) in crates {
        let name = name.trim_end_matches(" (bin)");
        for (file, f, lines) in long_functions(src) {
            let allowed = (name == "ledger-core"
                && CORE_MATCH_TABLES.contains(&(file.as_str(), f.as_str())))
                || KNOWN_LONG.contains(&(name, file.as_str(), f.as_str()));
            if allowed {
                eprintln!("allowed: {name}: {file}: fn {f} has {lines} lines");
                seen_known.insert((name.to_string(), file.clone(), f.clone()));
            } else {
                failures.push(format!(
                    "{name}: {file}: fn {f} has {lines} lines (max {MAX_FN_LINES})"
                ));
            }
        }
    }
    let listed = CORE_MATCH_TABLES
        .iter()
        .map(|(file, f)| ("ledger-core", *file, *f))
        .chain(KNOWN_LONG.iter().copied());
    for (name, file, f) in listed {
        if !seen_known.contains(&(name.to_string(), file.to_string(), f.to_string())) {
            failures.push(format!(
                "{name}: {file}: fn {f} is listed as allowed but is no longer over {MAX_FN_LINES} lines (or is gone); remove it from the list"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}\n", failures.join("\n"));
}

#[test]
fn nothing_refers_outside_the_repository() {
    // Built from parts so that this file does not match itself.
    let outside = ["..", "/shared"].concat();
    let mut hits = Vec::new();
    walk(&workspace(), &mut |p| {
        if p.extension().is_none_or(|e| e != "rs" && e != "md") {
            return;
        }
        let Ok(text) = std::fs::read_to_string(p) else {
            return;
        };
        for (n, line) in text.lines().enumerate() {
            if line.contains(&outside) {
                hits.push(format!("{}:{}: {}", p.display(), n + 1, line.trim()));
            }
        }
    });
    assert!(
        hits.is_empty(),
        "files refer to {outside}:\n{}",
        hits.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The scanner itself, on small inputs, so that a broken scanner cannot pass everything.

#[test]
fn scanner_sees_crate_and_super_paths_and_skips_comments_strings_and_tests() {
    let src = r##"
        // use crate::commented;
        /* crate::blocked */
        use crate::alpha::X;
        use crate::{beta::Y, gamma};
        fn f() { let s = "crate::quoted"; let r = r#"crate::raw"#; crate::delta::go(); }
        fn g<'a>(x: &'a str) -> char { '}' }
        mod inner { use super::epsilon; use super::super::zeta; }
        #[cfg(test)]
        mod tests { use crate::hidden; }
    "##;
    let code = code_of(src);
    let resolve = |n: &str| Some(n.to_string());
    let mut refs = references(&code, &["file".to_string()], &resolve);
    refs.sort();
    // `super::epsilon` inside `inner` is `file::epsilon`: the file's own module.
    assert_eq!(refs, ["alpha", "beta", "delta", "file", "gamma", "zeta"]);
}

#[test]
fn cycle_finder_names_the_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        g.entry(a.into()).or_default().insert(b.into());
        g.entry(b.into()).or_default();
    }
    let found = cycles(&g);
    assert_eq!(found, vec![vec!["a".to_string(), "b".into(), "c".into()]]);
    assert_eq!(cycle_path(&g, &found[0]), "a → b → c → a");
    g.get_mut("c").expect("c").remove("a");
    assert!(cycles(&g).is_empty());
}
