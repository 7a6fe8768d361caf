//! World info from the formats in use: Lite's export (an array of `{key, keysecondary, content,
//! ...}` with comma-separated keys), SillyTavern lorebooks (`{entries: {"0": {key: [...],
//! keysecondary: [...], ...}}}`), character books of V2/V3 cards (`{entries: [{keys: [...],
//! secondary_keys: [...], enabled, ...}]}`), Agnai memory books (`{entries: [{keywords, entry}]}`)
//! and the studio's own (`[{keys, content, constant}]`).

use serde_json::Value;

use super::{count, ImportError, Imported};
use crate::story::WorldEntry;

/// Whether `value` looks like world info in one of the formats read here.
pub fn is_world_info(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.first().is_some_and(is_entry),
        Value::Object(map) => map.get("entries").is_some_and(|e| match e {
            Value::Array(items) => items.iter().all(is_entry),
            Value::Object(items) => items.values().all(is_entry),
            _ => false,
        }),
        _ => false,
    }
}

fn is_entry(value: &Value) -> bool {
    value.is_object()
        && ["keys", "key", "keywords", "content", "entry"]
            .iter()
            .any(|k| value.get(k).is_some())
}

/// A list of keys, whether written as one comma-separated string or as an array.
fn key_list(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.split(',').map(str::trim).filter(|k| !k.is_empty()).collect::<Vec<_>>().join(", "),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>()
            .join(", "),
        _ => String::new(),
    }
}

fn field<'a>(entry: &'a Value, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| entry.get(n).filter(|v| !v.is_null()))
}

fn flag(entry: &Value, name: &str) -> Option<bool> {
    entry.get(name).and_then(Value::as_bool)
}

/// What was left out of a set of entries, counted.
#[derive(Default)]
struct LeftOut {
    disabled: usize,
    empty: usize,
    anti_keys: usize,
    unused_secondary: usize,
    probability: usize,
}

