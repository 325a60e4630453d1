//! Label selectors and field selectors: how Kubernetes picks objects.
//!
//! Objects in Kubernetes do not point at each other by name as much as one
//! would expect. A Service does not list its Pods; it says
//! `selector: {app: ngx-dep}`, and every Pod whose **labels** match belongs
//! to it, including Pods created later. Deployments and ReplicaSets find
//! their Pods the same way, and `kubectl get pods -l app=ngx-dep` asks the
//! API server for exactly that set.
//!
//! A [`LabelSelector`] is a list of requirements that must *all* hold:
//!
//! | syntax              | meaning                                         |
//! |---------------------|-------------------------------------------------|
//! | `app=ngx`, `app==ngx` | label `app` is `ngx`                          |
//! | `app!=ngx`          | label `app` is missing or not `ngx`             |
//! | `tier in (web,api)` | label `tier` is `web` or `api`                  |
//! | `tier notin (db)`   | label `tier` is missing or not `db`             |
//! | `app`               | label `app` exists, whatever its value          |
//! | `!canary`           | label `canary` does not exist                   |
//! | `gen>3`, `gen<9`    | label `gen` is an integer above / below it      |
//!
//! Requirements are joined with commas (`app=ngx,tier in (web)`); an empty
//! selector matches everything. In YAML the same thing is written as
//! `matchLabels` and `matchExpressions` ([`LabelSelector::from_k8s`]), or, for
//! a Service, as a plain map ([`selector_from_map`]).
//!
//! A [`FieldSelector`] (`kubectl get pods --field-selector
//! spec.nodeName=node1`) compares a few well-known fields instead of labels,
//! only with `=`, `==` and `!=`. Each resource decides which fields it
//! supports (see `ResourceType::supports_field`); this is how a node agent
//! asks for just the Pods scheduled onto its node.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use serde_json::Value;

use crate::names;

/// Why a selector could not be parsed or built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// The label selector string is not well formed.
    #[error("unable to parse label selector {selector:?}: {problem}")]
    Syntax { selector: String, problem: String },
    /// A label key breaks the qualified-name rules.
    #[error("invalid label key {key:?}: {}", reasons.join("; "))]
    InvalidKey { key: String, reasons: Vec<String> },
    /// A label value breaks the label-value rules.
    #[error("invalid label value {value:?} for key {key:?}: {}", reasons.join("; "))]
    InvalidValue {
        key: String,
        value: String,
        reasons: Vec<String>,
    },
    /// An operator got the wrong number or kind of values, or is unknown.
    #[error("invalid requirement on label {key:?}: {problem}")]
    InvalidRequirement { key: String, problem: String },
    /// The field selector string is not well formed.
    #[error("invalid field selector {selector:?}: {problem}")]
    FieldSyntax { selector: String, problem: String },
}

/// How a requirement compares a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key=value`
    Equals,
    /// `key==value`, the same test as `=` but kept so it prints back as typed.
    DoubleEquals,
    /// `key!=value`
    NotEquals,
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>3`: the label is an integer greater than the value.
    GreaterThan,
    /// `key<3`: the label is an integer less than the value.
    LessThan,
}

/// One condition on one label key, such as `tier in (api,web)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and without duplicates: the values form a set.
    values: Vec<String>,
}

impl Requirement {
    /// Builds a requirement, checking the key, the values, and that the
    /// operator got the number of values it needs (as apimachinery's
    /// `NewRequirement` does).
    pub fn new<I, S>(key: &str, operator: Operator, values: I) -> Result<Self, SelectorError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let reasons = names::is_qualified_name(key);
        if !reasons.is_empty() {
            return Err(SelectorError::InvalidKey {
                key: key.to_string(),
                reasons,
            });
        }
        let mut values: Vec<String> = values.into_iter().map(Into::into).collect();
        values.sort();
        values.dedup();

