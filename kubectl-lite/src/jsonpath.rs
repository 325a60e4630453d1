//! `-o jsonpath='{.spec.clusterIP}'`: picking fields out of an object.
//!
//! Students use it to put a value in a shell variable
//! (`IP=$(kubectl get svc ngx-svc -o jsonpath='{.spec.clusterIP}')`). The
//! template is text with expressions in braces; each expression walks the
//! object from its root:
//!
//! - `.spec.clusterIP`   a field
//! - `.spec.ports[0]`    an element of a list (`[-1]` counts from the end)
//! - `.items[*].metadata.name`  every element; results are joined by spaces
//! - `{"\n"}`            a literal string
//!
//! Strings print without quotes, other scalars as JSON, objects and lists
//! as JSON. A path that finds nothing prints nothing, like kubectl with
//! `--allow-missing-template-keys` (its default).
//! (`{range}`/`{end}` and filters are not supported.)

use serde_json::Value;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Path(Vec<Step>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(i64),
    All,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Part>);

impl Template {
    /// Parses `text{.path}text...`; errors name what is wrong, as kubectl's
    /// "error parsing jsonpath ..." does.
    pub fn parse(template: &str) -> Result<Template, String> {
        let error = |why: &str| format!("error parsing jsonpath {template}, {why}");
        let mut parts = vec![];
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| error("unclosed action"))?;
            let expr = rest[open + 1..open + close].trim();
            parts.push(parse_expr(expr).map_err(|why| error(&why))?);
            rest = &rest[open + close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template(parts))
    }

    /// Applies the template to `root`.
    pub fn render(&self, root: &Value) -> String {
        let mut out = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Path(steps) => {
                    let found = walk(root, steps);
                    let texts: Vec<String> = found.into_iter().map(scalar_text).collect();
                    out.push_str(&texts.join(" "));
                }
            }
        }
        out
    }
}

fn parse_expr(expr: &str) -> Result<Part, String> {
    if let Some(literal) = expr.strip_prefix('"').and_then(|e| e.strip_suffix('"')) {
        return Ok(Part::Text(
            literal.replace("\\n", "\n").replace("\\t", "\t"),
        ));
    }
    let mut steps = vec![];
    let mut rest = expr.strip_prefix('$').unwrap_or(expr);
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('.') {
            let end = after.find(['.', '[']).unwrap_or(after.len());
            if end > 0 {
                steps.push(Step::Field(after[..end].to_string()));
            }
            rest = &after[end..];
        } else if let Some(after) = rest.strip_prefix('[') {
            let end = after.find(']').ok_or("unterminated array index")?;
            let index = after[..end].trim();
            steps.push(if index == "*" {
                Step::All
            } else {
                Step::Index(
                    index
                        .parse()
                        .map_err(|_| format!("invalid array index {index}"))?,
                )
            });
            rest = &after[end + 1..];
        } else {
            return Err(format!("unrecognized character in action: {rest:?}"));
        }
    }
    Ok(Part::Path(steps))
}

fn walk<'a>(root: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        current = current
            .into_iter()
            .flat_map(|v| -> Vec<&Value> {
                match step {
                    Step::Field(name) => v.get(name).into_iter().collect(),
                    Step::All => match v {
                        Value::Array(items) => items.iter().collect(),
                        Value::Object(map) => map.values().collect(),
                        _ => vec![],
                    },
                    Step::Index(i) => {
                        let items = v.as_array().map(Vec::as_slice).unwrap_or_default();
                        let at = if *i < 0 { items.len() as i64 + i } else { *i };
                        usize::try_from(at)
                            .ok()
                            .and_then(|at| items.get(at))
                            .into_iter()
                            .collect()
                    }
                }
            })
            .collect();
    }
    current
}

fn scalar_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_indexes_and_wildcards() {
        let svc = json!({"spec": {"clusterIP": "10.96.0.20",
                                  "ports": [{"port": 80, "nodePort": 30080}, {"port": 443}]}});
        let render = |t: &str| Template::parse(t).unwrap().render(&svc);
        assert_eq!(render("{.spec.clusterIP}"), "10.96.0.20");
        assert_eq!(render("{.spec.ports[0].nodePort}"), "30080");
        assert_eq!(render("{.spec.ports[*].port}"), "80 443");
        assert_eq!(render("{.spec.ports[-1].port}"), "443");
        assert_eq!(render("ip={.spec.clusterIP}{\"\\n\"}"), "ip=10.96.0.20\n");
        assert_eq!(render("{.spec.missing}"), "");
        assert_eq!(
            render("{$.spec.ports[0]}"),
            r#"{"nodePort":30080,"port":80}"#
        );
        let list = json!({"items": [{"metadata": {"name": "a"}}, {"metadata": {"name": "b"}}]});
        assert_eq!(
            Template::parse("{.items[*].metadata.name}")
                .unwrap()
                .render(&list),
            "a b"
        );
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(Template::parse("{.spec").is_err());
        assert!(Template::parse("{.spec[x]}").is_err());
    }
}
