//! The client half: printing a Table the way kubectl does.
//!
//! kubectl writes each row as tab-separated cells into Go's `tabwriter`
//! (minimum cell width 6, padding 3), which pads every column to its widest
//! cell plus three spaces and leaves the last column unpadded:
//!
//! ```text
//! NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE
//! kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP        5d
//! ngx-svc      NodePort    10.96.0.17   <none>        80:30651/TCP   5m
//! ```
//!
//! Headers are the column names upper-cased; columns with priority 1 appear
//! only with `-o wide`; `-A` adds NAMESPACE first, read from each row's
//! object metadata. Nothing at all is printed for a table without rows:
//! kubectl then says [`no_resources_message`] on stderr instead.
//!
//! `kubectl get -w` keeps printing into the same writer: the header is
//! printed once, later rows are aligned with what was printed before, and
//! columns never shrink. [`TablePrinter`] keeps that state.

use serde_json::Value;

use super::{list, text};

/// Go tabwriter's `minwidth` as kubectl sets it: no column is narrower,
/// padding included.
const MIN_COLUMN_WIDTH: usize = 6;
/// Go tabwriter's `padding` as kubectl sets it: spaces after a column's
/// widest cell.
const COLUMN_PADDING: usize = 3;

/// How `kubectl get` was asked to print.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrintOptions {
    /// `-o wide`: the priority-1 columns too.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first, read from `row.object.metadata.namespace`.
    pub with_namespace: bool,
    /// `--no-headers`.
    pub no_headers: bool,
    /// Prepended to the name cells (`service/`, `deployment.apps/`) when one
    /// command prints several kinds, as in `kubectl get svc,deploy`.
    pub kind_prefix: Option<String>,
}

/// Prints a whole Table: header then rows, or nothing when it has no rows.
///
/// For `kubectl get svc,deploy`, print each kind's table with its own call
/// (widths are not shared between kinds) and put an empty line between
/// non-empty ones, as kubectl does.
pub fn print_table(table: &Value, opts: &PrintOptions) -> String {
    TablePrinter::new(opts.clone()).print(table)
}

/// Prints only the rows of a Table, aligned on their own. For `get -w`,
/// prefer [`TablePrinter`], which also keeps them aligned with the rows
/// printed before.
pub fn print_rows_only(table: &Value, opts: &PrintOptions) -> String {
    let opts = PrintOptions {
        no_headers: true,
        ..opts.clone()
    };
    print_table(table, &opts)
}

/// What kubectl prints on stderr when a list has no rows:
/// `No resources found in default namespace.`, or `No resources found`
/// without a namespace (`-A`, cluster-scoped resources).
pub fn no_resources_message(namespace: Option<&str>) -> String {
    match namespace {
        Some(namespace) => format!("No resources found in {namespace} namespace."),
        None => "No resources found".to_string(),
    }
}

/// Prints successive Tables as one aligned output, like kubectl's printer
/// and tab writer across a `get -w`: the list first, then one table per
/// watch event.
#[derive(Debug, Clone, Default)]
pub struct TablePrinter {
    options: PrintOptions,
    /// The column definitions last seen. A watch event's table may omit
    /// them, meaning "same as before".
    columns: Vec<Value>,
    /// Whether a header for `columns` has been printed.
    printed_header: bool,
    /// The widest each column has been so far (tabwriter's `RememberWidths`).
    widths: Vec<usize>,
}

impl TablePrinter {
    pub fn new(options: PrintOptions) -> Self {
        TablePrinter {
            options,
            ..TablePrinter::default()
        }
    }

    /// Prints one Table: with a header the first time its columns have
    /// rows to show (unless `no_headers`), rows only afterwards.
    pub fn print(&mut self, table: &Value) -> String {
        let columns = list(table, "/columnDefinitions");
        let rows = list(table, "/rows");
        let mut header = !self.options.no_headers;
        if self.printed_header && (columns.is_empty() || columns == self.columns.as_slice()) {
            header = false;
        }
        if !columns.is_empty() && columns != self.columns.as_slice() {
            self.columns = columns.to_vec();
            self.printed_header = false;
        }
        if rows.is_empty() {
            return String::new();
        }
        self.printed_header = true;

        let shown: Vec<usize> = (0..self.columns.len())
            .filter(|&i| {
                self.options.wide || self.columns[i]["priority"].as_i64().unwrap_or(0) == 0
            })
            .collect();
        // kubectl prefixes the first string column formatted as a name.
        let name_column = self.options.kind_prefix.as_ref().and_then(|prefix| {
            self.columns
                .iter()
                .position(|c| c["format"] == "name" && c["type"] == "string")
                .map(|i| (i, prefix))
        });

        let mut lines = Vec::with_capacity(rows.len() + 1);
        if header {
            let mut names = Vec::new();
            if self.options.with_namespace {
                names.push("NAMESPACE".to_string());
            }
            names.extend(
                shown
                    .iter()
                    .map(|&i| text(&self.columns[i], "/name").to_uppercase()),
            );
            lines.push(names);
        }
        for row in rows {
            let mut line = Vec::new();
            if self.options.with_namespace {
                line.push(text(row, "/object/metadata/namespace").to_string());
            }
            // A row with more cells than columns is cut, as kubectl does.
            for (i, cell) in list(row, "/cells")
                .iter()
                .enumerate()
                .take(self.columns.len())
            {
                if !shown.contains(&i) {
                    continue;
                }
                let cell = cell_text(cell);
                line.push(match name_column {
                    Some((column, prefix)) if column == i => format!("{prefix}{cell}"),
                    _ => cell,
                });
            }
            lines.push(line);
        }
        self.align(&lines)
    }