        let problem = match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                Some("for 'in', 'notin' operators, values set can't be empty")
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals
                if values.len() != 1 =>
            {
                Some("exact-match compatibility requires one single value")
            }
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                Some("values set must be empty for exists and does not exist")
            }
            Operator::GreaterThan | Operator::LessThan if values.len() != 1 => {
                Some("for 'Gt', 'Lt' operators, exactly one value is required")
            }
            Operator::GreaterThan | Operator::LessThan if values[0].parse::<i64>().is_err() => {
                Some("for 'Gt', 'Lt' operators, the value must be an integer")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(SelectorError::InvalidRequirement {
                key: key.to_string(),
                problem: problem.to_string(),
            });
        }
        for value in &values {
            let reasons = names::is_valid_label_value(value);
            if !reasons.is_empty() {
                return Err(SelectorError::InvalidValue {
                    key: key.to_string(),
                    value: value.clone(),
                    reasons,
                });
            }
        }
        Ok(Self {
            key: key.to_string(),
            operator,
            values,
        })
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted.
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether an object whose label `key` is `label` (None: no such label)
    /// satisfies this requirement.
    pub fn matches_label(&self, label: Option<&str>) -> bool {
        let has_value = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In => {
                label.is_some_and(has_value)
            }
            // A missing label is "not equal" to anything: `app!=ngx` also
            // selects objects that have no `app` label at all.
            Operator::NotEquals | Operator::NotIn => !label.is_some_and(has_value),
            Operator::Exists => label.is_some(),
            Operator::DoesNotExist => label.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(label), Some(bound)) = (
                    label.and_then(|l| l.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    label > bound
                } else {
                    label < bound
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Exists => write!(f, "{key}"),
            Operator::DoesNotExist => write!(f, "!{key}"),
            Operator::Equals => write!(f, "{key}={first}"),
            Operator::DoubleEquals => write!(f, "{key}=={first}"),
            Operator::NotEquals => write!(f, "{key}!={first}"),
            Operator::GreaterThan => write!(f, "{key}>{first}"),
            Operator::LessThan => write!(f, "{key}<{first}"),
            Operator::In => write!(f, "{key} in ({})", self.values.join(",")),
            Operator::NotIn => write!(f, "{key} notin ({})", self.values.join(",")),
        }
    }
}

/// A label selector: requirements that must all hold.
///
/// The empty selector (the `Default`) matches every object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// Sorted by key, as Kubernetes keeps them, so that two selectors with
    /// the same requirements print the same.
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses the string form used by `kubectl -l` and `?labelSelector=`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        LabelSelectorParser::new(s).parse()
    }

    /// Converts the structured form found in Deployments and ReplicaSets
    /// (`matchLabels` plus `matchExpressions`).
    ///
    /// An object without any selector (`None` in its spec) selects nothing
    /// in Kubernetes, whereas an empty one selects everything; callers keep
    /// that distinction by handling the `None` themselves.
    pub fn from_k8s(sel: &meta::LabelSelector) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for (key, value) in sel.match_labels.iter().flatten() {
            requirements.push(Requirement::new(key, Operator::Equals, [value.as_str()])?);
        }
        for expr in sel.match_expressions.iter().flatten() {
            let operator = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::InvalidRequirement {
                        key: expr.key.clone(),
                        problem: format!("{other:?} is not a valid label selector operator"),
                    })
                }
            };
            let values = expr.values.iter().flatten().map(String::as_str);
            requirements.push(Requirement::new(&expr.key, operator, values)?);
        }
        Ok(Self::from_requirements(requirements))
    }

    /// Builds a selector from requirements, in canonical (key) order.
    pub fn from_requirements(mut requirements: Vec<Requirement>) -> Self {
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Self { requirements }
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Whether a set of labels satisfies every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matches_with(|key| labels.get(key).map(String::as_str))
    }

    /// Whether an object (as JSON) matches, reading its `metadata.labels`.
    /// Labels that are not strings are treated as absent.
    pub fn matches_value(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels").and_then(Value::as_object);
        self.matches_with(|key| labels.and_then(|l| l.get(key)).and_then(Value::as_str))
    }

    fn matches_with<'a>(&self, label: impl Fn(&str) -> Option<&'a str>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_label(label(&r.key)))
    }

    /// The single value `key` must have, when the selector pins it
    /// (`key=v`, `key==v` or `key in (v)`): lets a caller look objects up
    /// directly, e.g. the EndpointSlices with `kubernetes.io/service-name=X`.
    pub fn exact_value(&self, key: &str) -> Option<&str> {
        self.requirements.iter().find_map(|r| match r.operator {
            Operator::Equals | Operator::DoubleEquals | Operator::In
                if r.key == key && r.values.len() == 1 =>
            {
                Some(r.values[0].as_str())
            }
            _ => None,
        })
    }
}

