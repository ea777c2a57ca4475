//! The documents cannot drift from what they describe: `docs/configuration.md`'s table is
//! checked against `config/default.toml`, and every link in `README.md` and `docs/` must lead
//! to a file of this repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

fn repository() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Read at run time, not with `include_str!`, so that editing a document does not rebuild
/// the whole test binary.
fn read(relative: &str) -> String {
    std::fs::read_to_string(repository().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

/// `docs/configuration.md`'s table lists every key of `config/default.toml`, each with its
/// environment variable and exactly its default, and nothing else.
///
/// The rule:
/// * every key `config/default.toml` sets (read with the `config` crate, as ztv reads it) has
///   one row, whose default cell is the key's value written as a TOML literal (`"text"`, `30`,
///   `[]`, `""`) in backticks;
/// * every key `config/default.toml` shows only in a comment (a `# key = value` line under a
///   section header, itself perhaps commented out, such as `# require_email_verified = true` or
///   the `# [accounts.prod.s2s]` block) has one row whose default cell is `—`: it has no
///   default. The account name of the example (`prod`) is written `<name>`, and a line saying
///   `(or client_secret_file)` names that key too;
/// * no other row, and no key twice;
/// * every row's environment cell starts with its variable, `ZTV_` and the key upper-cased
///   with `__` for each dot (`server.bind` → `ZTV_SERVER__BIND`).
#[test]
fn configuration_md_lists_every_key_of_default_toml_with_its_default() {
    let defaults_text = read("config/default.toml");
    let set = keys_set_by(&defaults_text);
    let commented = keys_only_in_comments_of(&defaults_text);
    assert!(
        set.len() > 40,
        "read only {} keys from default.toml",
        set.len()
    );
    assert!(commented.contains("end_users.require_email_verified"));
    assert!(commented.contains("accounts.<name>.s2s.client_secret_file"));

    let rows = configuration_rows(&read("docs/configuration.md"));
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for row in &rows {
        if !seen.insert(row.key.clone()) {
            problems.push(format!("`{}` has two rows", row.key));
        }
        let variable = format!("`ZTV_{}", row.key.to_uppercase().replace('.', "__"));
        if !row.env.starts_with(&format!("{variable}`")) {
            problems.push(format!(
                "`{}`: the env column is {:?}, not {variable}`",
                row.key, row.env
            ));
        }
        match (set.get(&row.key), commented.contains(&row.key)) {
            (Some(default), _) => {
                let expected = format!("`{default}`");
                if row.default != expected {
                    problems.push(format!(
                        "`{}`: the default column is {:?}, default.toml has {expected}",
                        row.key, row.default
                    ));
                }
            }
            (None, true) => {
                if row.default != "—" {
                    problems.push(format!(
                        "`{}`: default.toml sets no default; the column must be —, not {:?}",
                        row.key, row.default
                    ));
                }
            }
            (None, false) => problems.push(format!(
                "`{}` is in docs/configuration.md but not in config/default.toml",
                row.key
            )),
        }
    }
    for key in set.keys().chain(commented.iter()) {
        if !seen.contains(key) {
            problems.push(format!(
                "`{key}` is in config/default.toml but not in docs/configuration.md"
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "docs/configuration.md has drifted from config/default.toml:\n{}",
        problems.join("\n")
    );
}

/// Every relative link of `README.md` and `docs/*.md` leads to a file or folder of this
/// repository (no document refers to one outside it), and a `#section` of a Markdown file to
/// one of its headings.
#[test]
fn every_link_in_the_readme_and_docs_leads_to_a_file_of_the_repository() {
    let mut documents = vec![PathBuf::from("README.md")];
    for entry in std::fs::read_dir(repository().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "md") {
            documents.push(path.strip_prefix(repository()).unwrap().to_path_buf());
        }
    }
    assert!(documents.len() >= 7, "README.md and six documents in docs/");
    let mut problems = Vec::new();
    for document in &documents {
        let text = read(document.to_str().unwrap());
        let folder = document.parent().unwrap_or(Path::new(""));
        for target in link_targets(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((file, anchor)) => (file, Some(anchor)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                repository().join(document)
            } else {
                repository().join(folder).join(file)
            };
            let inside = path
                .canonicalize()
                .is_ok_and(|p| p.starts_with(repository().canonicalize().unwrap()));
            if !inside {
                problems.push(format!("{}: ({target}): no such file", document.display()));
                continue;
            }
            if let Some(anchor) = anchor
                && path.extension().is_some_and(|e| e == "md")
                && !heading_anchors(&std::fs::read_to_string(&path).unwrap()).contains(anchor)
            {
                problems.push(format!(
                    "{}: ({target}): no such heading",
                    document.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "links to no file of the repository:\n{}",
        problems.join("\n")
    );
}

/// Every key `text` sets, flattened to `section.key`, with its value as a TOML literal.
fn keys_set_by(text: &str) -> BTreeMap<String, String> {
    let value: Value = config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .unwrap()
        .try_deserialize()
        .unwrap();
    let mut keys = BTreeMap::new();
    flatten("", &value, &mut keys);
    keys
}

fn flatten(prefix: &str, value: &Value, keys: &mut BTreeMap<String, String>) {
    if let Value::Object(table) = value {
        for (key, value) in table {
            let key = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            flatten(&key, value, keys);
        }
    } else {
        keys.insert(prefix.to_string(), toml_literal(value));
    }
}

/// A value written as `config/default.toml` writes it.
fn toml_literal(value: &Value) -> String {
    match value {
        Value::Array(items) => format!(
            "[{}]",
            items
                .iter()
                .map(toml_literal)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        // A JSON string, number or boolean is written as TOML writes it.
        other => other.to_string(),
    }
}

/// Keys that appear only in comments: `# key = value` under a `[section]` or `# [section]`
/// header, with the example account's name written `<name>`.
fn keys_only_in_comments_of(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    let mut section = String::new();
    for line in text.lines() {
        let line = line.trim();
        let (commented, rest) = match line.strip_prefix('#') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if let Some(header) = rest.strip_prefix('[') {
            if let Some((name, _)) = header.split_once(']')
                && is_key_path(name)
            {
                section = name.to_string();
            }
            continue;
        }
        if !commented {
            continue;
        }
        let Some((key, value)) = rest.split_once(" = ") else {
            continue;
        };
        if !is_key_path(key) || key.contains('.') {
            continue;
        }
        let mut names = vec![key.to_string()];
        if let Some((_, alternative)) = value.split_once("(or ")
            && let Some((file_key, _)) = alternative.split_once(')')
            && file_key.ends_with("_file")
        {
            names.push(file_key.to_string());
        }
        for name in names {
            let full = if section.is_empty() {
                name
            } else {
                format!("{section}.{name}")
            };
            keys.insert(generic_account(&full));
        }
    }
    keys
}

fn is_key_path(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.'))
}

/// `accounts.prod.s2s.client_id` → `accounts.<name>.s2s.client_id`.
fn generic_account(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["accounts", _, rest @ ..] => format!("accounts.<name>.{}", rest.join(".")),
        _ => key.to_string(),
    }
}

struct Row {
    key: String,
    env: String,
    default: String,
}

/// The rows of the table headed `| key | env | default | meaning |`.
fn configuration_rows(text: &str) -> Vec<Row> {
    let mut lines = text
        .lines()
        .skip_while(|line| line.trim() != "| key | env | default | meaning |");
    assert!(
        lines.next().is_some(),
        "docs/configuration.md has no table headed | key | env | default | meaning |"
    );
    lines.next(); // |---|---|---|---|
    let mut rows = Vec::new();
    for line in lines.take_while(|line| line.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        assert!(cells.len() >= 6, "not a row of four cells: {line}");
        let key = cells[1]
            .strip_prefix('`')
            .and_then(|k| k.strip_suffix('`'))
            .filter(|k| !k.contains('`'))
            .unwrap_or_else(|| panic!("the key cell must be one `key`: {line}"));
        rows.push(Row {
            key: key.to_string(),
            env: cells[2].to_string(),
            default: cells[3].to_string(),
        });
    }
    assert!(!rows.is_empty(), "the configuration table has no rows");
    rows
}

/// The targets of Markdown links `[text](target)` outside code blocks and code spans.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block {
            continue;
        }
        // Code spans (`…`) hold examples, not links.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, part)| part)
            .collect();
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else {
                break;
            };
            targets.push(after[..end].trim().to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// The anchors GitHub gives a document's headings: lower case, spaces as `-`, punctuation
/// (backticks, dots, colons, slashes) dropped.
fn heading_anchors(text: &str) -> BTreeSet<String> {
    let mut anchors = BTreeSet::new();
    let mut in_code_block = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code_block = !in_code_block;
            continue;
        }
        if in_code_block || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#').trim();
        let anchor: String = title
            .to_lowercase()
            .chars()
            .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
            .map(|c| if c == ' ' { '-' } else { c })
            .collect();
        anchors.insert(anchor);
    }
    anchors
}
