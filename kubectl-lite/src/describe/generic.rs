//! Any other kind: its metadata, then its content field by field, as kubectl's generic describer.

use super::*;

/// Objects without a page of their own: every field, nested, with
/// human labels (`creationTimestamp` -> `Creation Timestamp`).
pub fn describe_generic(object: &Value, events: &[Value], now: DateTime<Utc>) -> String {
    let mut w = Page::default();
    w.object_header(object);
    let skip = [
        ".metadata.managedFields",
        ".metadata.name",
        ".metadata.namespace",
        ".metadata.labels",
        ".metadata.annotations",
    ];
    if let Some(map) = object.as_object() {
        unstructured_content(&mut w, 0, map, "", &skip);
    }
    w.events(events, now);
    w.finish()
}

pub(super) fn unstructured_content(
    w: &mut Page,
    level: usize,
    content: &serde_json::Map<String, Value>,
    prefix: &str,
    skip: &[&str],
) {
    for (field, value) in content {
        let path = format!("{prefix}.{field}");
        if skip.contains(&path.as_str()) {
            continue;
        }
        match value {
            Value::Object(child) => {
                w.write(level, &format!("{}:\n", smart_label(field)));
                unstructured_content(w, level + 1, child, &path, skip);
            }
            Value::Array(children) => {
                w.write(level, &format!("{}:\n", smart_label(field)));
                for child in children {
                    match child {
                        Value::Object(m) => unstructured_content(w, level + 1, m, &path, skip),
                        Value::String(s) => w.write(level + 1, &format!("{s}\n")),
                        other => w.write(level + 1, &format!("{other}\n")),
                    }
                }
            }
            Value::String(s) => w.write(level, &format!("{}:\t{s}\n", smart_label(field))),
            Value::Null => w.write(level, &format!("{}:\t<nil>\n", smart_label(field))),
            other => w.write(level, &format!("{}:\t{other}\n", smart_label(field))),
        }
    }
}

/// `creationTimestamp` -> `Creation Timestamp`, `apiVersion` -> `API Version`.
pub(super) fn smart_label(field: &str) -> String {
    if field.chars().any(|c| !c.is_alphabetic() && c != '-') {
        return field.to_string();
    }
    // Split camelCase into words, keeping runs of capitals together.
    let chars: Vec<char> = field.chars().collect();
    let mut words: Vec<String> = Vec::new();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let starts_word = c.is_uppercase()
            && i > 0
            && (chars[i - 1].is_lowercase()
                || chars.get(i + 1).is_some_and(|n| n.is_lowercase())
                    && chars[i - 1].is_uppercase());
        if starts_word && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        current.push(c);
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
        .into_iter()
        .map(|word| {
            let upper = word.to_uppercase();
            if ["API", "URL", "UID", "OSB", "GUID"].contains(&upper.as_str()) {
                upper
            } else {
                let mut chars = word.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().collect::<String>() + chars.as_str(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
