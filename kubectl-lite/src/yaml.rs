//! YAML exactly as `kubectl get -o yaml` writes it.
//!
//! kubectl turns an object into JSON, then JSON into YAML with go-yaml v2
//! (through `sigs.k8s.io/yaml`). The result has a recognisable house style
//! that students copy into their own manifests: keys sorted, two-space
//! indent, list items (`- name: x`) at the same indentation as their key,
//! multi-line strings as `|` blocks, and quotes only where a plain scalar
//! would read back as something else (`"80"`, `"true"`, `""`, a timestamp).
//!
//! serde-saphyr (used to *read* YAML in this crate) writes valid YAML too,
//! but with YAML 1.1's looser number rules it quotes dotted values such as
//! `clusterIP: "10.96.0.1"`, which kubectl prints bare. Since the
//! lesson is about exactly those IPs, this module follows go-yaml's rules
//! instead: [`resolves_to_non_string`] says when go-yaml must quote, and
//! [`Analysis`] says which quoting style its emitter can use.

use serde_json::Value;

/// go-yaml's `best_width`: plain and quoted scalars are folded onto the next
/// line at the first space past this column.
const BEST_WIDTH: usize = 80;

/// Renders a JSON value as a YAML document (ending with a newline).
pub fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_mapping(&mut out, value, 0),
        Value::Array(items) if !items.is_empty() => write_sequence(&mut out, items, 0),
        scalar => {
            write_inline(&mut out, scalar, 0, 0);
            out.push('\n');
        }
    }
    out
}

/// Writes the entries of a non-empty mapping, each line at `indent`.
fn write_mapping(out: &mut String, value: &Value, indent: usize) {
    let Value::Object(map) = value else {
        unreachable!("write_mapping is only called on objects")
    };
    let mut keys: Vec<&String> = map.keys().collect();
    keys.sort_by(|a, b| go_yaml_key_order(a, b));
    for key in keys {
        let child = &map[key.as_str()];
        push_indent(out, indent);
        write_key(out, key);
        out.push(':');
        match child {
            Value::Object(m) if !m.is_empty() => {
                out.push('\n');
                write_mapping(out, child, indent + 2);
            }
            Value::Array(items) if !items.is_empty() => {
                // go-yaml's "indentless" sequence: `- ` at the key's column.
                out.push('\n');
                write_sequence(out, items, indent);
            }
            scalar => {
                out.push(' ');
                let column = indent + key.chars().count() + 2;
                write_inline(out, scalar, indent + 2, column);
                out.push('\n');
            }
        }
    }
}

/// Writes the items of a non-empty sequence, dashes at `indent`.
fn write_sequence(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        push_indent(out, indent);
        out.push_str("- ");
        match item {
            Value::Object(m) if !m.is_empty() => {
                // The first entry shares the dash's line: write the mapping
                // at indent+2 and drop that first indentation.
                let mut nested = String::new();
                write_mapping(&mut nested, item, indent + 2);
                out.push_str(&nested[indent + 2..]);
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested = String::new();
                write_sequence(&mut nested, inner, indent + 2);
                out.push_str(&nested[indent + 2..]);
            }
            scalar => {
                write_inline(out, scalar, indent + 2, indent + 2);
                out.push('\n');
            }
        }
    }
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A mapping key: the same choice as for values, except that a key cannot
/// be a `|` block (go-yaml double-quotes multi-line keys).
fn write_key(out: &mut String, key: &str) {
    let analysis = Analysis::of(key);
    let style = if analysis.multiline || resolves_to_non_string(key) || is_base60_float(key) {
        Style::Double
    } else if analysis.block_plain {
        Style::Plain
    } else if analysis.single_quoted {
        Style::Single
    } else {
        Style::Double
    };
    write_scalar_text(out, key, style, 0, 0, false);
}

