//! The layering, read from the source: the graph of top-level modules has no cycle, no two files
//! of the edge, the connect workflow, the flow and the lifecycle import each other, no function outside
//! tests is longer than 100 lines, and each built-in platform's slug is written as a string
//! literal in one place only (its platform module). No service is needed.
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
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
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
            if path == "lib.rs" || path == "main.rs" {
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
        // `a.rs` and `a/mod.rs` declare children in `a/`.
        let stem = source.path.trim_end_matches(".rs");
        let dir = stem.strip_suffix("/mod").unwrap_or(stem);
        for (start, end) in &source.test_ranges {
            let item: String = source.code[*start..*end].iter().collect();
            let Some(declaration) = item.split("mod ").nth(1) else {
                continue;
            };
            let name: String = declaration.chars().take_while(|c| is_ident(*c)).collect();
            if source.code.get(*end) == Some(&';') && !name.is_empty() {
                files.insert(format!("{dir}/{name}.rs"));
                files.insert(format!("{dir}/{name}/mod.rs"));
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

/// The directories whose files must not import each other, directly or through others.
const ACYCLIC_DIRECTORIES: [&str; 4] = ["http/", "connect/", "oauth/", "lifecycle/"];

/// A file's module path: `lifecycle/refresh.rs` and `lifecycle/refresh/mod.rs` are
/// `["lifecycle", "refresh"]`.
fn module_path(path: &str) -> Vec<String> {
    let stem = path.trim_end_matches(".rs");
    let stem = stem.strip_suffix("/mod").unwrap_or(stem);
    stem.split('/').map(str::to_owned).collect()
}

/// The paths a `use` tree or a path expression starting at `at` names, with `{...}` groups
/// expanded (`super::{a, b::{self, C}}` is `super::a`, `super::b::self`, `super::b::C`).
fn paths_at(code: &[char], at: usize) -> Vec<Vec<String>> {
    let mut segments = Vec::new();
    let mut i = at;
    loop {
        while code.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if code.get(i) == Some(&'{') {
            let end = matching_brace(code, i);
            let group: String = code[i + 1..end].iter().collect();
            let mut paths = Vec::new();
            for item in split_top_level(&group) {
                let item: Vec<char> = item.chars().collect();
                for tail in paths_at(&item, 0) {
                    let mut path = segments.clone();
                    path.extend(tail);
                    paths.push(path);
                }
            }
            return paths;
        }
        let name = ident_at(code, i);
        if name.is_empty() {
            break;
        }
        i += name.len();
        segments.push(name);
        if !code[i..].starts_with(&[':', ':']) {
            break;
        }
        i += 2;
    }
    vec![segments]
}

/// The files a file imports (by `use`, by a path in its code, or by re-exporting), outside its
/// test code: each path resolved to the longest module prefix that is a file.
fn file_imports(source: &Source, files: &BTreeMap<Vec<String>, String>) -> BTreeSet<String> {
    let code = &source.code;
    let here = module_path(&source.path);
    let parent = |module: &[String]| module[..module.len().saturating_sub(1)].to_vec();
    let mut found = BTreeSet::new();
    for at in 0..code.len() {
        let starts =
            at == 0 || !(is_ident(code[at - 1]) || code[at - 1] == ':' || code[at - 1] == '$');
        if !starts || !is_ident(code[at]) || source.in_tests(at) {
            continue;
        }
        let first = ident_at(code, at);
        let after_use = code[..at]
            .iter()
            .rev()
            .skip_while(|c| c.is_whitespace())
            .take(3)
            .copied()
            .collect::<String>()
            == "esu";
        let keyword = matches!(first.as_str(), "crate" | "super" | "self");
        let is_path = code[at + first.len()..].starts_with(&[':', ':']);
        // `self.field` and `super` alone are not paths; a `use`, or a path in code, may name a
        // child module bare (`oauth::router()` in a `mod.rs`).
        if !is_path && (keyword || !after_use) {
            continue;
        }
        for path in paths_at(code, at) {
            let mut segments = path.into_iter().peekable();
            let mut module = match segments.peek().map(String::as_str) {
                Some("crate") => {
                    segments.next();
                    Vec::new()
                }
                Some("self") => {
                    segments.next();
                    here.clone()
                }
                Some("super") => {
                    let mut module = here.clone();
                    while segments.peek().map(String::as_str) == Some("super") {
                        segments.next();
                        module = parent(&module);
                    }
                    module
                }
                // Relative to this module: a child module, or nothing of this crate (`std::...`).
                _ => here.clone(),
            };
            let mut target = files.get(&module).cloned();
            for segment in segments {
                if segment == "self" {
                    continue;
                }
                module.push(segment);
                match files.get(&module) {
                    Some(file) => target = Some(file.clone()),
                    None => break,
                }
            }
            if let Some(target) = target.filter(|t| *t != source.path) {
                found.insert(target);
            }
        }
    }
    found
}

/// A cycle of files in the directories of [`ACYCLIC_DIRECTORIES`], as the files along it.
fn file_cycle(sources: &[Source]) -> Option<Vec<String>> {
    let files: BTreeMap<Vec<String>, String> = sources
        .iter()
        .map(|s| (module_path(&s.path), s.path.clone()))
        .collect();
    let watched = |path: &str| ACYCLIC_DIRECTORIES.iter().any(|d| path.starts_with(d));
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for source in sources.iter().filter(|s| watched(&s.path)) {
        let edges = graph.entry(source.path.clone()).or_default();
        for target in file_imports(source, &files) {
            if watched(&target) {
                edges.insert(target, source.path.clone());
            }
        }
    }
    find_cycle(&graph)
}

#[test]
fn no_two_files_of_the_edge_the_connect_workflow_the_flow_or_the_lifecycle_import_each_other() {
    let sources = sources();
    let files: BTreeMap<Vec<String>, String> = sources
        .iter()
        .map(|s| (module_path(&s.path), s.path.clone()))
        .collect();
    let refresh = sources
        .iter()
        .find(|s| s.path == "lifecycle/refresh.rs")
        .expect("lifecycle/refresh.rs");
    assert!(
        file_imports(refresh, &files).contains("lifecycle/shared.rs"),
        "the scan must see refresh.rs -> shared.rs: {:?}",
        file_imports(refresh, &files)
    );
    if let Some(cycle) = file_cycle(&sources) {
        panic!("files that import each other: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_file_cycle_finder_sees_a_child_importing_its_parent_that_re_exports_it() {
    let lexed = |path: &str, text: &str| {
        let (code, strings) = lex(text);
        Source {
            path: path.to_owned(),
            module: "lifecycle".to_owned(),
            code,
            strings,
            test_ranges: Vec::new(),
        }
    };
    let sources = vec![
        lexed("lifecycle/mod.rs", "mod a;\nmod b;\npub use a::{A, B};\n"),
        lexed("lifecycle/a.rs", "use super::b::Thing;\npub struct A;\n"),
        lexed(
            "lifecycle/b.rs",
            "use crate::lifecycle::{A};\npub struct Thing;\n",
        ),
    ];
    assert_eq!(
        file_cycle(&sources),
        Some(vec![
            "lifecycle/a.rs".to_owned(),
            "lifecycle/b.rs".to_owned(),
            "lifecycle/mod.rs".to_owned(),
            "lifecycle/a.rs".to_owned(),
        ])
    );
    let fixed = vec![
        lexed("lifecycle/mod.rs", "mod a;\nmod b;\npub use a::{A, B};\n"),
        lexed("lifecycle/a.rs", "use super::b::Thing;\npub struct A;\n"),
        lexed("lifecycle/b.rs", "pub struct Thing;\n"),
    ];
    assert_eq!(file_cycle(&fixed), None);
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