/// The selector of a plain label map, as a Service's `spec.selector` or a
/// ReplicaSet's `matchLabels` is: every label must be equal. An empty map
/// gives the empty selector, which matches everything; a Service with no
/// selector means "endpoints are managed by hand" and callers check for
/// that before matching.
pub fn selector_from_map(map: &BTreeMap<String, String>) -> LabelSelector {
    // Build requirements directly rather than through `Requirement::new`:
    // the map comes from a stored object, and refusing to match because of
    // one odd key would be worse than comparing it literally.
    let requirements = map
        .iter()
        .map(|(key, value)| Requirement {
            key: key.clone(),
            operator: Operator::Equals,
            values: vec![value.clone()],
        })
        .collect();
    LabelSelector::from_requirements(requirements)
}

impl fmt::Display for LabelSelector {
    /// The canonical string form, as `kubectl get rs -o wide` prints it
    /// (`app=ngx-dep,pod-template-hash=6d4f8b9c7`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for LabelSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The pieces a label selector string is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token<'a> {
    Identifier(&'a str),
    /// `!`
    Not,
    Equals,
    DoubleEquals,
    NotEquals,
    GreaterThan,
    LessThan,
    In,
    NotIn,
    OpenParen,
    CloseParen,
    Comma,
    End,
}

impl fmt::Display for Token<'_> {
    /// How an error message names the token it did not expect.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Identifier(s) => write!(f, "{s:?}"),
            Token::Not => f.write_str("'!'"),
            Token::Equals => f.write_str("'='"),
            Token::DoubleEquals => f.write_str("'=='"),
            Token::NotEquals => f.write_str("'!='"),
            Token::GreaterThan => f.write_str("'>'"),
            Token::LessThan => f.write_str("'<'"),
            Token::In => f.write_str("'in'"),
            Token::NotIn => f.write_str("'notin'"),
            Token::OpenParen => f.write_str("'('"),
            Token::CloseParen => f.write_str("')'"),
            Token::Comma => f.write_str("','"),
            Token::End => f.write_str("the end of the selector"),
        }
    }
}

/// Splits a selector into tokens. Identifiers run until whitespace or one of
/// the symbols `=!(),<>`; `in` and `notin` are keywords.
fn tokenize(s: &str) -> Vec<Token<'_>> {
    const SYMBOLS: &[char] = &['=', '!', '(', ')', ',', '<', '>'];
    let mut tokens = Vec::new();
    let mut rest = s.trim_start();
    while !rest.is_empty() {
        let (token, len) = if rest.starts_with("==") {
            (Token::DoubleEquals, 2)
        } else if rest.starts_with("!=") {
            (Token::NotEquals, 2)
        } else {
            match rest.as_bytes()[0] {
                b'=' => (Token::Equals, 1),
                b'!' => (Token::Not, 1),
                b'(' => (Token::OpenParen, 1),
                b')' => (Token::CloseParen, 1),
                b',' => (Token::Comma, 1),
                b'<' => (Token::LessThan, 1),
                b'>' => (Token::GreaterThan, 1),
                _ => {
                    let len = rest
                        .find(|c: char| c.is_whitespace() || SYMBOLS.contains(&c))
                        .unwrap_or(rest.len());
                    let word = &rest[..len];
                    let token = match word {
                        "in" => Token::In,
                        "notin" => Token::NotIn,
                        _ => Token::Identifier(word),
                    };
                    (token, len)
                }
            }
        };
        tokens.push(token);
        rest = rest[len..].trim_start();
    }
    tokens.push(Token::End);
    tokens
}

