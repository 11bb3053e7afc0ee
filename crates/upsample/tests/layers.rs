//! The architecture rule of the `upsample` library, checked on its source: every file imports
//! only from its own layer or the layers below it, and no two files import each other, directly
//! or round a cycle. Layers, bottom up (docs/ARCHITECTURE.md):
//! seed, fsio, observe < decompose < stars < models < dynamics < config < pipeline.
//! The command line (`src/cli/`, `src/main.rs`) is the binary on top and may use anything.
//!
//! Imports are read from `crate::…` and `super::…` paths (comments skipped). A folder's
//! `mod.rs` declaring and re-exporting its own files is its facade, not an import: `crate::x::Y`
//! counts as an import of folder `x`'s `mod.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom up: a file may import from its own layer and those before it.
const LAYERS: &[&[&str]] = &[
    &["seed", "fsio", "observe"],
    &["decompose", "fidelity"],
    &["stars"],
    &["models"],
    &["dynamics"],
    &["config"],
    &["pipeline"],
    &["figures"],
];

fn layer_of(module: &[String]) -> Option<usize> {
    let top = module.first()?;
    LAYERS.iter().position(|l| l.contains(&top.as_str()))
}

/// Every library source file with its module path (`src/dynamics/eom.rs` → [dynamics, eom]).
fn library_files(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let mut parts: Vec<String> = rel
            .iter()
            .map(|s| s.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        if parts[0] == "cli" || parts == ["main"] {
            continue; // the binary
        }
        if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
            parts.pop();
        }
        out.insert(parts, f);
    }
    out
}

/// The source without comments.
fn code(text: &str) -> String {
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Identifier at the start of `s`.
fn ident(s: &str) -> &str {
    let end = s
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// The longest known module that `path` (segments after `crate::`) names.
fn resolve(path: &[&str], known: &BTreeMap<Vec<String>, PathBuf>) -> Option<Vec<String>> {
    (1..=path.len()).rev().find_map(|n| {
        let m: Vec<String> = path[..n].iter().map(|s| s.to_string()).collect();
        known.contains_key(&m).then_some(m)
    })
}

/// The path segments following each `crate::` / `super::` in `code`, made absolute.
fn imports(module: &[String], is_mod_file: bool, code: &str) -> Vec<Vec<String>> {
    // `super` of a file `a/b.rs` is `a`; of `a/mod.rs` (module [a]) it is the crate root.
    let here: Vec<String> = if is_mod_file {
        module.to_vec()
    } else {
        module[..module.len().saturating_sub(1)].to_vec()
    };
    let mut out = Vec::new();
    for (start, prefix) in [("crate::", Vec::new()), ("super::", here.clone())] {
        let mut rest = code;
        while let Some(i) = rest.find(start) {
            let before = rest[..i].chars().last();
            rest = &rest[i + start.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue; // `super::super::`, `foo::crate::` are part of a longer path
            }
            let mut base = prefix.clone();
            let mut s = rest;
            if is_mod_file && start == "super::" {
                base.pop();
            }
            while let Some(r) = s.strip_prefix("super::") {
                base.pop();
                s = r;
            }
            let mut segs: Vec<String> = base;
            if let Some(list) = s.strip_prefix('{') {
                // `crate::{a::X, b}`: each first segment.
                let end = list.find('}').unwrap_or(list.len());
                for item in list[..end].split(',') {
                    let first = ident(item.trim());
                    if !first.is_empty() {
                        let mut p = segs.clone();
                        p.push(first.to_string());
                        out.push(p);
                    }
                }
                continue;
            }
            loop {
                let id = ident(s);
                if id.is_empty() {
                    break;
                }
                segs.push(id.to_string());
                match s[id.len()..].strip_prefix("::") {
                    Some(r) => s = r,
                    None => break,
                }
            }
            out.push(segs);
        }
    }
    out
}

/// The import graph between library files (module path → modules it imports).
fn graph(src: &Path) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let known = library_files(src);
    let mut g = BTreeMap::new();
    for (module, file) in &known {
        let text = std::fs::read_to_string(file).unwrap();
        let is_mod_file = file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs");
        let mut deps = BTreeSet::new();
        for path in imports(module, is_mod_file, &code(&text)) {
            let segs: Vec<&str> = path.iter().map(String::as_str).collect();
            let Some(target) = resolve(&segs, &known) else {
                continue; // an item of the crate root (e.g. crate::VERSION)
            };
            let facade = is_mod_file && target.starts_with(module) && target != *module;
            if target != *module && !facade && !target.is_empty() {
                deps.insert(target);
            }
        }
        g.insert(module.clone(), deps);
    }
    g
}

fn name(m: &[String]) -> String {
    if m.is_empty() {
        "lib".into()
    } else {
        m.join("::")
    }
}

/// Strongly connected components with more than one file (Tarjan).
fn cycles(g: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on: BTreeSet<&'a Vec<String>>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Vec<String>) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on.insert(v);
        for w in s.g.get(v).into_iter().flatten() {
            let Some((w, _)) = s.g.get_key_value(w) else {
                continue;
            };
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on.remove(w);
                comp.push(name(w));
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.out
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn library_imports_point_down_the_layers_and_never_in_a_circle() {
    let g = graph(&src());
    assert!(
        g.len() > 20,
        "expected the library's files, found {}",
        g.len()
    );
    let mut problems = Vec::new();
    for (from, deps) in &g {
        let Some(lf) = layer_of(from) else {
            continue; // lib.rs
        };
        for to in deps {
            match layer_of(to) {
                Some(lt) if lt > lf => problems.push(format!(
                    "upward import: {} (layer {lf}) uses {} (layer {lt})",
                    name(from),
                    name(to)
                )),
                None => problems.push(format!(
                    "{} uses {}, which is in no layer: add it to LAYERS and docs/ARCHITECTURE.md",
                    name(from),
                    name(to)
                )),
                _ => {}
            }
        }
    }
    for c in cycles(&g) {
        problems.push(format!("import cycle between files: {}", c.join(" <-> ")));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_checker_sees_upward_imports_and_cycles() {
    // The checker itself on a made-up tree: it must fail where the rule is broken.
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path();
    for (f, text) in [
        ("lib.rs", "pub mod seed; pub mod stars; pub mod models;"),
        ("seed.rs", "use crate::stars::Imf;"),
        ("stars/mod.rs", "mod a; mod b; pub use a::X;"),
        (
            "stars/a.rs",
            "use super::b::Y; // crate::models in a comment",
        ),
        ("stars/b.rs", "use super::a::X; use super::{Z};"),
        ("models/mod.rs", "use crate::{seed::mix_seed, stars};"),
    ] {
        let p = s.join(f);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let g = graph(s);
    let m = |x: &str| x.split("::").map(String::from).collect::<Vec<_>>();
    assert!(g[&m("seed")].contains(&m("stars")));
    assert!(g[&m("stars::a")].contains(&m("stars::b")));
    assert!(
        !g[&m("stars::a")].contains(&m("models")),
        "comments are skipped"
    );
    assert!(
        g[&m("stars::b")].contains(&m("stars")),
        "super::{{..}} is the parent"
    );
    assert!(
        g[&m("stars")].is_empty(),
        "a mod.rs re-exporting its files is a facade"
    );
    assert_eq!(
        g[&m("models")],
        [m("seed"), m("stars")].into_iter().collect()
    );
    assert_eq!(
        cycles(&g),
        vec![vec!["stars::a".to_string(), "stars::b".into()]]
    );
    assert!(layer_of(&m("seed")) < layer_of(&m("stars")));
}
