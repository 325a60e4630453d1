//! Sets of field paths, and their `FieldsV1` form in `managedFields`.
//!
//! A path is a list of elements, each written as `FieldsV1` writes it:
//!
//! - `f:replicas`: a field of a struct or a key of a map;
//! - `k:{"name":"nginx"}`: the item of a list map with these key values;
//! - `v:"example.com/protect"`: the item of a set with this value.
//!
//! A set is a tree of elements; a node is a *member* when its own path is
//! in the set (a leaf always is). `FieldsV1` writes the tree as nested
//! JSON objects, a leaf as `{}`, and a member that also has children with
//! the extra key `"."`:
//!
//! ```text
//! {"f:spec":{"f:replicas":{},"f:template":{"f:spec":{"f:containers":{
//!     "k:{\"name\":\"nginx\"}":{".":{},"f:image":{},"f:name":{}}}}}}}
//! ```

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// One element of a path, in its `FieldsV1` spelling.
pub type Element = String;

/// The element for the field `name`.
pub fn field(name: &str) -> Element {
    format!("f:{name}")
}

/// The element for the list-map item with these key values.
pub fn key(values: &Map<String, Value>) -> Element {
    // serde_json's map is ordered by key, as structured-merge-diff sorts
    // the key fields.
    format!("k:{}", Value::Object(values.clone()))
}

/// The element for the set item `value`.
pub fn value(value: &Value) -> Element {
    format!("v:{value}")
}

/// A set of paths, as a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Set {
    member: bool,
    children: BTreeMap<Element, Set>,
}

impl Set {
    pub fn new() -> Set {
        Set::default()
    }

    /// Adds `path`.
    pub fn insert(&mut self, path: &[Element]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }

    /// True when no path is in the set.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(Set::is_empty)
    }

    /// True when `path` itself is in the set.
    pub fn has(&self, path: &[Element]) -> bool {
        self.child(path).is_some_and(|node| node.member)
    }

    /// The subtree at `path`, if any.
    pub fn child(&self, path: &[Element]) -> Option<&Set> {
        let mut node = self;
        for element in path {
            node = node.children.get(element)?;
        }
        Some(node)
    }

    /// The elements under this node, with their subtrees.
    pub fn children(&self) -> impl Iterator<Item = (&Element, &Set)> {
        self.children.iter()
    }

    /// True when this node's own path is in the set.
    pub fn is_member(&self) -> bool {
        self.member
    }

    pub fn union(&self, other: &Set) -> Set {
        let mut out = self.clone();
        out.member |= other.member;
        for (element, theirs) in &other.children {
            let merged = match out.children.get(element) {
                Some(ours) => ours.union(theirs),
                None => theirs.clone(),
            };
            out.children.insert(element.clone(), merged);
        }
        out
    }

    /// The paths of `self` that are not in `other`.
    pub fn difference(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (element, ours) in &self.children {
            let rest = match other.children.get(element) {
                Some(theirs) => ours.difference(theirs),
                None => ours.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(element.clone(), rest);
            }
        }
        out
    }

    /// The paths in both sets.
    pub fn intersection(&self, other: &Set) -> Set {
        let mut out = Set {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (element, ours) in &self.children {
            if let Some(theirs) = other.children.get(element) {
                let both = ours.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(element.clone(), both);
                }
            }
        }
        out
    }

    /// Every path in the set, in order.
    pub fn paths(&self) -> Vec<Vec<Element>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, at: &mut Vec<Element>, out: &mut Vec<Vec<Element>>) {
        if self.member {
            out.push(at.clone());
        }
        for (element, child) in &self.children {
            at.push(element.clone());
            child.collect(at, out);
            at.pop();
        }
    }

    /// The set as `FieldsV1` JSON.
    pub fn to_fields_v1(&self) -> Value {
        let mut object = Map::new();
        if self.member && !self.children.is_empty() {
            object.insert(".".into(), Value::Object(Map::new()));
        }
        for (element, child) in &self.children {
            if !child.is_empty() {
                object.insert(element.clone(), child.to_fields_v1());
            }
        }
        Value::Object(object)
    }

    /// Reads `FieldsV1` JSON.
    pub fn from_fields_v1(json: &Value) -> Result<Set, String> {
        let mut set = Set::new();
        read(json, &mut set)?;
        set.member = false;
        Ok(set)
    }
}