/// A recursive-descent parser over the tokens of one selector string.
struct LabelSelectorParser<'a> {
    input: &'a str,
    tokens: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> LabelSelectorParser<'a> {
    fn new(input: &'a str) -> Self {
        Self {
            input,
            tokens: tokenize(input),
            pos: 0,
        }
    }

    fn peek(&self) -> Token<'a> {
        self.tokens[self.pos]
    }

    fn next(&mut self) -> Token<'a> {
        let token = self.tokens[self.pos];
        if token != Token::End {
            self.pos += 1;
        }
        token
    }

    fn error(&self, problem: String) -> SelectorError {
        SelectorError::Syntax {
            selector: self.input.to_string(),
            problem,
        }
    }

    /// `requirement ("," requirement)*`, or nothing at all.
    fn parse(mut self) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        if self.peek() == Token::End {
            return Ok(LabelSelector::default());
        }
        loop {
            requirements.push(self.requirement()?);
            match self.next() {
                Token::Comma => continue,
                Token::End => break,
                other => {
                    let last = requirements.last().map(|r| r.key.as_str()).unwrap_or("");
                    return Err(self.error(format!(
                        "expected ',' or the end of the selector after the requirement on {last:?}, found {other}"
                    )));
                }
            }
        }
        Ok(LabelSelector::from_requirements(requirements))
    }

    /// Keywords are fine as keys and values: `in=notin` means what it says.
    fn word(token: Token<'a>) -> Option<&'a str> {
        match token {
            Token::Identifier(s) => Some(s),
            Token::In => Some("in"),
            Token::NotIn => Some("notin"),
            _ => None,
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let token = self.next();
        if token == Token::Not {
            let next = self.next();
            let Some(key) = Self::word(next) else {
                return Err(self.error(format!("expected a label key after '!', found {next}")));
            };
            return Requirement::new(key, Operator::DoesNotExist, Vec::<String>::new());
        }
        let Some(key) = Self::word(token) else {
            return Err(self.error(format!("expected a label key or '!', found {token}")));
        };
        let operator = match self.peek() {
            Token::Comma | Token::End => {
                return Requirement::new(key, Operator::Exists, Vec::<String>::new())
            }
            Token::Equals => Operator::Equals,
            Token::DoubleEquals => Operator::DoubleEquals,
            Token::NotEquals => Operator::NotEquals,
            Token::GreaterThan => Operator::GreaterThan,
            Token::LessThan => Operator::LessThan,
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            other => {
                return Err(self.error(format!(
                    "expected an operator (=, ==, !=, in, notin, >, <) after {key:?}, found {other}"
                )))
            }
        };
        self.next();
        let values = match operator {
            Operator::In | Operator::NotIn => self.value_set(key)?,
            _ => match self.peek() {
                // `app=` selects an empty value, which is a valid label value.
                Token::Comma | Token::End => vec![String::new()],
                token => match Self::word(token) {
                    Some(value) => {
                        self.next();
                        vec![value.to_string()]
                    }
                    None => {
                        return Err(
                            self.error(format!("expected a value for {key:?}, found {token}"))
                        )
                    }
                },
            },
        };
        Requirement::new(key, operator, values)
    }

    /// `"(" value ("," value)* ")"`, where a value may be empty.
    fn value_set(&mut self, key: &str) -> Result<Vec<String>, SelectorError> {
        let open = self.next();
        if open != Token::OpenParen {
            return Err(self.error(format!(
                "expected '(' to open the values of {key:?}, found {open}"
            )));
        }
        let mut values = Vec::new();
        if self.peek() == Token::CloseParen {
            self.next();
            return Ok(values);
        }
        loop {
            match Self::word(self.peek()) {
                Some(value) => {
                    self.next();
                    values.push(value.to_string());
                }
                None => values.push(String::new()),
            }
            match self.next() {
                Token::Comma => continue,
                Token::CloseParen => return Ok(values),
                Token::End => {
                    return Err(self.error(format!("missing ')' after the values of {key:?}")))
                }
                other => {
                    return Err(self.error(format!(
                        "expected ',' or ')' in the values of {key:?}, found {other}"
                    )))
                }
            }
        }
    }
}

/// How a field requirement compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    /// `field=value`
    Equals,
    /// `field==value`
    DoubleEquals,
    /// `field!=value`
    NotEquals,
}

/// One condition of a field selector, such as `status.phase!=Running`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

impl FieldRequirement {
    /// Whether an object whose field renders as `actual` satisfies this.
    pub fn matches_field(&self, actual: &str) -> bool {
        match self.operator {
            FieldOperator::Equals | FieldOperator::DoubleEquals => actual == self.value,
            FieldOperator::NotEquals => actual != self.value,
        }
    }
}

impl fmt::Display for FieldRequirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.operator {
            // Kubernetes prints both spellings of equality as `=`.
            FieldOperator::Equals | FieldOperator::DoubleEquals => "=",
            FieldOperator::NotEquals => "!=",
        };
        write!(f, "{}{op}{}", self.field, escape_field_value(&self.value))
    }
}