    /// Pads every cell but the last of each line to its column's width.
    fn align(&mut self, lines: &[Vec<String>]) -> String {
        let width = |cell: &String| cell.chars().count();
        let aligned = lines
            .iter()
            .map(|l| l.len().saturating_sub(1))
            .max()
            .unwrap_or(0);
        for column in 0..aligned {
            let widest = lines
                .iter()
                .filter(|line| column + 1 < line.len())
                .map(|line| width(&line[column]) + COLUMN_PADDING)
                .max()
                .unwrap_or(0)
                .max(MIN_COLUMN_WIDTH);
            match self.widths.get_mut(column) {
                Some(remembered) => *remembered = (*remembered).max(widest),
                None => self.widths.push(widest),
            }
        }
        let mut out = String::new();
        for line in lines {
            for (column, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if column + 1 < line.len() {
                    let padding = self.widths[column] - width(cell);
                    out.extend(std::iter::repeat_n(' ', padding));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// A cell as kubectl writes it: strings cut at the first line break (with
/// `...`), the escape character made visible so a cell cannot drive the
/// terminal, numbers and booleans as they are, null as nothing.
fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => String::new(),
        Value::String(s) => {
            let (line, cut) = match s.find(['\n', '\r', '\x0c']) {
                Some(end) => (&s[..end], true),
                None => (s.as_str(), false),
            };
            let mut out = line.replace('\x1b', "^[");
            if cut {
                out.push_str("...");
            }
            out
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::lookup;
    use crate::table::{to_table, IncludeObject};
    use chrono::{DateTime, Utc};
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2026-11-25T10:00:00Z".parse().unwrap()
    }

    fn service(name: &str, namespace: &str, created: &str, spec: Value) -> Value {
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
            "spec": spec,
        })
    }

    /// `kubectl get svc` after step 10 of the lesson.
    fn services_table() -> Value {
        let kubernetes = service(
            "kubernetes",
            "default",
            "2026-11-20T10:00:00Z",
            json!({
                "type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": 6443}],
            }),
        );
        let ngx = service(
            "ngx-svc",
            "default",
            "2026-11-25T09:55:00Z",
            json!({
                "type": "NodePort", "clusterIP": "10.96.0.17", "clusterIPs": ["10.96.0.17"],
                "selector": {"app": "ngx-dep"},
                "ports": [{"port": 80, "targetPort": 80, "nodePort": 30651, "protocol": "TCP"}],
            }),
        );
        to_table(
            lookup("svc").unwrap(),
            &[kubernetes, ngx],
            now(),
            IncludeObject::Metadata,
            json!({"resourceVersion": "1200"}),
        )
    }

    #[test]
    fn prints_services_exactly_like_kubectl() {
        assert_eq!(
            print_table(&services_table(), &PrintOptions::default()),
            "NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE\n\
             kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP        5d\n\
             ngx-svc      NodePort    10.96.0.17   <none>        80:30651/TCP   5m\n"
        );
    }

    #[test]
    fn wide_adds_priority_one_columns() {
        let opts = PrintOptions {
            wide: true,
            ..PrintOptions::default()
        };
        assert_eq!(
            print_table(&services_table(), &opts),
            "NAME         TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE   SELECTOR\n\
             kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP        5d    <none>\n\
             ngx-svc      NodePort    10.96.0.17   <none>        80:30651/TCP   5m    app=ngx-dep\n"
        );
    }

    #[test]
    fn all_namespaces_adds_namespace_from_row_metadata() {
        let opts = PrintOptions {
            with_namespace: true,
            no_headers: true,
            ..PrintOptions::default()
        };
        assert_eq!(
            print_table(&services_table(), &opts),
            "default   kubernetes   ClusterIP   10.96.0.1    <none>   443/TCP        5d\n\
             default   ngx-svc      NodePort    10.96.0.17   <none>   80:30651/TCP   5m\n"
        );
        let opts = PrintOptions {
            with_namespace: true,
            ..PrintOptions::default()
        };
        assert!(print_table(&services_table(), &opts)
            .starts_with("NAMESPACE   NAME         TYPE        CLUSTER-IP   EXTERNAL-IP"));
    }