/// Writes a scalar or an empty collection after `key: ` or `- `.
/// `indent` is where folded continuation lines start, `column` where the
/// value starts on the current line.
fn write_inline(out: &mut String, value: &Value, indent: usize, column: usize) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::String(s) => write_string(out, s, indent, column),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// JSON numbers as go-yaml prints the Go values `json.Unmarshal` made of
/// them: integers as integers, other numbers with Go's shortest `%g`
/// (scientific notation when the exponent is below -4 or at least 6).
fn format_number(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or_default();
    let scientific = format!("{f:e}");
    let (mantissa, exponent) = scientific
        .split_once('e')
        .unwrap_or((scientific.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{f}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// Picks go-yaml's style for a string value and writes it.
fn write_string(out: &mut String, s: &str, indent: usize, column: usize) {
    let analysis = Analysis::of(s);
    // go-yaml's encoder: strings with a newline ask for a literal block;
    // strings that would read back as another type ask for double quotes;
    // everything else asks for plain. The emitter then downgrades a style
    // its analysis forbids: plain -> single -> double, literal -> double.
    let requested = if s.contains('\n') {
        Style::Literal
    } else if resolves_to_non_string(s) || is_base60_float(s) {
        Style::Double
    } else {
        Style::Plain
    };
    let style = match requested {
        Style::Plain if !analysis.block_plain => {
            if analysis.single_quoted {
                Style::Single
            } else {
                Style::Double
            }
        }
        Style::Literal if !analysis.block => Style::Double,
        other => other,
    };
    if style == Style::Literal {
        write_literal(out, s, indent);
    } else {
        write_scalar_text(out, s, style, indent, column, true);
    }
}

/// Writes a plain, single- or double-quoted scalar, folding long lines at
/// spaces past [`BEST_WIDTH`] the way go-yaml does.
fn write_scalar_text(
    out: &mut String,
    s: &str,
    style: Style,
    indent: usize,
    mut column: usize,
    allow_breaks: bool,
) {
    let chars: Vec<char> = s.chars().collect();
    let fold = |out: &mut String, column: &mut usize| {
        out.push('\n');
        push_indent(out, indent);
        *column = indent;
    };
    match style {
        Style::Plain => {
            let mut spaces = false;
            for (i, &c) in chars.iter().enumerate() {
                if c == ' ' {
                    let next_is_space = chars.get(i + 1) == Some(&' ');
                    if allow_breaks && !spaces && column > BEST_WIDTH && !next_is_space {
                        fold(out, &mut column);
                    } else {
                        out.push(c);
                        column += 1;
                    }
                    spaces = true;
                } else {
                    out.push(c);
                    column += 1;
                    spaces = false;
                }
            }
        }
        Style::Single => {
            out.push('\'');
            column += 1;
            let mut spaces = false;
            for (i, &c) in chars.iter().enumerate() {
                if c == ' ' {
                    let next_is_space = chars.get(i + 1) == Some(&' ');
                    if allow_breaks
                        && !spaces
                        && column > BEST_WIDTH
                        && i != 0
                        && i != chars.len() - 1
                        && !next_is_space
                    {
                        fold(out, &mut column);
                    } else {
                        out.push(c);
                        column += 1;
                    }
                    spaces = true;
                } else {
                    if c == '\'' {
                        out.push('\'');
                        column += 1;
                    }
                    out.push(c);
                    column += 1;
                    spaces = false;
                }
            }
            out.push('\'');
        }
        Style::Double | Style::Literal => {
            out.push('"');
            column += 1;
            let mut spaces = false;
            for (i, &c) in chars.iter().enumerate() {
                if !is_printable(c) || is_break(c) || c == '"' || c == '\\' || c == '\u{feff}' {
                    let escaped = escape_double(c);
                    column += escaped.len();
                    out.push_str(&escaped);
                    spaces = false;
                } else if c == ' ' {
                    if allow_breaks
                        && !spaces
                        && column > BEST_WIDTH
                        && i != 0
                        && i != chars.len() - 1
                    {
                        fold(out, &mut column);
                        if chars.get(i + 1) == Some(&' ') {
                            out.push('\\');
                            column += 1;
                        }
                    } else {
                        out.push(c);
                        column += 1;
                    }
                    spaces = true;
                } else {
                    out.push(c);
                    column += 1;
                    spaces = false;
                }
            }
            out.push('"');
        }
    }
}

fn escape_double(c: char) -> String {
    match c {
        '\0' => "\\0".into(),
        '\u{7}' => "\\a".into(),
        '\u{8}' => "\\b".into(),
        '\t' => "\\t".into(),
        '\n' => "\\n".into(),
        '\u{b}' => "\\v".into(),
        '\u{c}' => "\\f".into(),
        '\r' => "\\r".into(),
        '\u{1b}' => "\\e".into(),
        '"' => "\\\"".into(),
        '\\' => "\\\\".into(),
        '\u{85}' => "\\N".into(),
        '\u{a0}' => "\\_".into(),
        '\u{2028}' => "\\L".into(),
        '\u{2029}' => "\\P".into(),
        c if (c as u32) <= 0xff => format!("\\x{:02X}", c as u32),
        c if (c as u32) <= 0xffff => format!("\\u{:04X}", c as u32),
        c => format!("\\U{:08X}", c as u32),
    }
}

/// A `|` block: the chomping indicator says how the string ends (`|-` no
/// final newline, `|` one, `|+` several); an indentation indicator is
/// needed when the text starts with a space.
fn write_literal(out: &mut String, s: &str, indent: usize) {
    out.push('|');
    if s.starts_with(' ') || s.starts_with('\n') {
        out.push('2');
    }
    if !s.ends_with('\n') {
        out.push('-');
    } else if s.len() == 1 || s[..s.len() - 1].ends_with('\n') {
        out.push('+');
    }
    let body = s.strip_suffix('\n').unwrap_or(s);
    for line in body.split('\n') {
        out.push('\n');
        if !line.is_empty() {
            push_indent(out, indent);
            out.push_str(line);
        }
    }
}

/// True when go-yaml's resolver reads the plain text as something other
/// than a string (null, bool, int, float, timestamp, merge key), so the
/// encoder must quote it to keep it a string.
pub fn resolves_to_non_string(s: &str) -> bool {
    const SPECIAL: &[&str] = &[
        "", "~", "null", "Null", "NULL", "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO",
        "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF",
        ".nan", ".NaN", ".NAN", ".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF", "-.inf",
        "-.Inf", "-.INF", "<<",
    ];
    if SPECIAL.contains(&s) {
        return true;
    }
    let first = s.as_bytes()[0];
    match first {
        b'.' => go_parse_float(s),
        b'+' | b'-' | b'0'..=b'9' => {
            if first.is_ascii_digit() && is_timestamp(s) {
                return true;
            }
            let plain = s.replace('_', "");
            go_parse_int(&plain)
                || (is_yaml_style_float(&plain) && go_parse_float(&plain))
                || is_binary_int(&plain)
        }
        _ => false,
    }
}

/// `strconv.ParseInt(s, 0, 64)` (or ParseUint) succeeds: decimal, `0x`
/// hex, `0o`/leading-zero octal, `0b` binary, with an optional sign.
fn go_parse_int(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned.is_empty() {
        return false;
    }
    let (digits, radix) = if let Some(rest) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    {
        (rest, 16)
    } else if let Some(rest) = unsigned
        .strip_prefix("0b")
        .or_else(|| unsigned.strip_prefix("0B"))
    {
        (rest, 2)
    } else if let Some(rest) = unsigned
        .strip_prefix("0o")
        .or_else(|| unsigned.strip_prefix("0O"))
    {
        (rest, 8)
    } else if unsigned.len() > 1 && unsigned.starts_with('0') {
        (&unsigned[1..], 8)
    } else {
        (unsigned, 10)
    };
    !digits.is_empty() && u64::from_str_radix(digits, radix).is_ok()
}

fn is_binary_int(s: &str) -> bool {
    let digits = s
        .strip_prefix("0b")
        .or_else(|| s.strip_prefix("-0b"))
        .unwrap_or("");
    !digits.is_empty() && digits.bytes().all(|b| b == b'0' || b == b'1')
}

/// `strconv.ParseFloat` on the decimal forms YAML cares about.
fn go_parse_float(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let body = lower.strip_prefix(['+', '-']).unwrap_or(&lower);
    if matches!(body, "inf" | "infinity" | "nan") {
        return true;
    }
    body.bytes().any(|b| b.is_ascii_digit())
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'+' | b'-'))
        && s.parse::<f64>().is_ok()
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn is_yaml_style_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = match mantissa.split_once('.') {
        Some(("", frac)) => digits(frac),
        Some((whole, frac)) => digits(whole) && (frac.is_empty() || digits(frac)),
        None => digits(mantissa),
    };
    let exponent_ok = match exponent {
        None => true,
        Some(e) => digits(e.strip_prefix(['+', '-']).unwrap_or(e)),
    };
    mantissa_ok && exponent_ok
}

/// go-yaml's `^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$`:
/// sexagesimal numbers such as `1:30`, always quoted.
fn is_base60_float(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (main, fraction) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    let mut parts = main.split(':');
    let head = parts.next().unwrap_or("");
    let head_ok = head.as_bytes().first().is_some_and(u8::is_ascii_digit)
        && head.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let mut sixties = 0;
    for part in parts {
        let ok = match part.as_bytes() {
            [d] => d.is_ascii_digit(),
            [t, d] => (b'0'..=b'5').contains(t) && d.is_ascii_digit(),
            _ => false,
        };
        if !ok {
            return false;
        }
        sixties += 1;
    }
    head_ok
        && sixties > 0
        && fraction.is_none_or(|f| f.bytes().all(|b| b.is_ascii_digit() || b == b'_'))
}

/// The timestamp layouts go-yaml recognises: `2006-1-2`,
/// `2006-1-2T15:4:5.999999999Z07:00` (also with `t`), `2006-1-2 15:4:5.999999999`.
fn is_timestamp(s: &str) -> bool {
    fn number(s: &mut &str, min: usize, max: usize) -> bool {
        let n = s.bytes().take_while(u8::is_ascii_digit).count();
        if n < min || n > max {
            return false;
        }
        *s = &s[n..];
        true
    }
    fn sep(s: &mut &str, c: char) -> bool {
        match s.strip_prefix(c) {
            Some(rest) => {
                *s = rest;
                true
            }
            None => false,
        }
    }
    let mut rest = s;
    if !(number(&mut rest, 4, 4)
        && sep(&mut rest, '-')
        && number(&mut rest, 1, 2)
        && sep(&mut rest, '-')
        && number(&mut rest, 1, 2))
    {
        return false;
    }
    if rest.is_empty() {
        return true;
    }
    let zoned = rest.starts_with(['T', 't']);
    if !(zoned || rest.starts_with(' ')) {
        return false;
    }
    rest = &rest[1..];
    if !(number(&mut rest, 1, 2)
        && sep(&mut rest, ':')
        && number(&mut rest, 1, 2)
        && sep(&mut rest, ':')
        && number(&mut rest, 1, 2))
    {
        return false;
    }
    if sep(&mut rest, '.') && !number(&mut rest, 1, 9) {
        return false;
    }
    if !zoned {
        return rest.is_empty();
    }
    if rest == "Z" {
        return true;
    }
    (sep(&mut rest, '+') || sep(&mut rest, '-'))
        && number(&mut rest, 2, 2)
        && sep(&mut rest, ':')
        && number(&mut rest, 2, 2)
        && rest.is_empty()
}

fn is_printable(c: char) -> bool {
    matches!(c, '\n' | ' '..='~')
        || (c >= '\u{a0}' && !matches!(c, '\u{feff}' | '\u{fffe}' | '\u{ffff}'))
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// What go-yaml's emitter allows for a scalar (`yaml_emitter_analyze_scalar`).
#[derive(Debug, Clone, Copy)]
struct Analysis {
    multiline: bool,
    block_plain: bool,
    single_quoted: bool,
    block: bool,
}

impl Analysis {
    fn of(s: &str) -> Self {
        if s.is_empty() {
            return Analysis {
                multiline: false,
                block_plain: true,
                single_quoted: true,
                block: false,
            };
        }
        let chars: Vec<char> = s.chars().collect();
        let mut block_indicators = s.starts_with("---") || s.starts_with("...");
        let (mut leading_space, mut leading_break) = (false, false);
        let (mut trailing_space, mut trailing_break) = (false, false);
        let (mut break_space, mut space_break) = (false, false);
        let (mut previous_space, mut previous_break) = (false, false);
        let mut line_breaks = false;
        let mut special = false;
        let mut preceded_by_whitespace = true;
        let blankz = |c: Option<&char>| c.is_none_or(|c| *c == ' ' || *c == '\t' || is_break(*c));
        for (i, &c) in chars.iter().enumerate() {
            let followed_by_whitespace = blankz(chars.get(i + 1));
            if i == 0 {
                match c {
                    '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\''
                    | '"' | '%' | '@' | '`' => block_indicators = true,
                    '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                    _ => {}
                }
            } else {
                match c {
                    ':' if followed_by_whitespace => block_indicators = true,
                    '#' if preceded_by_whitespace => block_indicators = true,
                    _ => {}
                }
            }
            if !is_printable(c) {
                special = true;
            }
            let last = i + 1 == chars.len();
            if c == ' ' {
                leading_space |= i == 0;
                trailing_space |= last;
                break_space |= previous_break;
                previous_space = true;
                previous_break = false;
            } else if is_break(c) {
                line_breaks = true;
                leading_break |= i == 0;
                trailing_break |= last;
                space_break |= previous_space;
                previous_space = false;
                previous_break = true;
            } else {
                previous_space = false;
                previous_break = false;
            }
            preceded_by_whitespace = blankz(Some(&c));
        }
        let mut a = Analysis {
            multiline: line_breaks,
            block_plain: true,
            single_quoted: true,
            block: true,
        };
        if leading_space || leading_break || trailing_space || trailing_break {
            a.block_plain = false;
        }
        if trailing_space {
            a.block = false;
        }
        if break_space {
            a.block_plain = false;
            a.single_quoted = false;
        }
        if space_break || special {
            a.block_plain = false;
            a.single_quoted = false;
            a.block = false;
        }
        if line_breaks || block_indicators {
            a.block_plain = false;
        }
        a
    }
}

/// go-yaml v2's key order: letters sort after other characters and runs of
/// digits compare as numbers (`a2` before `a10`).
fn go_yaml_key_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let ar: Vec<char> = a.chars().collect();
    let br: Vec<char> = b.chars().collect();
    let mut i = 0;
    while i < ar.len() && i < br.len() {
        if ar[i] == br[i] {
            i += 1;
            continue;
        }
        let al = ar[i].is_alphabetic();
        let bl = br[i].is_alphabetic();
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return if bl {
                Ordering::Less
            } else {
                Ordering::Greater
            };
        }
        // Both non-letters: compare digit runs as numbers.
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && ar[j - 1].is_ascii_digit() {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && ar[ai].is_ascii_digit() {
            an = an
                .saturating_mul(10)
                .saturating_add(ar[ai] as i64 - '0' as i64);
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && br[bi].is_ascii_digit() {
            bn = bn
                .saturating_mul(10)
                .saturating_add(br[bi] as i64 - '0' as i64);
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_matches_kubectl_create_dry_run() {
        // `kubectl create deployment ngx-dep --image=nginx:alpine
        // --replicas=2 --port=80 --dry-run=client -o yaml`, kubectl 1.35.2.
        let deploy = json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "ngx-dep", "labels": {"app": "ngx-dep"}},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "ngx-dep"}},
                "template": {"metadata": {"labels": {"app": "ngx-dep"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:alpine",
                        "ports": [{"containerPort": 80}], "resources": {}}]}},
                "strategy": {}},
            "status": {}
        });
        assert_eq!(
            to_yaml(&deploy),
            "apiVersion: apps/v1
kind: Deployment
metadata:
  labels:
    app: ngx-dep
  name: ngx-dep
spec:
  replicas: 2
  selector:
    matchLabels:
      app: ngx-dep
  strategy: {}
  template:
    metadata:
      labels:
        app: ngx-dep
    spec:
      containers:
      - image: nginx:alpine
        name: nginx
        ports:
        - containerPort: 80
        resources: {}
status: {}
"
        );
    }

    #[test]
    fn strings_are_quoted_only_when_they_would_change_type() {
        let value = json!({
            "ip": "10.96.0.1", "port": "80", "bool": "true", "yes": "yes", "empty": "",
            "ts": "2024-05-01T10:00:00Z", "date": "2024-05-01", "octal": "0755",
            "float": "1.5", "name": "80-8080", "sexagesimal": "1:20", "null": null,
            "image": "nginx:alpine", "colon": "a: b", "star": "*", "dash": "-",
            "comment": "a #b", "tab": "a\tb", "lead": " x"
        });
        assert_eq!(
            to_yaml(&value),
            r#"bool: "true"
colon: 'a: b'
comment: 'a #b'
dash: '-'
date: "2024-05-01"
empty: ""
float: "1.5"
image: nginx:alpine
ip: 10.96.0.1
lead: ' x'
name: 80-8080
"null": null
octal: "0755"
port: "80"
sexagesimal: "1:20"
star: '*'
tab: "a\tb"
ts: "2024-05-01T10:00:00Z"
"yes": "yes"
"#
        );
    }

    #[test]
    fn multi_line_strings_are_literal_blocks() {
        let value = json!({"data": {
            "default.conf": "server {\n  listen 80;\n\n}\n",
            "no-newline": "a\nb",
            "trailing-space": "a \nb\n",
            "annotation": "{\"a\":1}\n"
        }});
        assert_eq!(
            to_yaml(&value),
            "data:\n  annotation: |\n    {\"a\":1}\n  default.conf: |\n    server {\n      listen 80;\n\n    }\n  no-newline: |-\n    a\n    b\n  trailing-space: \"a \\nb\\n\"\n"
        );
    }

    #[test]
    fn nested_sequences_and_empty_collections() {
        let value = json!({"a": [[1, 2], [], {}], "b": [], "c": {}, "d": [{"x": [1]}]});
        assert_eq!(
            to_yaml(&value),
            "a:\n- - 1\n  - 2\n- []\n- {}\nb: []\nc: {}\nd:\n- x:\n  - 1\n"
        );
    }

    #[test]
    fn long_plain_strings_fold_past_column_80() {
        let words = "word ".repeat(20);
        let value = json!({"description": words.trim_end()});
        let yaml = to_yaml(&value);
        let lines: Vec<&str> = yaml.lines().collect();
        assert_eq!(lines.len(), 2, "{yaml}");
        assert!(lines[0].len() > 80 && lines[0].len() <= 85, "{yaml}");
        assert!(lines[1].starts_with("  word"), "{yaml}");
    }

    #[test]
    fn keys_sort_like_go_yaml() {
        let mut keys = vec![
            "a10",
            "a2",
            "b",
            "B",
            "a_b",
            "ab",
            "clusterIPs",
            "clusterIP",
        ];
        keys.sort_by(|a, b| go_yaml_key_order(a, b));
        assert_eq!(
            keys,
            // Non-letters sort before letters; '_' is not a digit, so it
            // counts as the number 0 against "2".
            vec![
                "B",
                "a_b",
                "a2",
                "a10",
                "ab",
                "b",
                "clusterIP",
                "clusterIPs"
            ]
        );
    }

    #[test]
    fn numbers_print_like_go() {
        let value = json!({"i": 80, "f": 1.5, "big": 1e21, "small": 0.00001, "m": 1234567.5});
        assert_eq!(
            to_yaml(&value),
            "big: 1e+21\nf: 1.5\ni: 80\nm: 1.2345675e+06\nsmall: 1e-05\n"
        );
    }
}
