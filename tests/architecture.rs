//! The layering, read from the source: the graph of top-level modules has no cycle, nor has the
//! graph of files (no two files import each other, directly or through others, in `src/` and in
//! every crate under `crates/`), no function outside tests is longer than 100 lines, each built-in
//! platform's slug is written as a string literal in one place only, and a platform's name stands
//! only in its own modules (the service's and the sandbox's). The connect workflow sits above the
//! flow and the lifecycle, below the edge. No service is needed.
//!
//! The source is read with a small lexer (comments dropped, string literals collected, braces
//! counted outside literals), not a parser: enough for this crate's code, which `cargo fmt` keeps
//! regular.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use growth_engine::platforms::BUILT_IN;

/// The longest a function outside tests may be.
const MAX_FUNCTION_LINES: usize = 100;

/// One source file, lexed.
struct Source {
    /// Path relative to `src/`.
    path: String,
    /// The top-level module it belongs to (`src/a.rs` and `src/a/**` are `a`).
    module: String,
    /// The code with comments removed and literals blanked (same length and lines as the file).
    code: Vec<char>,
    /// The string literals, with the offset of their opening quote.
    strings: Vec<(usize, String)>,
    /// Offsets covered by `#[cfg(test)]` items.
    test_ranges: Vec<(usize, usize)>,
}

impl Source {
    fn in_tests(&self, offset: usize) -> bool {
        self.test_ranges
            .iter()
            .any(|(start, end)| (*start..=*end).contains(&offset))
    }

