//! The house rules a newcomer relies on, checked over the workspace's sources: no
//! import circles between the modules of any crate.
//!
//! A module imports another when its code (not its comments, strings or tests) names
//! it: `crate::a::b`, `super::x`, `self::x`, or a child module by its own name
//! (`pub use child::Item`). A module naming one of its ancestors is not counted: a
//! parent is its children's namespace (`use super::Error` is how Rust shares one).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The workspace checked: this one, or another checkout named by `PVMKIT_HOUSE_ROOT`
/// (to see what the check says of an older commit).
fn workspace() -> PathBuf {
    match std::env::var_os("PVMKIT_HOUSE_ROOT") {
        Some(root) => PathBuf::from(root),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("host-tools sits in the workspace").to_path_buf(),
    }
}

/// The workspace's member directories (from its `Cargo.toml`).
fn members(root: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("the workspace manifest");
    let line = manifest.lines().find(|l| l.starts_with("members")).expect("a members line");
    line.split('"').skip(1).step_by(2).map(String::from).collect()
}

/// Every module of a crate by path (`""` the root, `a::b`), with its source.
fn modules(src: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                // A folder with its own `main.rs` is another crate (a binary's root).
                if !path.join("main.rs").exists() {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") && !path.starts_with(src.join("bin")) {
                let relative = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> =
                    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
                if matches!(parts.last().map(String::as_str), Some("mod" | "lib" | "main")) {
                    parts.pop();
                }
                found.insert(parts.join("::"), std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    found
}

/// The code of a source: its tests module, comments and string literals left out.
fn code(source: &str) -> String {
    let source = match source.find("#[cfg(test)]\nmod tests") {
        Some(at) => &source[..at],
        None => source,
    };
    let mut out = String::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            // A char literal (not a lifetime): skipped so that '"' opens no string.
            '\'' if chars.clone().nth(1) == Some('\'') || chars.peek() == Some(&'\\') => {
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// The paths written from `rest` on (`a::b`, or a group `{a::b, c::{d, e}}`), each as
/// its words.
fn paths(rest: &str) -> Vec<Vec<&str>> {
    let rest = rest.trim_start();
    if let Some(group) = rest.strip_prefix('{') {
        // The group's items, split at its own commas.
        let (mut depth, mut start, mut items) = (0, 0, Vec::new());
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    items.push(&group[start..i]);
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    items.push(&group[start..i]);
                    start = i + 1;
                }
                _ => {}
            }
        }
        return items.into_iter().flat_map(paths).collect();
    }
    let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
    let words: Vec<&str> = rest[..end].split("::").filter(|w| !w.is_empty()).collect();
    if rest[..end].ends_with("::") && rest[end..].starts_with('{') {
        return paths(&rest[end..]).into_iter().map(|tail| [&words[..], &tail[..]].concat()).collect();
    }
    vec![words]
}

/// The modules `module` imports.
fn imports(module: &str, code: &str, all: &BTreeMap<String, String>) -> BTreeSet<String> {
    let join = |base: &str, words: &[&str]| {
        let mut parts: Vec<&str> = base.split("::").filter(|p| !p.is_empty()).collect();
        parts.extend_from_slice(words);
        parts.join("::")
    };
    let parent = module.rsplit_once("::").map_or("", |(p, _)| p);
    let children: BTreeSet<&str> = all
        .keys()
        .filter_map(|m| {
            m.strip_prefix(module).and_then(|r| if module.is_empty() { Some(r) } else { r.strip_prefix("::") })
        })
        .filter(|r| !r.is_empty() && !r.contains("::"))
        .collect();
    let mut found = BTreeSet::new();
    let bytes = code.as_bytes();
    for (at, _) in code.match_indices("::") {
        // The first word of the path this `::` belongs to.
        let start = code[..at].rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$')).map_or(0, |i| i + 1);
        if code[..start].ends_with("::") {
            continue;
        }
        let first = &code[start..at];
        let base = match first {
            "crate" | "$crate" => String::new(),
            "super" => parent.to_string(),
            "self" => module.to_string(),
            child if children.contains(child) && bytes.get(start.wrapping_sub(1)) != Some(&b'.') => {
                join(module, &[child])
            }
            _ => continue,
        };
        for words in paths(&code[at + 2..]) {
            // The longest module the path names.
            let target = join(&base, &words);
            let mut parts: Vec<&str> = target.split("::").filter(|p| !p.is_empty()).collect();
            while !parts.is_empty() && !all.contains_key(&parts.join("::")) {
                parts.pop();
            }
            let named = parts.join("::");
            let is_ancestor = named.is_empty() || module == named || module.starts_with(&format!("{named}::"));
            if !is_ancestor {
                found.insert(named);
            }
        }
    }
    found
}

/// The circles among a crate's modules: each strongly connected set of two or more.
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two modules are in one circle when each reaches the other.
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> = graph.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for (m, r) in &reached {
        if done.contains(*m) || !r.contains(*m) {
            continue;
        }
        let circle: Vec<String> =
            r.iter().filter(|o| reached.get(o).is_some_and(|back| back.contains(*m))).cloned().collect();
        done.extend(circle.iter().cloned());
        out.push(circle);
    }
    out
}

/// The roots of the crates under a member's `src`: `src` itself and each folder below
/// it with its own `main.rs` (hyp's firmware, `src/fw/`).
fn crate_roots(src: &Path) -> Vec<PathBuf> {
    let mut roots = vec![src.to_path_buf()];
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                if path.join("main.rs").exists() {
                    roots.push(path.clone());
                }
                stack.push(path);
            }
        }
    }
    roots
}