/// A field selector: field comparisons that must all hold. The empty
/// selector matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `?fieldSelector=` / `--field-selector`: comma-separated
    /// `field=value`, `field==value` or `field!=value`. Inside a value,
    /// `\,`, `\=` and `\\` stand for a literal `,`, `=` and `\`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let error = |problem: String| SelectorError::FieldSyntax {
            selector: s.to_string(),
            problem,
        };
        let mut requirements = Vec::new();
        for term in split_unescaped_commas(s) {
            // Unlike upstream, surrounding blanks are dropped: a user who
            // types `status.phase = Running` means `status.phase=Running`.
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let Some((field, operator, raw_value)) = split_field_term(term) else {
                return Err(error(format!(
                    "can't understand {term:?}: expected field=value, field==value or field!=value"
                )));
            };
            let field = field.trim();
            if field.is_empty() {
                return Err(error(format!("{term:?} names no field")));
            }
            let value = unescape_field_value(raw_value.trim())
                .map_err(|problem| error(format!("{problem} in {term:?}")))?;
            requirements.push(FieldRequirement {
                field: field.to_string(),
                operator,
                value,
            });
        }
        Ok(Self { requirements })
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True for the selector that matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The fields this selector compares, so that a server can refuse the
    /// ones a resource does not support (400 `field label not supported`).
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.requirements.iter().map(|r| r.field.as_str())
    }

    /// The value an `=`/`==` requirement pins `field` to, e.g. the name in
    /// `metadata.name=ngx-svc`, which lets a server fetch one object instead
    /// of scanning all of them.
    pub fn exact_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator != FieldOperator::NotEquals)
            .map(|r| r.value.as_str())
    }

    /// Whether an object (as JSON) satisfies every requirement.
    pub fn matches_value(&self, obj: &Value) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches_field(&field_value(obj, &r.field)))
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

impl FromStr for FieldSelector {
    type Err = SelectorError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The string a field selector compares for `field` of `obj`.
///
/// Kubernetes computes these from typed objects, so a missing field is the
/// empty string and a boolean is `true`/`false`. Two selectable fields are
/// not plain JSON paths: an Event's `source` is `source.component`, and a
/// Node's `spec.unschedulable` is a Go bool that reads `false` when unset.
pub fn field_value(obj: &Value, field: &str) -> String {
    let (path, default) = match field {
        "source" => ("source.component", ""),
        "spec.unschedulable" => (field, "false"),
        _ => (field, ""),
    };
    let found = path
        .split('.')
        .try_fold(obj, |value, segment| value.get(segment));
    match found {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => default.to_string(),
    }
}

/// Splits at commas that are not escaped by a backslash.
fn split_unescaped_commas(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            ',' => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Finds the first operator in a term. `!=` and `==` are tried before `=`
/// at each position, so `a!=b` is a not-equal and not a field named `a!`.
fn split_field_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    const OPERATORS: [(&str, FieldOperator); 3] = [
        ("!=", FieldOperator::NotEquals),
        ("==", FieldOperator::DoubleEquals),
        ("=", FieldOperator::Equals),
    ];
    term.char_indices().find_map(|(i, _)| {
        OPERATORS.iter().find_map(|(op, operator)| {
            term[i..]
                .starts_with(op)
                .then(|| (&term[..i], *operator, &term[i + op.len()..]))
        })
    })
}

fn unescape_field_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e @ ('\\' | ',' | '=')) => value.push(e),
                Some(e) => return Err(format!("invalid escape sequence \\{e}")),
                None => return Err("invalid escape sequence \\ at the end".to_string()),
            },
            ',' | '=' => return Err(format!("unescaped {c:?} in the value")),
            _ => value.push(c),
        }
    }
    Ok(value)
}

