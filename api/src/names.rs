//! Object names, label syntax and `generateName`.
//!
//! Kubernetes names end up in DNS records, URLs, file paths and label
//! selectors, so the API server only accepts a few shapes of string:
//!
//! - a **DNS-1123 subdomain** (`ngx-dep.v1`, up to 253 characters): most
//!   object names (Deployments, ConfigMaps, Pods);
//! - a **DNS-1123 label** (`ngx-dep`, up to 63 characters, no dots):
//!   Namespaces and other names that become a single DNS label;
//! - a **DNS-1035 label** (like a DNS-1123 label, but starting with a
//!   letter): Service names, because `<service>.<namespace>.svc` must be a
//!   valid host name;
//! - a **qualified name** (`app`, `kubernetes.io/service-name`): label and
//!   annotation keys, with an optional DNS-subdomain prefix;
//! - a **label value** (empty, or up to 63 alphanumerics, `-`, `_`, `.`);
//! - an **IANA service name** (`http`, `metrics`): named ports, which a
//!   Service's `targetPort` may refer to instead of a number.
//!
//! Each validator returns the list of problems, worded exactly as
//! apimachinery's `util/validation` package words them, so that kube-lite's
//! `Invalid` errors read like a real cluster's. An empty list means valid.
//!
//! `generateName` is how a ReplicaSet names its Pods: the client sends a
//! prefix (`ngx-dep-6d4f8b9c7-`) and the API server appends five random
//! characters (`ngx-dep-6d4f8b9c7-x2kqz`).

use rand::Rng;

/// Longest DNS-1123 label, and longest name part of a qualified name.
pub const DNS1123_LABEL_MAX_LENGTH: usize = 63;
/// Longest DNS-1123 subdomain (a whole DNS name).
pub const DNS1123_SUBDOMAIN_MAX_LENGTH: usize = 253;
/// Longest DNS-1035 label.
pub const DNS1035_LABEL_MAX_LENGTH: usize = 63;
/// Longest label value.
pub const LABEL_VALUE_MAX_LENGTH: usize = 63;
/// Longest port name (IANA service names are at most 15 characters).
pub const PORT_NAME_MAX_LENGTH: usize = 15;

/// How many random characters `generateName` appends.
pub const GENERATED_SUFFIX_LENGTH: usize = 5;
/// A generated name stays a valid DNS label: prefixes are cut to this length.
pub const MAX_GENERATED_NAME_LENGTH: usize = DNS1123_LABEL_MAX_LENGTH - GENERATED_SUFFIX_LENGTH;

/// The characters of generated suffixes. Vowels are left out so that random
/// suffixes never spell words, and so are `0`, `1` and `3`, which read like
/// `o`, `l` and `e`.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

const DNS1123_LABEL_FMT: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?";
const DNS1123_LABEL_ERR: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character";
const DNS1123_SUBDOMAIN_FMT: &str =
    "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const DNS1123_SUBDOMAIN_ERR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character";
const DNS1035_LABEL_FMT: &str = "[a-z]([-a-z0-9]*[a-z0-9])?";
const DNS1035_LABEL_ERR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character";
const QUALIFIED_NAME_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const QUALIFIED_NAME_ERR: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";
const LABEL_VALUE_FMT: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const LABEL_VALUE_ERR: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

/// Returns `prefix` followed by five random characters, as the API server
/// does for an object that has `metadata.generateName` but no name.
///
/// The prefix is cut to [`MAX_GENERATED_NAME_LENGTH`] so the result is at
/// most 63 characters long.
pub fn generate_name(prefix: &str) -> String {
    let mut cut = prefix.len().min(MAX_GENERATED_NAME_LENGTH);
    // Names are ASCII when valid; never split a multi-byte character of an
    // invalid one (validation will reject it afterwards anyway).
    while !prefix.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut rng = rand::rng();
    let mut name = String::with_capacity(cut + GENERATED_SUFFIX_LENGTH);
    name.push_str(&prefix[..cut]);
    for _ in 0..GENERATED_SUFFIX_LENGTH {
        let index = rng.random_range(0..SUFFIX_ALPHABET.len());
        name.push(SUFFIX_ALPHABET[index] as char);
    }
    name
}