fn crate_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let all = modules(src);
    all.iter().map(|(m, source)| (m.clone(), imports(m, &code(source), &all))).collect()
}

#[test]
fn no_crate_has_an_import_circle() {
    let root = workspace();
    let mut found = Vec::new();
    for member in members(&root) {
        for src in crate_roots(&root.join(&member).join("src")) {
            let graph = crate_graph(&src);
            for circle in circles(&graph) {
                let edges: Vec<String> = circle
                    .iter()
                    .flat_map(|a| graph[a].iter().filter(|b| circle.contains(b)).map(move |b| format!("{a} -> {b}")))
                    .collect();
                found.push(format!("{}: {}", src.strip_prefix(&root).unwrap().display(), edges.join(", ")));
            }
        }
    }
    assert!(found.is_empty(), "import circles:\n{}", found.join("\n"));
}

/// Negative control: a small crate with a circle through a parent's re-export and one
/// only through an ancestor (which is not one).
#[test]
fn the_check_finds_a_circle_and_spares_a_parent() {
    let dir = std::env::temp_dir().join(format!("pvmkit-house-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write("lib.rs", "mod runtime;\nmod virtio;\n// crate::nothing\n");
    write("runtime.rs", "use crate::{other as _, virtio::{DmaSetup}};\nfn f() { let s = \"crate::nothing\"; }\n");
    write("virtio/mod.rs", "mod pvm;\npub use pvm::PvmHal;\npub struct DmaSetup;\n");
    write("virtio/pvm.rs", "use super::DmaSetup;\nfn g() { crate::runtime::set_up(); }\n");
    write("other.rs", "");
    write("leaf.rs", "use crate::runtime;\n#[cfg(test)]\nmod tests {\n use crate::leaf;\n}\n");
    let graph = crate_graph(&dir);
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(graph["virtio"], BTreeSet::from(["virtio::pvm".to_string()]));
    assert_eq!(graph["runtime"], BTreeSet::from(["other".to_string(), "virtio".into()]), "a group names each");
    assert_eq!(graph["virtio::pvm"], BTreeSet::from(["runtime".to_string()]), "its parent is not counted");
    assert_eq!(graph[""], BTreeSet::new(), "comments name nothing");
    assert_eq!(circles(&graph), vec![vec!["runtime".to_string(), "virtio".into(), "virtio::pvm".into()]]);
}

/// The Markdown files of the workspace (not build output).
fn markdown_files(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && name != "target" {
                    stack.push(path);
                }
            } else if name.ends_with(".md") {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

/// What a Markdown text points at in the repository: relative link targets (`](x)`)
/// and code spans that are paths from the root (`` `hyp/src/lib.rs` ``: they start
/// with one of `tops`, the root's own entries, and name no pattern).
fn pointers<'t>(text: &'t str, tops: &BTreeSet<String>) -> (Vec<&'t str>, Vec<&'t str>) {
    let mut links = Vec::new();
    for (at, _) in text.match_indices("](") {
        let rest = &text[at + 2..];
        let target = &rest[..rest.find(')').unwrap_or(0)];
        let target = target.split('#').next().unwrap_or("");
        if !target.is_empty() && !target.contains("://") && !target.starts_with("mailto:") {
            links.push(target);
        }
    }
    let mut paths = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        for (i, span) in line.split('`').enumerate() {
            let top = span.split('/').next().unwrap_or("");
            let plain = !span.contains([' ', '*', '<', '>', '{', '…', '$', '|', '[']) && !span.contains("...");
            if i % 2 == 1 && span.contains('/') && plain && tops.contains(top) {
                paths.push(span.split(':').next().unwrap_or(span));
            }
        }
    }
    (links, paths)
}

/// Every relative link and every repository path a Markdown file names exists.
#[test]
fn every_doc_link_and_path_resolves() {
    let root = workspace();
    let tops: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "target")
        .collect();
    let mut missing = Vec::new();
    for file in markdown_files(&root) {
        let text = std::fs::read_to_string(&file).unwrap();
        let (links, paths) = pointers(&text, &tops);
        let shown = file.strip_prefix(&root).unwrap().display().to_string();
        for link in links {
            if !file.parent().unwrap().join(link).exists() {
                missing.push(format!("{shown}: link {link}"));
            }
        }
        for path in paths {
            if !root.join(path).exists() {
                missing.push(format!("{shown}: path {path}"));
            }
        }
    }
    assert!(missing.is_empty(), "{} pointers lead nowhere:\n{}", missing.len(), missing.join("\n"));
}

/// Negative control: a dead link and a dead path are found; a pattern, a code block
/// and an outside address are not pointers.
#[test]
fn the_link_check_finds_what_leads_nowhere() {
    let tops = BTreeSet::from(["hyp".to_string(), "docs".into()]);
    let text = "See [smp](smp.md), [web](https://example.org), `hyp/src/boot.rs:12`, \
                `hyp/src/*.rs`, `other/x.rs`, `docs/a.md` and\n```sh\ncat hyp/nothing.rs `hyp/no.rs`\n```\n";
    let (links, paths) = pointers(text, &tops);
    assert_eq!(links, ["smp.md"]);
    assert_eq!(paths, ["hyp/src/boot.rs", "docs/a.md"]);
}