    #[test]
    fn kind_prefix_goes_on_the_name_column() {
        let opts = PrintOptions {
            kind_prefix: Some("service/".to_string()),
            ..PrintOptions::default()
        };
        assert_eq!(
            print_table(&services_table(), &opts),
            "NAME                 TYPE        CLUSTER-IP   EXTERNAL-IP   PORT(S)        AGE\n\
             service/kubernetes   ClusterIP   10.96.0.1    <none>        443/TCP        5d\n\
             service/ngx-svc      NodePort    10.96.0.17   <none>        80:30651/TCP   5m\n"
        );
    }

    #[test]
    fn empty_table_prints_nothing_and_kubectl_explains_on_stderr() {
        let empty = to_table(
            lookup("svc").unwrap(),
            &[] as &[Value],
            now(),
            IncludeObject::Metadata,
            json!({}),
        );
        assert_eq!(print_table(&empty, &PrintOptions::default()), "");
        assert_eq!(
            no_resources_message(Some("default")),
            "No resources found in default namespace."
        );
        assert_eq!(no_resources_message(None), "No resources found");
    }

    fn table(columns: Value, rows: Value) -> Value {
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "columnDefinitions": columns, "rows": rows})
    }

    #[test]
    fn narrow_columns_keep_the_minimum_width_and_cells_are_rendered_like_kubectl() {
        let columns = json!([
            {"name": "N", "type": "string", "format": "name", "priority": 0},
            {"name": "Count", "type": "integer", "format": "", "priority": 0},
            {"name": "Message", "type": "string", "format": "", "priority": 0},
        ]);
        let rows = json!([
            {"cells": ["a", 7, "first line\nsecond line"]},
            {"cells": ["b", null, "\u{1b}[31mred"]},
        ]);
        assert_eq!(
            print_table(&table(columns, rows), &PrintOptions::default()),
            "N     COUNT   MESSAGE\n\
             a     7       first line...\n\
             b             ^[[31mred\n"
        );
    }

    #[test]
    fn watch_prints_the_header_once_and_keeps_columns_aligned() {
        let columns = json!([
            {"name": "Name", "type": "string", "format": "name", "priority": 0},
            {"name": "Ready", "type": "string", "format": "", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "priority": 0},
        ]);
        let mut printer = TablePrinter::new(PrintOptions::default());
        assert_eq!(
            printer.print(&table(
                columns.clone(),
                json!([{"cells": ["ngx-dep-abc", "1/1", "5m"]}])
            )),
            "NAME          READY   AGE\n\
             ngx-dep-abc   1/1     5m\n"
        );
        // A shorter name stays under the header's alignment.
        assert_eq!(
            printer.print(&table(
                columns.clone(),
                json!([{"cells": ["ngx-x", "0/1", "0s"]}])
            )),
            "ngx-x         0/1     0s\n"
        );
        // Watch events may leave the columns out: the previous ones apply.
        assert_eq!(
            printer.print(&table(
                json!([]),
                json!([{"cells": ["ngx-dep-longer-name", "1/1", "1s"]}])
            )),
            "ngx-dep-longer-name   1/1     1s\n"
        );
        // Different columns mean a different table: a new header.
        let other = json!([{"name": "Name", "type": "string", "format": "name", "priority": 0}]);
        assert_eq!(
            printer.print(&table(other, json!([{"cells": ["x"]}]))),
            "NAME\nx\n"
        );
    }

    #[test]
    fn watch_that_starts_empty_prints_the_header_with_the_first_row() {
        let columns = json!([
            {"name": "Name", "type": "string", "format": "name", "priority": 0},
            {"name": "Age", "type": "string", "format": "", "priority": 0},
        ]);
        let mut printer = TablePrinter::new(PrintOptions::default());
        assert_eq!(printer.print(&table(columns.clone(), json!([]))), "");
        assert_eq!(
            printer.print(&table(columns, json!([{"cells": ["ngx-svc", "0s"]}]))),
            "NAME      AGE\nngx-svc   0s\n"
        );
    }

    #[test]
    fn rows_only_has_no_header() {
        assert_eq!(
            print_rows_only(&services_table(), &PrintOptions::default()),
            "kubernetes   ClusterIP   10.96.0.1    <none>   443/TCP        5d\n\
             ngx-svc      NodePort    10.96.0.17   <none>   80:30651/TCP   5m\n"
        );
    }
}
