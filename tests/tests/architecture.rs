//! ARCHITECTURE.md kept true by the build: every source file is in its code
//! map and every file it names exists; the `unsafe` fences it lists are the
//! ones the crate roots allow (and no others), every crate root denies or
//! forbids `unsafe_code`, and the workspace lints that enforce the rest are
//! on; every `unsafe` in the tree says why it is sound; the dependencies
//! between the crates are the ones it draws.
//!
//! No server is started here: this reads the tree. Each failure names the
//! file and what to write where.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()))
}

/// The workspace members' directories, from the root Cargo.toml.
fn members() -> Vec<String> {
    let manifest: toml::Table = read(&root().join("Cargo.toml"))
        .parse()
        .expect("Cargo.toml");
    manifest["workspace"]["members"]
        .as_array()
        .expect("workspace.members")
        .iter()
        .map(|member| member.as_str().expect("a member is a path").to_owned())
        .collect()
}

/// Every file under `dir` whose name ends with one of `suffixes`, skipping
/// build output, relative to `dir`, sorted.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        let Ok(entries) = fs::read_dir(&next) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') && name != "__pycache__" {
                    pending.push(path);
                }
            } else if suffixes.iter().any(|suffix| name.ends_with(suffix)) {
                found.push(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found.sort();
    found
}

fn slash(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// ARCHITECTURE.md split at its `##` and `###` headings: (heading, body).
fn sections() -> Vec<(String, String)> {
    let text = read(&root().join("ARCHITECTURE.md"));
    let mut sections: Vec<(String, String)> = vec![(String::new(), String::new())];
    for line in text.lines() {
        if line.starts_with("## ") || line.starts_with("### ") {
            sections.push((line.to_owned(), String::new()));
        } else {
            let body = &mut sections.last_mut().unwrap().1;
            body.push_str(line);
            body.push('\n');
        }
    }
    sections
}

/// The `backticked` spans of `text`.
fn code_spans(text: &str) -> Vec<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// The code map's section of each member (a section whose heading names
/// the member in backticks; several members may share one).
fn code_map() -> BTreeMap<String, String> {
    let sections = sections();
    members()
        .into_iter()
        .map(|member| {
            let wanted = format!("`{member}`");
            let body: String = sections
                .iter()
                .filter(|(heading, _)| heading.starts_with("### ") && heading.contains(&wanted))
                .map(|(_, body)| body.as_str())
                .collect();
            (member, body)
        })
        .collect()
}

/// Whether a span of the map names `rel` (a path under a crate's `src/`):
/// the span is the path (`src/` in front or not) or a tail of it
/// (`conn/action.rs` names
/// `proto/conn/action.rs`), or, for a `mod.rs`, names its directory.
fn names(span: &str, rel: &str) -> bool {
    let span = span.trim_start_matches("./").trim_start_matches("src/");
    if rel == span || rel.ends_with(&format!("/{span}")) {
        return true;
    }
    if let Some(dir) = rel.strip_suffix("mod.rs") {
        let dir = dir.trim_end_matches('/');
        let span = span.trim_end_matches('/');
        return !span.is_empty() && (dir == span || dir.ends_with(&format!("/{span}")));
    }
    false
}

/// The source files the code map must name: each member's `src/**/*.rs`
/// and the Python files of `python/`, as (member, path under `src/`).
fn source_files() -> Vec<(String, String)> {
    let mut all = Vec::new();
    for member in members() {
        let src = root().join(&member).join("src");
        for file in files(&src, &[".rs", ".py"]) {
            all.push((member.clone(), slash(&file)));
        }
    }
    all
}

#[test]
fn every_source_file_is_in_the_code_map() {
    let map = code_map();
    let everything = read(&root().join("ARCHITECTURE.md"));
    let mut missing = Vec::new();
    for (member, rel) in source_files() {
        let body = &map[&member];
        if body.is_empty() {
            missing.push(format!(
                "crate {member} has no section in ARCHITECTURE.md's code map (a `### \\`{member}\\`` heading)"
            ));
            continue;
        }
        // A crate's root is the crate its section describes.
        if rel == "lib.rs" || rel == "main.rs" {
            continue;
        }
        // Its full path names it anywhere in the file.
        let full = format!("{member}/src/{rel}");
        let named = code_spans(body).iter().any(|span| names(span, &rel))
            || everything.contains(&format!("`{full}`"));
        if !named {
            missing.push(format!(
                "file {full} is not in ARCHITECTURE.md's code map: name it (`{rel}` or a tail of it) in the section of `{member}`"
            ));
        }
    }
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

#[test]
fn every_file_the_code_map_names_exists() {
    let sections = sections();
    let members = members();
    let mut stale = Vec::new();
    for (heading, body) in &sections {
        let owners: Vec<&String> = members
            .iter()
            .filter(|member| heading.contains(&format!("`{member}`")))
            .collect();
        if !heading.starts_with("### ") || owners.is_empty() {
            continue;
        }
        let known: Vec<String> = owners
            .iter()
            .flat_map(|member| {
                files(&root().join(member), &[".rs", ".py"])
                    .into_iter()
                    .map(|file| slash(&file))
            })
            .collect();
        for span in code_spans(body) {
            // A source file's name has one dot (`gunicorn.conf.py` is a
            // user's file, `.py` an extension).
            let name = span.rsplit('/').next().unwrap_or(&span);
            let is_file = (span.ends_with(".rs") || span.ends_with(".py"))
                && !span.contains(' ')
                && !span.contains('*')
                && name.matches('.').count() == 1
                && !name.starts_with('.');
            if !is_file {
                continue;
            }
            let exists = root().join(&span).is_file()
                || known
                    .iter()
                    .any(|file| file == &span || file.ends_with(&format!("/{span}")));
            if !exists {
                stale.push(format!(
                    "ARCHITECTURE.md's section {heading} names `{span}`, which is no file of {owners:?}: \
                     renamed or removed? fix the code map"
                ));
            }
        }
    }
    assert!(stale.is_empty(), "\n{}", stale.join("\n"));
}

/// The invariant on `unsafe`, as ARCHITECTURE.md states it: the fences
/// (paths: a module's file, a module directory ending in `/`, or a test
/// file holding an inline fenced module) and the crates that forbid it.
fn stated_fences() -> (BTreeSet<String>, BTreeSet<String>) {
    let sections = sections();
    let invariants = &sections
        .iter()
        .find(|(heading, _)| heading.starts_with("## Invariants"))
        .expect("ARCHITECTURE.md has an Invariants section")
        .1;
    let bullet = invariants
        .split("\n- ")
        .find(|bullet| bullet.trim_start().starts_with("No `unsafe` outside"))
        .expect("the Invariants section has the bullet \"No `unsafe` outside ...\"");
    let (fenced, forbidding) = bullet
        .split_once("forbid it at their root:")
        .expect("the unsafe bullet says which crates \"forbid it at their root:\"");
    let fences = code_spans(fenced)
        .into_iter()
        .filter(|span| span.ends_with(".rs") || span.ends_with('/'))
        .collect();
    let forbid = code_spans(forbidding.split('.').next().unwrap())
        .into_iter()
        .collect();
    (fences, forbid)
}

/// Where each `#[allow(unsafe_code)]` of the workspace puts a fence: the
/// file of the module declared right after it (`dir/` for a `mod.rs`), or
/// the declaring file itself for an inline module.
fn actual_fences() -> (BTreeSet<String>, Vec<String>) {
    let mut fences = BTreeSet::new();
    let mut misplaced = Vec::new();
    for member in members() {
        let dir = root().join(&member);
        for file in files(&dir, &[".rs"]) {
            let rel = format!("{member}/{}", slash(&file));
            let text = read(&dir.join(&file));
            let lines: Vec<&str> = text.lines().collect();
            for (index, line) in lines.iter().enumerate() {
                let code = line.split("//").next().unwrap().trim();
                if code.starts_with("#![allow(unsafe_code)]") {
                    misplaced.push(format!(
                        "{rel}:{}: an inner #![allow(unsafe_code)]: put #[allow(unsafe_code)] on the module's declaration instead",
                        index + 1
                    ));
                    continue;
                }
                if !code.starts_with("#[allow(unsafe_code)]") {
                    continue;
                }
                let declaration = lines[index + 1..]
                    .iter()
                    .map(|line| line.trim())
                    .find(|line| !line.starts_with("#[") && !line.starts_with("//"))
                    .unwrap_or("");
                let module = declaration
                    .trim_start_matches("pub(crate) ")
                    .trim_start_matches("pub(super) ")
                    .trim_start_matches("pub ")
                    .strip_prefix("mod ");
                let Some(module) = module else {
                    misplaced.push(format!(
                        "{rel}:{}: #[allow(unsafe_code)] on something that is not a module: fence a module instead",
                        index + 1
                    ));
                    continue;
                };
                if module.trim_end().ends_with('{') {
                    fences.insert(rel.clone());
                    continue;
                }
                let name = module.trim_end_matches(';').trim();
                let declaring = dir.join(&file);
                let parent = if ["lib.rs", "main.rs", "mod.rs"]
                    .contains(&declaring.file_name().unwrap().to_str().unwrap())
                {
                    declaring.parent().unwrap().to_path_buf()
                } else {
                    declaring.with_extension("")
                };
                let as_file = parent.join(format!("{name}.rs"));
                let fence = if as_file.is_file() {
                    slash(as_file.strip_prefix(root()).unwrap())
                } else {
                    format!(
                        "{}/",
                        slash(parent.join(name).strip_prefix(root()).unwrap())
                    )
                };
                fences.insert(fence);
            }
        }
    }
    (fences, misplaced)
}

/// The crate root files of a member: `src/lib.rs` and `src/main.rs`.
fn crate_roots(member: &str) -> Vec<(String, String)> {
    ["lib.rs", "main.rs"]
        .iter()
        .map(|name| root().join(member).join("src").join(name))
        .filter(|path| path.is_file())
        .map(|path| (slash(path.strip_prefix(root()).unwrap()), read(&path)))
        .collect()
}

#[test]
fn unsafe_is_only_in_the_fences_architecture_md_lists() {
    let (stated, forbid) = stated_fences();
    let (actual, mut problems) = actual_fences();
    for fence in stated.difference(&actual) {
        problems.push(format!(
            "ARCHITECTURE.md lists the fence `{fence}`, but no #[allow(unsafe_code)] module is there: update the Invariants"
        ));
    }
    for fence in actual.difference(&stated) {
        problems.push(format!(
            "`{fence}` allows unsafe_code but is not in ARCHITECTURE.md's Invariants (\"No `unsafe` outside ...\"): list it, with why"
        ));
    }
    for member in members() {
        let fenced = actual
            .iter()
            .any(|fence| fence.starts_with(&format!("{member}/src/")));
        for (path, text) in crate_roots(&member) {
            let forbids = text.contains("#![forbid(unsafe_code)]");
            let denies = text.contains("#![deny(unsafe_code)]");
            if forbid.contains(&member) {
                if !forbids {
                    problems.push(format!(
                        "{path}: ARCHITECTURE.md says `{member}` forbids unsafe; its root lacks #![forbid(unsafe_code)]"
                    ));
                }
            } else if !(denies && fenced) {
                problems.push(format!(
                    "{path}: `{member}` is not among the crates that forbid unsafe in ARCHITECTURE.md, so its root must \
                     #![deny(unsafe_code)] and fence a module with #[allow(unsafe_code)] (or forbid it and be listed)"
                ));
            }
        }
    }
    // Every file with the `unsafe` keyword is inside a fence.
    for member in members() {
        let dir = root().join(&member);
        for file in files(&dir, &[".rs"]) {
            let rel = format!("{member}/{}", slash(&file));
            let has_unsafe = !unsafe_sites(&read(&dir.join(&file))).is_empty();
            let fenced = actual
                .iter()
                .any(|fence| rel == *fence || (fence.ends_with('/') && rel.starts_with(fence)));
            if has_unsafe && !fenced {
                problems.push(format!(
                    "{rel} has `unsafe` outside every fence: move it into its crate's fenced module"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn the_lints_that_enforce_the_rules_are_on() {
    let manifest: toml::Table = read(&root().join("Cargo.toml"))
        .parse()
        .expect("Cargo.toml");
    let lints = &manifest["workspace"]["lints"];
    assert_eq!(
        lints["rust"]["unsafe_code"].as_str(),
        Some("deny"),
        "[workspace.lints.rust] unsafe_code = \"deny\""
    );
    assert_eq!(
        lints["clippy"]["undocumented_unsafe_blocks"].as_str(),
        Some("deny"),
        "[workspace.lints.clippy] undocumented_unsafe_blocks = \"deny\""
    );
    let mut problems = Vec::new();
    for member in members() {
        let crate_manifest: toml::Table = read(&root().join(&member).join("Cargo.toml"))
            .parse()
            .expect("a member's Cargo.toml");
        let inherits = crate_manifest
            .get("lints")
            .and_then(|lints| lints.get("workspace"))
            .and_then(toml::Value::as_bool);
        if inherits != Some(true) {
            problems.push(format!(
                "{member}/Cargo.toml: add [lints] workspace = true (the workspace's unsafe rules apply to every crate)"
            ));
        }
        for file in files(&root().join(&member), &[".rs"]) {
            let text = read(&root().join(&member).join(&file));
            if text.contains(concat!("undocumented_unsafe_blocks", ")]")) {
                problems.push(format!(
                    "{member}/{}: allows undocumented_unsafe_blocks: write the SAFETY comment instead",
                    slash(&file)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// What an `unsafe` keyword introduces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Site {
    /// `unsafe { ... }`, `unsafe impl`, `unsafe extern { ... }`: a
    /// `// SAFETY:` comment above.
    Block,
    /// `unsafe fn NAME` or `unsafe trait`: a `# Safety` doc or a
    /// `// SAFETY:` comment above.
    Definition,
}

/// The `unsafe` keywords of a source file that need a reason, with their
/// line (1-based). Skipped: `unsafe fn(..)` pointer types, `#[unsafe(..)]`
/// attributes, and the methods of a trait impl (the trait states their
/// contract; an `unsafe impl` has its own comment).
fn unsafe_sites(source: &str) -> Vec<(usize, Site)> {
    let Ok(stream) = source.parse::<TokenStream>() else {
        // A macro body file that is no token stream has nothing we check.
        return Vec::new();
    };
    let mut sites = Vec::new();
    walk(stream, false, &mut sites);
    sites
}

fn walk(stream: TokenStream, in_trait_impl: bool, sites: &mut Vec<(usize, Site)>) {
    let tokens: Vec<TokenTree> = stream.into_iter().collect();
    let mut impl_for = false;
    for (index, token) in tokens.iter().enumerate() {
        match token {
            TokenTree::Ident(ident) if ident == "impl" => impl_for = false,
            TokenTree::Ident(ident) if ident == "for" => impl_for = true,
            TokenTree::Punct(punct) if punct.as_char() == ';' => impl_for = false,
            TokenTree::Group(group) => {
                let trait_body = impl_for && group.delimiter() == Delimiter::Brace;
                walk(group.stream(), trait_body, sites);
                if group.delimiter() == Delimiter::Brace {
                    impl_for = false;
                }
            }
            TokenTree::Ident(ident) if ident == "unsafe" => {
                let line = ident.span().start().line;
                let mut rest = tokens[index + 1..].iter();
                let site = match rest.next() {
                    Some(TokenTree::Group(group)) if group.delimiter() == Delimiter::Brace => {
                        Some(Site::Block)
                    }
                    Some(TokenTree::Ident(next)) if next == "impl" => Some(Site::Block),
                    Some(TokenTree::Ident(next)) if next == "trait" => Some(Site::Definition),
                    Some(TokenTree::Ident(next)) if next == "fn" => match rest.next() {
                        Some(TokenTree::Ident(_)) if !in_trait_impl => Some(Site::Definition),
                        _ => None,
                    },
                    Some(TokenTree::Ident(next)) if next == "extern" => {
                        let mut after = rest.clone();
                        if matches!(after.clone().next(), Some(TokenTree::Literal(_))) {
                            after.next();
                        }
                        match after.next() {
                            Some(TokenTree::Group(group))
                                if group.delimiter() == Delimiter::Brace =>
                            {
                                Some(Site::Block)
                            }
                            Some(TokenTree::Ident(next)) if next == "fn" => match after.next() {
                                Some(TokenTree::Ident(_)) if !in_trait_impl => {
                                    Some(Site::Definition)
                                }
                                _ => None,
                            },
                            _ => None,
                        }
                    }
                    _ => None,
                };
                if let Some(site) = site {
                    sites.push((line, site));
                }
            }
            _ => {}
        }
    }
}

/// Whether the lines above `line` (1-based) give the reason: comments
/// and attributes directly above it, or above the statement it continues,
/// hold `SAFETY:` (or, for a definition, a `# Safety` doc section).
fn has_reason(lines: &[&str], line: usize, site: Site) -> bool {
    let mut index = line - 1;
    while index > 0 {
        index -= 1;
        let above = lines[index].trim();
        if above.starts_with("//") {
            if above.contains("SAFETY:") || (site == Site::Definition && above.contains("# Safety"))
            {
                return true;
            }
            continue;
        }
        if above.starts_with("#[") || above.starts_with("#![") {
            continue;
        }
        let ends_statement = above.is_empty()
            || above.ends_with(';')
            || above.ends_with('{')
            || above.ends_with('}')
            || above.ends_with(',');
        if ends_statement || line - index > 40 {
            return false;
        }
    }
    false
}

/// Every `.rs` file the check covers: the workspace members and the
/// example apps (their FFI), as paths from the root.
fn all_rust_files() -> Vec<String> {
    let mut all = Vec::new();
    for dir in members().into_iter().chain(["examples".to_owned()]) {
        for file in files(&root().join(&dir), &[".rs"]) {
            all.push(format!("{dir}/{}", slash(&file)));
        }
    }
    all
}

#[test]
fn every_unsafe_says_why_it_is_sound() {
    let mut missing = Vec::new();
    let mut seen = 0;
    for file in all_rust_files() {
        let text = read(&root().join(&file));
        let lines: Vec<&str> = text.lines().collect();
        for (line, site) in unsafe_sites(&text) {
            seen += 1;
            if !has_reason(&lines, line, site) {
                let wanted = match site {
                    Site::Block => "a `// SAFETY:` comment",
                    Site::Definition => "a `# Safety` doc section or a `// SAFETY:` comment",
                };
                missing.push(format!(
                    "{file}:{line}: `unsafe` without {wanted} right above it saying why it is sound"
                ));
            }
        }
    }
    assert!(
        seen > 100,
        "only {seen} unsafe sites found: is the lexer reading the tree?"
    );
    assert!(missing.is_empty(), "\n{}", missing.join("\n"));
}

/// The dependency arrows ARCHITECTURE.md draws (its "Dependencies" list:
/// "- `crate` → `dep`, `dep`", or "→ nothing") are exactly each member's
/// runicorn dependencies (normal and build, optional ones included).
#[test]
fn the_crates_depend_on_each_other_as_drawn() {
    let sections = sections();
    let drawn_text = &sections
        .iter()
        .find(|(heading, _)| heading.starts_with("## Dependencies"))
        .expect("ARCHITECTURE.md has a \"## Dependencies\" section")
        .1;
    let mut drawn: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in drawn_text.lines() {
        let Some(arrow) = line.strip_prefix("- ") else {
            continue;
        };
        let Some((from, to)) = arrow.split_once('→') else {
            continue;
        };
        let from = code_spans(from)
            .into_iter()
            .next()
            .expect("- `crate` → ...");
        drawn.insert(from, code_spans(to).into_iter().collect());
    }
    let mut problems = Vec::new();
    for member in members() {
        let manifest: toml::Table = read(&root().join(&member).join("Cargo.toml"))
            .parse()
            .expect("a member's Cargo.toml");
        let package = manifest["package"]["name"].as_str().unwrap().to_owned();
        let actual: BTreeSet<String> = ["dependencies", "build-dependencies"]
            .iter()
            .filter_map(|table| manifest.get(*table).and_then(toml::Value::as_table))
            .flat_map(|table| table.keys())
            .filter_map(|name| name.strip_prefix("runicorn-"))
            .map(|name| {
                members()
                    .into_iter()
                    .find(|member| {
                        read(&root().join(member).join("Cargo.toml"))
                            .contains(&format!("name = \"runicorn-{name}\""))
                    })
                    .unwrap_or_else(|| name.to_owned())
            })
            .collect();
        match drawn.get(&member) {
            None => problems.push(format!(
                "`{member}` ({package}) is not in ARCHITECTURE.md's Dependencies: add \"- `{member}` → ...\""
            )),
            Some(expected) if *expected != actual => problems.push(format!(
                "{member}/Cargo.toml depends on {actual:?}, ARCHITECTURE.md's Dependencies draw {expected:?}: \
                 fix the dependency or the drawing (and say why)"
            )),
            Some(_) => {}
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}