    fn line_of(&self, offset: usize) -> usize {
        1 + self.code[..offset].iter().filter(|c| **c == '\n').count()
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `src/**/*.rs` except `lib.rs` and `main.rs`, lexed.
fn sources() -> Vec<Source> {
    sources_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

/// Every `*.rs` under a crate's `root` (its `src/`), lexed; for the main crate, not `lib.rs` and
/// `main.rs`, which only declare modules.
fn sources_in(root: &Path) -> Vec<Source> {
    let root = root.to_path_buf();
    let main_crate = root == Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut sources: Vec<Source> = files
        .into_iter()
        .filter_map(|file| {
            let path = file
                .strip_prefix(&root)
                .expect("under src")
                .to_string_lossy()
                .replace('\\', "/");
            // The main crate's roots only declare modules; a member crate's `lib.rs` holds code.
            if main_crate && (path == "lib.rs" || path == "main.rs") {
                return None;
            }
            let first = path.split('/').next().unwrap_or_default();
            let module = first.trim_end_matches(".rs").to_owned();
            let text = std::fs::read_to_string(&file).expect("readable source");
            let (code, strings) = lex(&text);
            let test_ranges = cfg_test_ranges(&code);
            Some(Source {
                path,
                module,
                code,
                strings,
                test_ranges,
            })
        })
        .collect();
    // A file declared as `#[cfg(test)] mod x;` is test code from top to bottom.
    let test_files = test_module_files(&sources);
    for source in &mut sources {
        if test_files.contains(&source.path) {
            source.test_ranges = vec![(0, source.code.len())];
        }
    }
    sources
}

/// The files of modules declared under `#[cfg(test)]` without a body (`#[cfg(test)] mod tests;`).
fn test_module_files(sources: &[Source]) -> BTreeSet<String> {
    let mut files = BTreeSet::new();
    for source in sources {
        // `a.rs` and `a/mod.rs` declare children in `a/`; a crate's root, in the root.
        let stem = source.path.trim_end_matches(".rs");
        let dir = stem.strip_suffix("/mod").unwrap_or(stem);
        let dir = if stem == "lib" || stem == "main" {
            ""
        } else {
            dir
        };
        for (start, end) in &source.test_ranges {
            let item: String = source.code[*start..*end].iter().collect();
            let Some(declaration) = item.split("mod ").nth(1) else {
                continue;
            };
            let name: String = declaration.chars().take_while(|c| is_ident(*c)).collect();
            if source.code.get(*end) == Some(&';') && !name.is_empty() {
                let module = format!("{dir}/{name}");
                let module = module.trim_start_matches('/');
                files.insert(format!("{module}.rs"));
                // Its own children are test code too.
                files.extend(
                    sources
                        .iter()
                        .filter(|s| s.path.starts_with(&format!("{module}/")))
                        .map(|s| s.path.clone()),
                );
            }
        }
    }
    files
}

/// Blanks comments and the contents of string and char literals (keeping newlines), and collects
/// the string literals' contents (escapes left as written).
fn lex(text: &str) -> (Vec<char>, Vec<(usize, String)>) {
    let chars: Vec<char> = text.chars().collect();
    let mut code = chars.clone();
    let mut strings = Vec::new();
    let blank = |code: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut code[from..to] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let next = chars.get(i + 1).copied();
        match chars[i] {
            '/' if next == Some('/') => {
                let end = (i..chars.len())
                    .find(|&j| chars[j] == '\n')
                    .unwrap_or(chars.len());
                blank(&mut code, i, end);
                i = end;
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                let mut j = i;
                while j < chars.len() {
                    if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                        depth += 1;
                        j += 2;
                    } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                        depth -= 1;
                        j += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        j += 1;
                    }
                }
                blank(&mut code, i, j);
                i = j;
            }
            'r' if (next == Some('"') || next == Some('#')) && starts_token(&chars, i) => {
                let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
                if chars.get(i + 1 + hashes) != Some(&'"') {
                    i += 1;
                    continue;
                }
                let open = i + 1 + hashes;
                let closing: String = std::iter::once('"')
                    .chain(std::iter::repeat_n('#', hashes))
                    .collect();
                let mut j = open + 1;
                while j < chars.len()
                    && !chars[j..].starts_with(&closing.chars().collect::<Vec<_>>())
                {
                    j += 1;
                }
                strings.push((open, chars[open + 1..j].iter().collect()));
                blank(&mut code, open + 1, j);
                i = j + closing.len();
            }
            '"' => {
                let mut j = i + 1;
                while j < chars.len() && chars[j] != '"' {
                    j += if chars[j] == '\\' { 2 } else { 1 };
                }
                strings.push((i, chars[i + 1..j.min(chars.len())].iter().collect()));
                blank(&mut code, i + 1, j.min(chars.len()));
                i = j + 1;
            }
            '\'' => {
                // A char literal ('a', '\n', '\u{1F600}') or a lifetime ('a): a lifetime has no
                // closing quote right after its name.
                let end = if next == Some('\\') {
                    (i + 2..chars.len()).find(|&j| chars[j] == '\'')
                } else if chars.get(i + 2) == Some(&'\'') {
                    Some(i + 2)
                } else {
                    None
                };
                match end {
                    Some(end) => {
                        blank(&mut code, i + 1, end);
                        i = end + 1;
                    }
                    None => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    (code, strings)
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Whether the `r` at `i` starts a raw string (`r"`, `r#"`, `br"`), not ends an identifier.
fn starts_token(chars: &[char], i: usize) -> bool {
    let before = |n: usize| i.checked_sub(n).map(|j| chars[j]);
    match before(1) {
        Some('b') => !before(2).is_some_and(is_ident),
        Some(c) => !is_ident(c),
        None => true,
    }
}

/// The offset of the brace closing the one at `open`.
fn matching_brace(code: &[char], open: usize) -> usize {
    let mut depth = 0usize;
    for (j, c) in code.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return j;
                }
            }
            _ => {}
        }
    }
    code.len()
}

fn find_all(code: &[char], needle: &str) -> Vec<usize> {
    let needle: Vec<char> = needle.chars().collect();
    (0..code.len())
        .filter(|&i| code[i..].starts_with(&needle))
        .collect()
}

/// The items under `#[cfg(test)]`: from the attribute to the end of the item (its closing brace,
/// or its `;`).
fn cfg_test_ranges(code: &[char]) -> Vec<(usize, usize)> {
    find_all(code, "#[cfg(test)]")
        .into_iter()
        .map(|start| {
            let item = (start..code.len()).find(|&j| code[j] == '{' || code[j] == ';');
            match item {
                Some(j) if code[j] == '{' => (start, matching_brace(code, j)),
                Some(j) => (start, j),
                None => (start, code.len()),
            }
        })
        .collect()
}

/// The identifier starting at `at`.
fn ident_at(code: &[char], at: usize) -> String {
    code[at..].iter().take_while(|c| is_ident(**c)).collect()
}

/// The top-level modules a file refers to with `crate::x` (also `use crate::{x, y::z}`), outside
/// its test code.
fn references(source: &Source) -> BTreeSet<String> {
    let code = &source.code;
    let mut found = BTreeSet::new();
    for at in find_all(code, "crate::") {
        let preceded = at > 0 && (is_ident(code[at - 1]) || code[at - 1] == '$');
        if preceded || source.in_tests(at) {
            continue;
        }
        let after = at + "crate::".len();
        if code.get(after) == Some(&'{') {
            let end = matching_brace(code, after);
            let group: String = code[after + 1..end].iter().collect();
            for item in split_top_level(&group) {
                let name: String = item
                    .trim_start()
                    .chars()
                    .take_while(|c| is_ident(*c))
                    .collect();
                if !name.is_empty() && name != "self" {
                    found.insert(name);
                }
            }
        } else {
            let name = ident_at(code, after);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found.remove(&source.module);
    found
}

/// The items of a `{a, b::{c, d}, e}` group, split at its top-level commas.
fn split_top_level(group: &str) -> Vec<String> {
    let mut items = vec![String::new()];
    let mut depth = 0;
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = items.last_mut() {
            last.push(c);
        }
    }
    items
}

/// The graph of top-level modules: who refers to whom, with one file that does.
fn module_graph(sources: &[Source]) -> BTreeMap<String, BTreeMap<String, String>> {
    let modules: BTreeSet<&str> = sources.iter().map(|s| s.module.as_str()).collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for source in sources {
        let edges = graph.entry(source.module.clone()).or_default();
        for target in references(source) {
            if modules.contains(target.as_str()) {
                edges.entry(target).or_insert_with(|| source.path.clone());
            }
        }
    }
    graph
}

/// A cycle in the graph, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeMap<String, String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_graph_of_top_level_modules_has_no_cycle() {
    let sources = sources();
    let graph = module_graph(&sources);
    assert!(
        graph
            .get("platforms")
            .is_some_and(|e| e.contains_key("domain")),
        "the scan must see platforms -> domain, or it reads nothing: {graph:#?}"
    );
    for (module, edges) in &graph {
        println!("{module} -> {:?}", edges.keys().collect::<Vec<_>>());
    }
    if let Some(cycle) = find_cycle(&graph) {
        let steps: Vec<String> = cycle
            .windows(2)
            .map(|pair| {
                format!(
                    "{} -> {} (in src/{})",
                    pair[0], pair[1], graph[&pair[0]][&pair[1]]
                )
            })
            .collect();
        panic!(
            "import cycle between top-level modules:\n  {}",
            steps.join("\n  ")
        );
    }
}

#[test]
fn the_cycle_finder_finds_a_planted_cycle() {
    let edge = |to: &str| (to.to_owned(), "planted.rs".to_owned());
    let mut graph = BTreeMap::new();
    graph.insert("a".to_owned(), BTreeMap::from([edge("b")]));
    graph.insert("b".to_owned(), BTreeMap::from([edge("c")]));
    graph.insert("c".to_owned(), BTreeMap::new());
    assert_eq!(find_cycle(&graph), None);
    graph.insert("c".to_owned(), BTreeMap::from([edge("a")]));
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}

#[test]
fn the_flow_and_the_lifecycle_do_not_import_each_other() {
    let graph = module_graph(&sources());
    assert!(
        !graph["oauth"].contains_key("lifecycle"),
        "oauth -> lifecycle: {:?}",
        graph["oauth"]
    );
    assert!(
        !graph["lifecycle"].contains_key("oauth"),
        "lifecycle -> oauth: {:?}",
        graph["lifecycle"]
    );
    // The platform layer speaks only of platforms: its error wraps no store's, flow state's or
    // vault's, and the core's error above it wraps the platform layer's.
    for above in ["store", "state", "vault", "error"] {
        assert!(
            !graph["platforms"].contains_key(above),
            "platforms -> {above}: {:?}",
            graph["platforms"]
        );
    }
    for below in ["platforms", "links"] {
        assert!(
            !graph[below].contains_key("http"),
            "{below} -> http: {:?}",
            graph[below]
        );
    }
}

#[test]
fn the_connect_workflow_sits_above_the_flow_and_the_lifecycle_and_below_the_edge() {
    let graph = module_graph(&sources());
    for below in ["oauth", "lifecycle", "platforms"] {
        assert!(
            !graph[below].contains_key("connect"),
            "{below} -> connect: {:?}",
            graph[below]
        );
    }
    assert!(
        !graph["connect"].contains_key("http"),
        "connect -> http: {:?}",
        graph["connect"]
    );
    for used in ["oauth", "lifecycle"] {
        assert!(
            graph["connect"].contains_key(used),
            "the scan must see connect -> {used}: {:?}",
            graph["connect"]
        );
    }
}

#[test]
fn each_built_in_slug_is_written_as_a_literal_once_outside_tests() {
    let sources = sources();
    let mut problems = Vec::new();
    for platform in BUILT_IN.iter() {
        let places: Vec<String> = sources
            .iter()
            .flat_map(|s| {
                s.strings
                    .iter()
                    .filter(|(at, text)| text == platform.slug && !s.in_tests(*at))
                    .map(|(at, _)| format!("src/{}:{}", s.path, s.line_of(*at)))
            })
            .collect();
        if places.len() != 1 {
            problems.push(format!(
                "{:?} written {} times: {places:?}",
                platform.slug,
                places.len()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Reports every function outside `#[cfg(test)]` code, under all of `src/`, longer than
/// [`MAX_FUNCTION_LINES`] lines (from `fn` to its closing brace).
#[test]
fn no_function_outside_tests_is_longer_than_100_lines() {
    let mut offenders = Vec::new();
    let mut measured = 0;
    for source in sources() {
        let code = &source.code;
        for at in find_all(code, "fn ") {
            let keyword = at == 0 || !is_ident(code[at - 1]);
            let name = ident_at(code, at + 3);
            if !keyword || name.is_empty() || source.in_tests(at) {
                continue;
            }
            // The body's opening brace, unless a `;` ends a declaration first.
            let Some(open) = (at..code.len()).find(|&j| code[j] == '{' || code[j] == ';') else {
                continue;
            };
            if code[open] == ';' {
                continue;
            }
            let close = matching_brace(code, open);
            measured += 1;
            let lines = source.line_of(close) - source.line_of(at) + 1;
            if lines > MAX_FUNCTION_LINES {
                offenders.push(format!(
                    "src/{}:{} fn {name}: {lines} lines",
                    source.path,
                    source.line_of(at)
                ));
            }
        }
    }
    assert!(
        measured > 200,
        "the scan must see the crate's functions: {measured}"
    );
    assert!(
        offenders.is_empty(),
        "functions longer than {MAX_FUNCTION_LINES} lines:\n  {}",
        offenders.join("\n  ")
    );
}

/// The sandbox crate cannot read the platform table (the table's crate depends on it), so it keeps its
/// own list of the platforms it simulates: it must be the table's, in the table's order.
#[cfg(feature = "sandbox")]
#[test]
fn the_sandbox_simulates_exactly_the_built_in_platforms() {
    let table: Vec<&str> = BUILT_IN.iter().map(|p| p.slug).collect();
    assert_eq!(growth_engine_sandbox::PLATFORMS.to_vec(), table);
}

// ---------------------------------------------------------------------------------------------
// The graph of files.

/// A file's module path inside its crate (`a/b.rs` and `a/b/mod.rs` are `["a", "b"]`).
fn module_path(path: &str) -> Vec<String> {
    let stem = path.trim_end_matches(".rs");
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    stem.split('/').map(str::to_owned).collect()
}

/// The modules a file declares with `mod x;` or `mod x { ... }` outside tests (its children).
fn declared_children(source: &Source) -> BTreeSet<String> {
    let code = &source.code;
    find_all(code, "mod ")
        .into_iter()
        .filter(|&at| (at == 0 || !is_ident(code[at - 1])) && !source.in_tests(at))
        .map(|at| ident_at(code, at + 4))
        .filter(|name| !name.is_empty())
        .collect()
}

/// Each path a file names outside its tests (`crate::a::b`, `super::c`, `self::d`, `child::e`,
/// and the items of `use` groups), as module paths from the crate's root.
fn named_paths(source: &Source) -> Vec<Vec<String>> {
    let code = &source.code;
    let here = module_path(&source.path);
    let children = declared_children(source);
    let mut found = Vec::new();
    let mut at = 0;
    while at < code.len() {
        let starts = (at == 0
            || !(is_ident(code[at - 1]) || code[at - 1] == ':' || code[at - 1] == '$'))
            && is_ident(code[at]);
        if !starts || source.in_tests(at) {
            at += 1;
            continue;
        }
        let first = ident_at(code, at);
        let after = at + first.chars().count();
        if !code[after..].starts_with(&[':', ':']) {
            at = after;
            continue;
        }
        let base: Option<Vec<String>> = match first.as_str() {
            "crate" => Some(Vec::new()),
            "self" => Some(here.clone()),
            "super" => Some(here[..here.len().saturating_sub(1)].to_vec()),
            name if children.contains(name) => Some([here.clone(), vec![name.to_owned()]].concat()),
            _ => None,
        };
        let (end, paths) = match base {
            Some(base) => path_tail(code, after + 2, base),
            None => (after, Vec::new()),
        };
        found.extend(paths);
        at = end.max(at + 1);
    }
    found
}

/// The paths a path's tail names from `at` (after `prefix::`): one path, or each item of a `{...}`
/// group; also returns where the tail ends.
fn path_tail(code: &[char], mut at: usize, mut prefix: Vec<String>) -> (usize, Vec<Vec<String>>) {
    loop {
        if code.get(at) == Some(&'{') {
            let end = matching_brace(code, at);
            let group: String = code[at + 1..end].iter().collect();
            let mut paths = Vec::new();
            for item in split_top_level(&group) {
                let chars: Vec<char> = item.trim().chars().collect();
                if chars.is_empty() {
                    continue;
                }
                let first = ident_at(&chars, 0);
                if first == "self" {
                    paths.push(prefix.clone());
                    continue;
                }
                let next = first.chars().count();
                let mut path = prefix.clone();
                if first == "super" {
                    path.pop();
                } else {
                    path.push(first);
                }
                if chars[next..].starts_with(&[':', ':']) {
                    paths.extend(path_tail(&chars, next + 2, path).1);
                } else {
                    paths.push(path);
                }
            }
            return (end + 1, paths);
        }
        let name = ident_at(code, at);
        if name.is_empty() {
            return (at, vec![prefix]);
        }
        at += name.chars().count();
        if name == "super" {
            prefix.pop();
        } else {
            prefix.push(name);
        }
        if !code[at..].starts_with(&[':', ':']) {
            return (at, vec![prefix]);
        }
        at += 2;
    }
}

/// The graph of one crate's files: who imports whom (the file that defines the deepest module a
/// path names), with one line that does.
fn file_graph(sources: &[Source]) -> BTreeMap<String, BTreeMap<String, String>> {
    let files: BTreeMap<Vec<String>, &str> = sources
        .iter()
        .map(|s| (module_path(&s.path), s.path.as_str()))
        .collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for source in sources {
        let edges = graph.entry(source.path.clone()).or_default();
        for path in named_paths(source) {
            let target = (0..=path.len())
                .rev()
                .find_map(|n| files.get(&path[..n]).copied());
            if let Some(target) = target.filter(|t| *t != source.path) {
                edges
                    .entry(target.to_owned())
                    .or_insert_with(|| source.path.clone());
            }
        }
    }
    graph
}

/// The strongly connected groups of more than one file (each a set of files that import each other
/// through one another), by Tarjan's algorithm.
fn file_cycles(graph: &BTreeMap<String, BTreeMap<String, String>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a BTreeMap<String, BTreeMap<String, String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        groups: Vec<Vec<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, node: &'a str) {
        let n = walk.index.len();
        walk.index.insert(node, n);
        walk.low.insert(node, n);
        walk.stack.push(node);
        walk.on_stack.insert(node);
        let graph = walk.graph;
        for next in graph.get(node).into_iter().flat_map(|e| e.keys()) {
            let next = next.as_str();
            if !walk.index.contains_key(next) {
                visit(walk, next);
                let low = walk.low[node].min(walk.low[next]);
                walk.low.insert(node, low);
            } else if walk.on_stack.contains(next) {
                let low = walk.low[node].min(walk.index[next]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut group = Vec::new();
            while let Some(top) = walk.stack.pop() {
                walk.on_stack.remove(top);
                group.push(top.to_owned());
                if top == node {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                walk.groups.push(group);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        groups: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            visit(&mut walk, node);
        }
    }
    walk.groups
}

/// Every crate of the workspace: its name and its `src/`.
fn crate_roots() -> Vec<(String, PathBuf)> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut roots = vec![("growth-engine".to_owned(), manifest.join("src"))];
    let crates = std::fs::read_dir(manifest.join("crates")).expect("crates/");
    let mut members: Vec<PathBuf> = crates.map(|e| e.expect("entry").path()).collect();
    members.sort();
    for member in members {
        let name = member
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        roots.push((name, member.join("src")));
    }
    roots
}

#[test]
fn no_two_files_import_each_other_in_any_crate() {
    let mut problems = Vec::new();
    let mut files = 0;
    for (name, root) in crate_roots() {
        let graph = file_graph(&sources_in(&root));
        files += graph.len();
        for group in file_cycles(&graph) {
            let edges: Vec<String> = group
                .iter()
                .flat_map(|from| {
                    graph[from]
                        .keys()
                        .filter(|to| group.contains(to))
                        .map(move |to| format!("{from} -> {to}"))
                })
                .collect();
            problems.push(format!(
                "{name}: {} files import each other: {}",
                group.len(),
                edges.join(", ")
            ));
        }
    }
    assert!(
        files > 100,
        "the scan must see every crate's files: {files}"
    );
    assert!(
        problems.is_empty(),
        "import cycles between files:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_file_graph_resolves_paths_and_finds_a_planted_cycle() {
    let lexed = |path: &str, text: &str| {
        let (code, strings) = lex(text);
        Source {
            path: path.to_owned(),
            module: String::new(),
            test_ranges: cfg_test_ranges(&code),
            code,
            strings,
        }
    };
    let sources = vec![
        lexed("a/mod.rs", "mod b;\npub use b::Thing;\n"),
        lexed(
            "a/b.rs",
            "use crate::c::{d::Item, self};\n#[cfg(test)]\nmod tests { use super::super::X; }\n",
        ),
        lexed("c/mod.rs", "mod d;\n"),
        lexed("c/d.rs", "fn f() { super::super::a::b::g(); }\n"),
    ];
    let graph = file_graph(&sources);
    assert!(graph["a/mod.rs"].contains_key("a/b.rs"), "{graph:?}");
    assert!(graph["a/b.rs"].contains_key("c/d.rs"), "{graph:?}");
    assert!(graph["a/b.rs"].contains_key("c/mod.rs"), "{graph:?}");
    assert!(
        !graph["a/b.rs"].contains_key("a/mod.rs"),
        "test code counts not: {graph:?}"
    );
    assert_eq!(
        file_cycles(&graph),
        vec![vec!["a/b.rs".to_owned(), "c/d.rs".to_owned()]]
    );
}

// ---------------------------------------------------------------------------------------------
// Platforms' names.

/// The words that name each built-in platform, besides its slug (its brands and API names).
const PLATFORM_NAMES: [(&str, &[&str]); 6] = [
    ("meta", &["facebook", "fb", "instagram", "graph"]),
    ("tiktok", &[]),
    ("google", &["gads"]),
    ("pinterest", &[]),
    ("twitter", &[]),
    ("linkedin", &[]),
];

/// The lower-case words of an identifier (`MetaGraph` → meta, graph; `google_ads` → google, ads).
fn words(identifier: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in identifier.split('_') {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, c) in chars.iter().enumerate() {
            let boundary = c.is_uppercase()
                && i > 0
                && (chars[i - 1].is_lowercase()
                    || chars.get(i + 1).is_some_and(|n| n.is_lowercase()));
            if boundary && !word.is_empty() {
                words.push(std::mem::take(&mut word).to_lowercase());
            }
            word.push(*c);
        }
        if !word.is_empty() {
            words.push(word.to_lowercase());
        }
    }
    words
}

/// The platforms a file names outside its tests, with the line and the word: in identifiers (a
/// word of one, or an `X` heading a CamelCase one) and in string literals (a word of one).
fn platforms_named(source: &Source) -> Vec<(&'static str, usize, String)> {
    let name_of = |word: &str| {
        PLATFORM_NAMES
            .iter()
            .find(|(slug, aliases)| *slug == word || aliases.contains(&word))
            .map(|(slug, _)| *slug)
    };
    let mut found = Vec::new();
    let code = &source.code;
    let mut at = 0;
    while at < code.len() {
        if !is_ident(code[at]) || (at > 0 && is_ident(code[at - 1])) {
            at += 1;
            continue;
        }
        let identifier = ident_at(code, at);
        let len = identifier.chars().count();
        // `$x:meta` is a macro fragment specifier, not a platform.
        let fragment = at > 0 && code[at - 1] == ':' && identifier == "meta";
        if !source.in_tests(at) && !fragment {
            let chars: Vec<char> = identifier.chars().collect();
            let x_heads = chars.len() > 2
                && chars[0] == 'X'
                && chars[1].is_uppercase()
                && chars[2].is_lowercase();
            if x_heads {
                found.push(("twitter", source.line_of(at), identifier.clone()));
            }
            for word in words(&identifier) {
                if let Some(slug) = name_of(&word) {
                    found.push((slug, source.line_of(at), identifier.clone()));
                }
            }
        }
        at += len;
    }
    for (at, text) in &source.strings {
        if source.in_tests(*at) {
            continue;
        }
        // HTML's `<meta>` element names no platform.
        let lower = text.to_lowercase().replace("<meta ", "< ");
        for word in lower.split(|c: char| !c.is_ascii_alphanumeric()) {
            if let Some(slug) = name_of(word) {
                found.push((slug, source.line_of(*at), format!("{text:?}")));
            }
        }
    }
    found
}

/// The files holding a table of platforms, which name each platform's module (`mod x;`, `x::...`)
/// and nothing else of it.
const TABLE_FILES: [(&str, &str); 2] = [
    ("growth-engine", "platforms/builtin/mod.rs"),
    ("sandbox", "platforms/mod.rs"),
];

/// The platform whose own module a file is: a file or folder named for the platform's slug.
fn own_platform(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.trim_end_matches(".rs").split('/').collect();
    PLATFORM_NAMES
        .iter()
        .map(|(slug, _)| *slug)
        .find(|slug| parts.contains(slug))
}

#[test]
fn a_platforms_name_stands_only_in_its_own_modules() {
    for platform in BUILT_IN.iter() {
        assert!(
            PLATFORM_NAMES
                .iter()
                .any(|(slug, _)| *slug == platform.slug),
            "{} is built in: list its names in PLATFORM_NAMES",
            platform.slug
        );
    }
    let mut problems = Vec::new();
    let mut seen = 0;
    for (name, root) in crate_roots() {
        for source in sources_in(&root) {
            let own = own_platform(&source.path);
            let table = TABLE_FILES.contains(&(name.as_str(), source.path.as_str()));
            for (slug, line, word) in platforms_named(&source) {
                seen += 1;
                let module_name = table && word == slug;
                if own != Some(slug) && !module_name {
                    problems.push(format!(
                        "{name}: src/{}:{line}: {slug} ({word})",
                        source.path
                    ));
                }
            }
        }
    }
    assert!(
        seen > 20,
        "the scan must see the platform modules' own names: {seen}"
    );
    assert!(
        problems.is_empty(),
        "platforms named outside their own modules:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn names_are_found_in_identifiers_and_literals_but_not_in_longer_words() {
    assert_eq!(words("MetaGraphCode190"), ["meta", "graph", "code190"]);
    assert_eq!(words("google_retry_delay"), ["google", "retry", "delay"]);
    assert_eq!(words("XUser"), ["x", "user"]);
    let (code, strings) =
        lex("fn f(metadata: u8) { let x = XUser; g(\"GOOGLE_ADS\", MetaExchange); }\n");
    let source = Source {
        path: "a.rs".into(),
        module: "a".into(),
        test_ranges: Vec::new(),
        code,
        strings,
    };
    let named: Vec<&str> = platforms_named(&source)
        .into_iter()
        .map(|(s, _, _)| s)
        .collect();
    assert_eq!(named, ["twitter", "meta", "google"]);
}