/// Validates a DNS-1123 subdomain: lowercase alphanumeric labels joined by
/// dots, at most 253 characters (`ngx-dep`, `example.com`).
/// apimachinery's `IsValidPathSegmentName`: what RBAC object names must
/// be (they may hold colons: `system:node`, `kubeadm:kubelet-bootstrap`).
pub fn is_path_segment_name(value: &str) -> Vec<String> {
    if value == "." || value == ".." {
        return vec![format!("may not be '{value}'")];
    }
    ["/", "%"]
        .iter()
        .filter(|bad| value.contains(*bad))
        .map(|bad| format!("may not contain '{bad}'"))
        .collect()
}

pub fn is_dns1123_subdomain(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_SUBDOMAIN_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_SUBDOMAIN_MAX_LENGTH));
    }
    if !is_dns1123_subdomain_syntax(value) {
        errs.push(regex_error(
            DNS1123_SUBDOMAIN_ERR,
            DNS1123_SUBDOMAIN_FMT,
            &["example.com"],
        ));
    }
    errs
}

/// Validates a DNS-1123 label: lowercase alphanumerics and `-`, starting and
/// ending with an alphanumeric, at most 63 characters (`ngx-dep`, `123-abc`).
pub fn is_dns1123_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1123_LABEL_MAX_LENGTH));
    }
    if !is_dns1123_label_syntax(value) {
        if is_dns1123_subdomain_syntax(value) {
            // A valid subdomain that is not a valid label can only be
            // wrong because of its dots; say so rather than print a regex.
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                DNS1123_LABEL_ERR,
                DNS1123_LABEL_FMT,
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// Validates a DNS-1035 label: like a DNS-1123 label but it must start with
/// a letter (`ngx-svc`, not `1svc`). Service names follow this rule.
pub fn is_dns1035_label(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > DNS1035_LABEL_MAX_LENGTH {
        errs.push(max_len_error(DNS1035_LABEL_MAX_LENGTH));
    }
    let starts_with_letter = value.bytes().next().is_some_and(|c| c.is_ascii_lowercase());
    if !starts_with_letter || !is_dns1123_label_syntax(value) {
        errs.push(regex_error(
            DNS1035_LABEL_ERR,
            DNS1035_LABEL_FMT,
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// Validates a qualified name, the syntax of label and annotation keys:
/// `name` or `prefix/name`, where the prefix is a DNS-1123 subdomain and the
/// name is up to 63 alphanumerics, `-`, `_` or `.` starting and ending with
/// an alphanumeric (`app`, `kubernetes.io/service-name`).
pub fn is_qualified_name(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let name = match value.split_once('/') {
        None => value,
        Some((_, name)) if name.contains('/') => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(
                    QUALIFIED_NAME_ERR,
                    QUALIFIED_NAME_FMT,
                    &["MyName", "my.name", "123-abc"]
                )
            ));
            return errs;
        }
        Some((prefix, name)) => {
            if prefix.is_empty() {
                errs.push(format!("prefix part {}", empty_error()));
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|msg| format!("prefix part {msg}")),
                );
            }
            name
        }
    };
    if name.is_empty() {
        errs.push(format!("name part {}", empty_error()));
    } else if name.len() > DNS1123_LABEL_MAX_LENGTH {
        errs.push(format!(
            "name part {}",
            max_len_error(DNS1123_LABEL_MAX_LENGTH)
        ));
    }
    if !is_qualified_name_syntax(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                QUALIFIED_NAME_ERR,
                QUALIFIED_NAME_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

/// Validates a label value: empty, or up to 63 alphanumerics, `-`, `_` or
/// `.` starting and ending with an alphanumeric (`ngx-dep`, `v1.2`).
pub fn is_valid_label_value(value: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if value.len() > LABEL_VALUE_MAX_LENGTH {
        errs.push(max_len_error(LABEL_VALUE_MAX_LENGTH));
    }
    if !value.is_empty() && !is_qualified_name_syntax(value) {
        errs.push(regex_error(
            LABEL_VALUE_ERR,
            LABEL_VALUE_FMT,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// Validates a port name (an IANA service name, RFC 6335): at most 15
/// lowercase alphanumerics and `-`, with at least one letter, no `--`, and
/// no `-` at either end (`http`, `metrics-9090`). Kubernetes only allows
/// lowercase, although RFC 6335 is case-insensitive.
pub fn is_valid_port_name(port: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if port.len() > PORT_NAME_MAX_LENGTH {
        errs.push(max_len_error(PORT_NAME_MAX_LENGTH));
    }
    let charset_ok = !port.is_empty()
        && port
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-');
    if !charset_ok {
        errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)".into());
    }
    if !port.bytes().any(|c| c.is_ascii_lowercase()) {
        errs.push("must contain at least one letter (a-z)".into());
    }
    if port.contains("--") {
        errs.push("must not contain consecutive hyphens".into());
    }
    if port.starts_with('-') || port.ends_with('-') {
        errs.push("must not begin or end with a hyphen".into());
    }
    errs
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
fn is_dns1123_label_syntax(value: &str) -> bool {
    let bytes = value.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            alnum(first) && alnum(last) && bytes.iter().all(|c| alnum(c) || *c == b'-')
        }
        _ => false,
    }
}

/// DNS-1123 labels joined by single dots.
fn is_dns1123_subdomain_syntax(value: &str) -> bool {
    value.split('.').all(is_dns1123_label_syntax)
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a label key,
/// and a non-empty label value.
fn is_qualified_name_syntax(value: &str) -> bool {
    let bytes = value.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

fn max_len_error(length: usize) -> String {
    format!("must be no more than {length} characters")
}

fn empty_error() -> &'static str {
    "must be non-empty"
}

/// Words a syntax failure as apimachinery's `RegexError` does, examples and
/// regex included, so messages match a real API server's byte for byte
/// (including its double space before "or").
fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    let mut out = String::from(msg);
    out.push_str(" (e.g. ");
    for (i, example) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push('\'');
        out.push_str(example);
        out.push_str("', ");
    }
    out.push_str("regex used for validation is '");
    out.push_str(regex);
    out.push_str("')");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_names_keep_the_prefix_and_add_five_characters_from_the_alphabet() {
        let name = generate_name("ngx-dep-6d4f8b9c7-");
        assert_eq!(name.len(), "ngx-dep-6d4f8b9c7-".len() + 5);
        assert!(name.starts_with("ngx-dep-6d4f8b9c7-"));
        let suffix = &name[name.len() - 5..];
        assert!(
            suffix.bytes().all(|c| SUFFIX_ALPHABET.contains(&c)),
            "{suffix}"
        );
        assert!(is_dns1123_label(&name).is_empty());
    }

    #[test]
    fn generated_names_differ() {
        let names: std::collections::BTreeSet<String> =
            (0..50).map(|_| generate_name("p-")).collect();
        // 27^5 possible suffixes: 50 draws colliding down to a handful would
        // mean the randomness is broken.
        assert!(names.len() > 45, "{names:?}");
    }

    #[test]
    fn long_prefixes_are_cut_so_the_name_fits_a_dns_label() {
        let prefix = "a".repeat(100);
        let name = generate_name(&prefix);
        assert_eq!(name.len(), 63);
        assert!(name.starts_with(&"a".repeat(58)));
        // Cutting never splits a multi-byte character.
        let name = generate_name(&format!("{}é", "a".repeat(57)));
        assert!(name.starts_with(&"a".repeat(57)));
        assert_eq!(name.chars().count(), 62);
    }

    #[test]
    fn dns1123_subdomain_message_is_kubernetes_wording() {
        assert!(is_dns1123_subdomain("ngx-dep").is_empty());
        assert!(is_dns1123_subdomain("example.com").is_empty());
        assert!(is_dns1123_subdomain("0.a-b.c").is_empty());
        let expected = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
        for bad in [
            "Ngx", "ngx_dep", "-ngx", "ngx-", "a..b", ".a", "a.", "", "a.-b",
        ] {
            assert_eq!(
                is_dns1123_subdomain(bad),
                vec![expected.to_string()],
                "{bad:?}"
            );
        }
        let long = format!("{}.{}", "a".repeat(63), "b".repeat(200));
        assert_eq!(
            is_dns1123_subdomain(&long),
            vec!["must be no more than 253 characters".to_string()]
        );
        // Like upstream, only the total length is limited, not each label's.
        assert!(is_dns1123_subdomain(&"a".repeat(253)).is_empty());
        assert_eq!(is_dns1123_subdomain(&"a".repeat(254)).len(), 1);
    }

    #[test]
    fn dns1123_label_rejects_dots_with_a_short_message() {
        assert!(is_dns1123_label("ngx-dep").is_empty());
        assert!(is_dns1123_label("123-abc").is_empty());
        assert_eq!(is_dns1123_label("a.b"), vec!["must not contain dots"]);
        assert_eq!(
            is_dns1123_label("My_Name"),
            vec!["a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]
        );
        assert!(is_dns1123_label(&"a".repeat(63)).is_empty());
        assert_eq!(
            is_dns1123_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
        assert_eq!(is_dns1123_label("").len(), 1);
    }

    #[test]
    fn dns1035_label_must_start_with_a_letter() {
        assert!(is_dns1035_label("ngx-svc").is_empty());
        assert!(is_dns1035_label("a1").is_empty());
        let expected = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
        for bad in ["1svc", "svc-", "Svc", "s.vc", ""] {
            assert_eq!(is_dns1035_label(bad), vec![expected.to_string()], "{bad:?}");
        }
    }

    #[test]
    fn qualified_names_allow_a_dns_prefix() {
        for good in [
            "app",
            "App.Name_1",
            "kubernetes.io/service-name",
            "a/b",
            "x",
        ] {
            assert!(is_qualified_name(good).is_empty(), "{good}");
        }
        let name_part = "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')";
        assert_eq!(is_qualified_name("-app"), vec![name_part.to_string()]);
        assert_eq!(
            is_qualified_name("/app"),
            vec!["prefix part must be non-empty".to_string()]
        );
        assert_eq!(
            is_qualified_name("example.com/"),
            vec![
                "name part must be non-empty".to_string(),
                name_part.to_string()
            ]
        );
        let prefix_errs = is_qualified_name("Example.com/app");
        assert_eq!(prefix_errs.len(), 1);
        assert!(prefix_errs[0].starts_with("prefix part a lowercase RFC 1123 subdomain"));
        let too_many = is_qualified_name("a/b/c");
        assert_eq!(too_many.len(), 1);
        assert!(too_many[0].starts_with("a valid label key must consist of"));
        assert!(too_many[0].ends_with(
            "with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ));
        assert_eq!(
            is_qualified_name(&"a".repeat(64)),
            vec!["name part must be no more than 63 characters".to_string()]
        );
    }

    #[test]
    fn label_values_may_be_empty() {
        for good in ["", "ngx-dep", "v1.2_3", "A"] {
            assert!(is_valid_label_value(good).is_empty(), "{good:?}");
        }
        assert_eq!(
            is_valid_label_value("-x"),
            vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"]
        );
        assert_eq!(is_valid_label_value("a b").len(), 1);
        assert_eq!(
            is_valid_label_value(&"v".repeat(64)),
            vec!["must be no more than 63 characters"]
        );
    }

    #[test]
    fn port_names_follow_iana_service_name_rules() {
        for good in ["http", "metrics-9090", "h2", "a"] {
            assert!(is_valid_port_name(good).is_empty(), "{good}");
        }
        assert_eq!(
            is_valid_port_name("8080"),
            vec!["must contain at least one letter (a-z)"]
        );
        assert_eq!(
            is_valid_port_name("Http"),
            vec!["must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"]
        );
        assert_eq!(
            is_valid_port_name("a--b"),
            vec!["must not contain consecutive hyphens"]
        );
        assert_eq!(
            is_valid_port_name("-ab"),
            vec!["must not begin or end with a hyphen"]
        );
        assert_eq!(
            is_valid_port_name("a-very-long-port-name"),
            vec!["must be no more than 15 characters"]
        );
        assert_eq!(is_valid_port_name("").len(), 2);
    }
}