fn read(json: &Value, node: &mut Set) -> Result<(), String> {
    let object = json
        .as_object()
        .ok_or_else(|| format!("expected an object, found {json}"))?;
    if object.is_empty() || object.contains_key(".") {
        node.member = true;
    }
    for (element, child) in object {
        if element == "." {
            continue;
        }
        if !["f:", "k:", "v:", "i:"]
            .iter()
            .any(|prefix| element.starts_with(prefix))
        {
            return Err(format!("unknown path element {element:?}"));
        }
        let mut sub = Set::new();
        read(child, &mut sub)?;
        node.children.insert(element.clone(), sub);
    }
    Ok(())
}

/// A path as structured-merge-diff prints it in conflicts:
/// `.spec.template.spec.containers[name="nginx"].image`.
pub fn display(path: &[Element]) -> String {
    let mut out = String::new();
    for element in path {
        let (kind, rest) = element.split_at(2.min(element.len()));
        match kind {
            "f:" => {
                out.push('.');
                out.push_str(rest);
            }
            "k:" => {
                let keys: Map<String, Value> = serde_json::from_str(rest).unwrap_or_default();
                let shown: Vec<String> = keys
                    .iter()
                    .map(|(name, value)| format!("{name}={value}"))
                    .collect();
                out.push_str(&format!("[{}]", shown.join(",")));
            }
            "v:" => out.push_str(&format!("[={rest}]")),
            _ => out.push_str(&format!("[{rest}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn path(elements: &[&str]) -> Vec<Element> {
        elements.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn fields_v1_round_trips_with_dots_for_members_with_children() {
        let json = json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}}}}
        });
        let set = Set::from_fields_v1(&json).unwrap();
        assert!(set.has(&path(&["f:metadata", "f:labels"])));
        assert!(!set.has(&path(&["f:metadata"])));
        assert!(set.has(&path(&[
            "f:spec",
            "f:containers",
            "k:{\"name\":\"nginx\"}",
            "f:image"
        ])));
        assert_eq!(set.to_fields_v1(), json);
    }

    #[test]
    fn set_operations_work_on_members() {
        let mut a = Set::new();
        a.insert(&path(&["f:spec", "f:replicas"]));
        a.insert(&path(&["f:spec", "f:paused"]));
        let mut b = Set::new();
        b.insert(&path(&["f:spec", "f:replicas"]));
        assert_eq!(a.intersection(&b), b);
        let rest = a.difference(&b);
        assert_eq!(rest.paths(), vec![path(&["f:spec", "f:paused"])]);
        assert_eq!(rest.union(&b), a);
        assert!(a.difference(&a).is_empty());
    }

    #[test]
    fn paths_print_as_upstream_prints_them() {
        assert_eq!(
            display(&path(&[
                "f:spec",
                "f:containers",
                "k:{\"name\":\"nginx\"}",
                "f:ports",
                "k:{\"containerPort\":80,\"protocol\":\"TCP\"}"
            ])),
            ".spec.containers[name=\"nginx\"].ports[containerPort=80,protocol=\"TCP\"]"
        );
        assert_eq!(
            display(&path(&["f:metadata", "f:finalizers", "v:\"a\""])),
            ".metadata.finalizers[=\"a\"]"
        );
    }

    #[test]
    fn unknown_elements_are_refused() {
        assert!(Set::from_fields_v1(&json!({"x:y": {}})).is_err());
        assert!(Set::from_fields_v1(&json!({"f:y": 1})).is_err());
    }
}