/// The entries of any of the formats, and what was and was not taken.
pub fn entries(value: &Value) -> Result<(Vec<WorldEntry>, Imported), ImportError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(map) => match map.get("entries") {
            Some(Value::Array(items)) => items.iter().collect(),
            // SillyTavern keys its entries by number: keep their order.
            Some(Value::Object(items)) => {
                let mut items: Vec<(&String, &Value)> = items.iter().collect();
                items.sort_by_key(|(k, _)| k.parse::<u64>().unwrap_or(u64::MAX));
                items.into_iter().map(|(_, v)| v).collect()
            }
            _ => return Err(ImportError::NoWorldInfo),
        },
        _ => return Err(ImportError::NoWorldInfo),
    };
    if !items.iter().all(|v| is_entry(v)) {
        return Err(ImportError::NoWorldInfo);
    }
    let mut left = LeftOut::default();
    let mut out = Vec::new();
    for item in items {
        let disabled =
            flag(item, "disable") == Some(true) || flag(item, "widisabled") == Some(true) || flag(item, "enabled") == Some(false);
        if disabled {
            left.disabled += 1;
            continue;
        }
        let content = field(item, &["content", "entry"]).and_then(Value::as_str).unwrap_or_default();
        if content.trim().is_empty() {
            left.empty += 1;
            continue;
        }
        let keys = key_list(field(item, &["keys", "key", "keywords"]));
        let mut secondary = key_list(field(item, &["secondary_keys", "keysecondary"]));
        // Lite and SillyTavern only use the secondary keys of "selective" entries; the studio's
        // own format has no flag (secondary keys are always used).
        if !secondary.is_empty() && flag(item, "selective") == Some(false) {
            left.unused_secondary += 1;
            secondary.clear();
        }
        if !key_list(item.get("keyanti")).is_empty() {
            left.anti_keys += 1;
        }
        let probability = item.get("probability").and_then(Value::as_f64).unwrap_or(100.0);
        let use_probability = flag(item, "useProbability").unwrap_or(true);
        if use_probability && probability < 100.0 {
            left.probability += 1;
        }
        let constant = flag(item, "constant").unwrap_or(false) || (keys.is_empty() && flag(item, "constant").is_none());
        out.push(WorldEntry {
            keys,
            content: content.to_string(),
            constant,
            secondary_keys: secondary,
        });
    }
    let mut imported = Imported::default();
    imported.took(count(out.len(), "world info entry", "world info entries"));
    if out.iter().any(|e| !e.secondary_keys.is_empty()) {
        let n = out.iter().filter(|e| !e.secondary_keys.is_empty()).count();
        imported.took(format!("secondary keys of {}", count(n, "entry", "entries")));
    }
    if left.disabled > 0 {
        imported.left_out(format!(
            "{} (disabled in the file)",
            count(left.disabled, "disabled entry", "disabled entries")
        ));
    }
    if left.empty > 0 {
        imported.left_out(count(left.empty, "entry without content", "entries without content"));
    }
    if left.unused_secondary > 0 {
        imported.left_out(format!(
            "secondary keys of {} not marked selective (unused there too)",
            count(left.unused_secondary, "entry", "entries")
        ));
    }
    if left.anti_keys > 0 {
        imported.left_out(format!(
            "exclusion keys of {} (the studio has none; those entries always trigger on their keys)",
            count(left.anti_keys, "entry", "entries")
        ));
    }
    if left.probability > 0 {
        imported.left_out(format!(
            "trigger probabilities of {} (they always trigger here)",
            count(left.probability, "entry", "entries")
        ));
    }
    Ok((out, imported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lites_world_info_export_reads_with_its_secondary_keys() {
        // What Lite's "Export" in the world-info panel writes (the cause of "missing field `keys`").
        let lite = json!([
            {"key": "castle,keep", "keysecondary": "night", "keyanti": "", "content": "The keep is haunted at night.",
             "comment": "", "folder": null, "selective": true, "constant": false, "probability": 100, "wigroup": "", "widisabled": false},
            {"key": "", "keysecondary": "", "keyanti": "", "content": "Magic is rare.", "comment": "", "folder": null,
             "selective": false, "constant": true, "probability": 100, "wigroup": "", "widisabled": false},
            {"key": "old", "keysecondary": "", "keyanti": "", "content": "Disabled.", "selective": false, "constant": false, "widisabled": true}
        ]);
        assert!(is_world_info(&lite));
        let (entries, report) = entries(&lite).expect("reads");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].keys, "castle, keep");
        assert_eq!(entries[0].secondary_keys, "night");
        assert!(entries[1].constant);
        assert_eq!(report.imported[0], "2 world info entries");
        assert!(report.not_imported[0].contains("1 disabled entry"), "{:?}", report.not_imported);
    }

    #[test]
    fn sillytavern_lorebooks_keep_order_and_flags() {
        let st = json!({"entries": {
            "10": {"uid": 10, "key": ["dragon"], "keysecondary": ["red", "fire"], "selective": true, "content": "Dragons are red.", "constant": false, "disable": false},
            "2": {"uid": 2, "key": ["elf", "elves"], "keysecondary": [], "content": "Elves live long.", "constant": false, "disable": false, "probability": 50, "useProbability": true},
            "3": {"uid": 3, "key": ["gone"], "content": "Off.", "disable": true}
        }});
        assert!(is_world_info(&st));
        let (entries, report) = entries(&st).expect("reads");
        assert_eq!(
            entries.iter().map(|e| e.keys.as_str()).collect::<Vec<_>>(),
            vec!["elf, elves", "dragon"]
        );
        assert_eq!(entries[1].secondary_keys, "red, fire");
        assert_eq!(report.not_imported.len(), 2, "{:?}", report.not_imported);
        assert!(report.not_imported[1].contains("probabilities of 1 entry"));
    }

    #[test]
    fn character_books_agnai_and_our_own_format_read() {
        let book = json!({"name": "b", "entries": [
            {"keys": ["tavern"], "secondary_keys": ["ale"], "selective": true, "content": "The tavern sells ale.", "enabled": true, "insertion_order": 1},
            {"keys": ["x"], "content": "off", "enabled": false}
        ]});
        let (entries, _) = entries(&book).expect("reads");
        assert_eq!((entries.len(), entries[0].secondary_keys.as_str()), (1, "ale"));
        let agnai = json!({"kind": "memory", "name": "m", "entries": [{"keywords": ["moon"], "entry": "Two moons.", "name": "moons", "priority": 0, "weight": 0, "enabled": true}]});
        let (entries, _) = super::entries(&agnai).expect("reads");
        assert_eq!((entries[0].keys.as_str(), entries[0].content.as_str()), ("moon", "Two moons."));
        let ours = json!([{"keys": "a, b", "content": "c", "constant": false}]);
        let (entries, _) = super::entries(&ours).expect("reads");
        assert_eq!(entries[0].keys, "a, b");
        assert!(!is_world_info(&json!({"entries": 3})));
        assert!(!is_world_info(&json!([1, 2])));
    }
}