fn escape_field_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn sel(s: &str) -> LabelSelector {
        LabelSelector::parse(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn equality_requirements() {
        let ngx = labels(&[("app", "ngx-dep"), ("tier", "web")]);
        let other = labels(&[("app", "other")]);
        let none = labels(&[]);
        for s in ["app=ngx-dep", "app==ngx-dep", " app = ngx-dep "] {
            assert!(sel(s).matches(&ngx), "{s}");
            assert!(!sel(s).matches(&other), "{s}");
            assert!(!sel(s).matches(&none), "{s}");
        }
        // `!=` also selects objects without the label at all.
        let ne = sel("app!=ngx-dep");
        assert!(!ne.matches(&ngx));
        assert!(ne.matches(&other));
        assert!(ne.matches(&none));
    }

    #[test]
    fn set_requirements() {
        let web = labels(&[("tier", "web")]);
        let db = labels(&[("tier", "db")]);
        let none = labels(&[]);
        let in_sel = sel("tier in (web, api)");
        assert!(in_sel.matches(&web));
        assert!(!in_sel.matches(&db));
        assert!(!in_sel.matches(&none));
        let notin = sel("tier notin (web,api)");
        assert!(!notin.matches(&web));
        assert!(notin.matches(&db));
        assert!(notin.matches(&none));
    }

    #[test]
    fn existence_requirements() {
        let canary = labels(&[("canary", "")]);
        let none = labels(&[]);
        assert!(sel("canary").matches(&canary));
        assert!(!sel("canary").matches(&none));
        assert!(!sel("!canary").matches(&canary));
        assert!(sel("! canary").matches(&none));
    }

    #[test]
    fn numeric_comparisons() {
        let gen5 = labels(&[("gen", "5")]);
        assert!(sel("gen>3").matches(&gen5));
        assert!(!sel("gen>5").matches(&gen5));
        assert!(sel("gen<9").matches(&gen5));
        assert!(!sel("gen<3").matches(&gen5));
        assert!(!sel("gen>3").matches(&labels(&[("gen", "x")])));
        assert!(!sel("gen>3").matches(&labels(&[])));
        assert!(matches!(
            LabelSelector::parse("gen>x"),
            Err(SelectorError::InvalidRequirement { .. })
        ));
    }

    #[test]
    fn requirements_are_anded() {
        let s = sel("app=ngx-dep,tier in (web),!canary");
        assert!(s.matches(&labels(&[("app", "ngx-dep"), ("tier", "web")])));
        assert!(!s.matches(&labels(&[("app", "ngx-dep"), ("tier", "db")])));
        assert!(!s.matches(&labels(&[
            ("app", "ngx-dep"),
            ("tier", "web"),
            ("canary", "1")
        ])));
    }

    #[test]
    fn empty_selector_matches_everything() {
        for s in ["", "   "] {
            let s = sel(s);
            assert!(s.is_empty());
            assert!(s.matches(&labels(&[])));
            assert!(s.matches(&labels(&[("a", "b")])));
            assert_eq!(s.to_string(), "");
        }
    }

    #[test]
    fn empty_values_are_allowed() {
        let s = sel("app=");
        assert!(s.matches(&labels(&[("app", "")])));
        assert!(!s.matches(&labels(&[("app", "x")])));
        assert_eq!(s.to_string(), "app=");
        assert!(sel("app in (x,)").matches(&labels(&[("app", "")])));
    }

    #[test]
    fn display_gives_the_canonical_form() {
        assert_eq!(sel("app=ngx-dep").to_string(), "app=ngx-dep");
        // Sorted by key, values sorted and deduplicated, spacing normalised.
        assert_eq!(
            sel("tier  notin (web , api,web), app==x, !canary, env, gen>1").to_string(),
            "app==x,!canary,env,gen>1,tier notin (api,web)"
        );
        // The canonical form parses back to the same selector.
        let s = sel("z in (b,a),a!=b");
        assert_eq!(sel(&s.to_string()), s);
        assert_eq!("app=x".parse::<LabelSelector>().unwrap(), sel("app=x"));
    }

    #[test]
    fn syntax_errors_name_the_offending_part() {
        let cases = [
            ("app=x,", "the end of the selector"),
            ("tier in (a", "missing ')' after the values of \"tier\""),
            (
                "tier in a",
                "expected '(' to open the values of \"tier\", found \"a\"",
            ),
            ("app=x y", "found \"y\""),
            ("=x", "expected a label key or '!', found '='"),
            ("!", "expected a label key after '!'"),
            ("app=(", "expected a value for \"app\", found '('"),
            (
                "app x",
                "expected an operator (=, ==, !=, in, notin, >, <) after \"app\", found \"x\"",
            ),
            (
                "a in (b c)",
                "expected ',' or ')' in the values of \"a\", found \"c\"",
            ),
        ];
        for (input, needle) in cases {
            let err = LabelSelector::parse(input).unwrap_err();
            assert!(
                matches!(err, SelectorError::Syntax { .. }),
                "{input}: {err:?}"
            );
            let msg = err.to_string();
            assert!(msg.contains(needle), "{input}: {msg}");
            assert!(msg.contains(&format!("{input:?}")), "{input}: {msg}");
        }
    }

    #[test]
    fn keys_and_values_are_validated() {
        let err = LabelSelector::parse("bad_key_-=x").unwrap_err();
        assert!(
            matches!(&err, SelectorError::InvalidKey { key, .. } if key == "bad_key_-"),
            "{err:?}"
        );
        assert!(err
            .to_string()
            .contains("name part must consist of alphanumeric characters"));
        let err = LabelSelector::parse("app=-x").unwrap_err();
        assert!(
            matches!(&err, SelectorError::InvalidValue { key, value, .. } if key == "app" && value == "-x"),
            "{err:?}"
        );
        let err = LabelSelector::parse("a in ()").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid requirement on label \"a\": for 'in', 'notin' operators, values set can't be empty"
        );
        // Prefixed keys are fine.
        let s = sel("kubernetes.io/service-name=ngx-svc");
        assert!(s.matches(&labels(&[("kubernetes.io/service-name", "ngx-svc")])));
        assert_eq!(s.exact_value("kubernetes.io/service-name"), Some("ngx-svc"));
        assert_eq!(s.exact_value("app"), None);
    }

    #[test]
    fn matches_value_reads_metadata_labels() {
        let pod = json!({"metadata": {"name": "p", "labels": {"app": "ngx-dep", "n": 1}}});
        assert!(sel("app=ngx-dep").matches_value(&pod));
        assert!(!sel("app=other").matches_value(&pod));
        // Non-string label values count as absent.
        assert!(!sel("n").matches_value(&pod));
        let unlabelled = json!({"metadata": {"name": "p"}});
        assert!(!sel("app").matches_value(&unlabelled));
        assert!(sel("!app").matches_value(&unlabelled));
        assert!(sel("").matches_value(&json!({})));
    }

    #[test]
    fn from_k8s_understands_match_labels_and_expressions() {
        let k8s: meta::LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "ngx-dep"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["web", "api"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "env", "operator": "Exists"},
                {"key": "zone", "operator": "NotIn", "values": ["b"]},
            ]
        }))
        .unwrap();
        let s = LabelSelector::from_k8s(&k8s).unwrap();
        assert_eq!(
            s.to_string(),
            "app=ngx-dep,!canary,env,tier in (api,web),zone notin (b)"
        );
        assert!(s.matches(&labels(&[
            ("app", "ngx-dep"),
            ("tier", "web"),
            ("env", "prod")
        ])));
        assert!(!s.matches(&labels(&[("app", "ngx-dep"), ("tier", "web")])));

        let empty = LabelSelector::from_k8s(&meta::LabelSelector::default()).unwrap();
        assert!(empty.is_empty());

        let bad_op: meta::LabelSelector = serde_json::from_value(json!({
            "matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]
        }))
        .unwrap();
        assert_eq!(
            LabelSelector::from_k8s(&bad_op).unwrap_err().to_string(),
            "invalid requirement on label \"a\": \"Equals\" is not a valid label selector operator"
        );
        let exists_with_values: meta::LabelSelector = serde_json::from_value(json!({
            "matchExpressions": [{"key": "a", "operator": "Exists", "values": ["b"]}]
        }))
        .unwrap();
        assert!(LabelSelector::from_k8s(&exists_with_values).is_err());
    }

    #[test]
    fn service_selector_map() {
        let s = selector_from_map(&labels(&[("tier", "web"), ("app", "ngx-dep")]));
        assert_eq!(s.to_string(), "app=ngx-dep,tier=web");
        assert!(s.matches(&labels(&[("app", "ngx-dep"), ("tier", "web"), ("x", "y")])));
        assert!(!s.matches(&labels(&[("app", "ngx-dep")])));
        assert!(selector_from_map(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn field_selectors_parse_and_print() {
        let f = FieldSelector::parse("spec.nodeName=node1,status.phase!=Running,metadata.name==x")
            .unwrap();
        assert_eq!(
            f.fields().collect::<Vec<_>>(),
            ["spec.nodeName", "status.phase", "metadata.name"]
        );
        assert_eq!(f.exact_value("spec.nodeName"), Some("node1"));
        assert_eq!(f.exact_value("metadata.name"), Some("x"));
        assert_eq!(f.exact_value("status.phase"), None);
        assert_eq!(
            f.to_string(),
            "spec.nodeName=node1,status.phase!=Running,metadata.name=x"
        );
        assert!(FieldSelector::parse("").unwrap().is_empty());
        assert!(FieldSelector::parse(" , ").unwrap().is_empty());
        assert_eq!(
            FieldSelector::parse(" status.phase = Running ")
                .unwrap()
                .to_string(),
            "status.phase=Running"
        );
        // An empty value is a value.
        assert_eq!(
            FieldSelector::parse("spec.nodeName=")
                .unwrap()
                .exact_value("spec.nodeName"),
            Some("")
        );
    }

    #[test]
    fn field_selector_escapes() {
        let f = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,type=x").unwrap();
        assert_eq!(f.exact_value("metadata.name"), Some(r"a,b=c\d"));
        assert_eq!(f.exact_value("type"), Some("x"));
        assert_eq!(f.to_string(), r"metadata.name=a\,b\=c\\d,type=x");
        assert_eq!(FieldSelector::parse(&f.to_string()).unwrap(), f);
    }

    #[test]
    fn field_selector_errors() {
        let err = FieldSelector::parse("spec.nodeName").unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid field selector \"spec.nodeName\": can't understand \"spec.nodeName\": expected field=value, field==value or field!=value"
        );
        assert!(FieldSelector::parse("=x")
            .unwrap_err()
            .to_string()
            .contains("names no field"));
        assert!(FieldSelector::parse(r"a=b\x")
            .unwrap_err()
            .to_string()
            .contains(r"invalid escape sequence \x"));
        assert!(FieldSelector::parse("a=b=c")
            .unwrap_err()
            .to_string()
            .contains("unescaped '='"));
    }

    #[test]
    fn field_selectors_match_json_objects() {
        let pod = json!({
            "kind": "Pod",
            "metadata": {"name": "ngx-1", "namespace": "default"},
            "spec": {"nodeName": "node1", "hostNetwork": true},
            "status": {"phase": "Running"}
        });
        let m = |s: &str| FieldSelector::parse(s).unwrap().matches_value(&pod);
        assert!(m("metadata.name=ngx-1"));
        assert!(m("spec.nodeName=node1,status.phase=Running"));
        assert!(!m("spec.nodeName=node2"));
        assert!(m("spec.nodeName!=node2"));
        assert!(m("status.phase!=Pending"));
        assert!(m("spec.hostNetwork=true"));
        // Missing fields compare as the empty string: "unscheduled Pods".
        assert!(m("spec.schedulerName="));
        assert!(!m("spec.schedulerName=default-scheduler"));
        assert!(m(""));

        let unscheduled = json!({"metadata": {"name": "p"}, "spec": {}});
        assert!(FieldSelector::parse("spec.nodeName=")
            .unwrap()
            .matches_value(&unscheduled));
    }

    #[test]
    fn field_values_follow_kubernetes_special_cases() {
        let event = json!({
            "kind": "Event",
            "involvedObject": {"kind": "Pod", "name": "ngx-1"},
            "source": {"component": "kubelet", "host": "node1"},
            "reason": "Started",
            "count": 3
        });
        assert_eq!(field_value(&event, "involvedObject.name"), "ngx-1");
        assert_eq!(field_value(&event, "source"), "kubelet");
        assert_eq!(field_value(&event, "count"), "3");
        assert_eq!(field_value(&event, "involvedObject.uid"), "");
        let node = json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {}});
        assert_eq!(field_value(&node, "spec.unschedulable"), "false");
        let cordoned = json!({"kind": "Node", "spec": {"unschedulable": true}});
        assert_eq!(field_value(&cordoned, "spec.unschedulable"), "true");
        assert!(FieldSelector::parse("spec.unschedulable=false")
            .unwrap()
            .matches_value(&node));
    }
}
