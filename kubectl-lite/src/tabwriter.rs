//! Aligned columns, the way kubectl lines them up.
//!
//! kubectl writes every table and every `describe` page as text with tab
//! characters between cells, through Go's `text/tabwriter`, which turns the
//! tabs into spaces so that cells line up. The alignment rule is subtle and
//! visible in every output: a column's width is decided per *block* of
//! consecutive lines that have a cell in that column, so `describe` output
//! aligns `Name:`, `Namespace:` and `Labels:` together while a nested
//! table further down gets its own widths. This module re-implements that
//! rule so that our output is byte-for-byte kubectl's.

/// A tab-to-spaces aligner with Go tabwriter's settings.
#[derive(Debug, Clone)]
pub struct TabWriter {
    /// Smallest width of a column, padding included.
    min_width: usize,
    /// Spaces added after the widest cell of a column.
    padding: usize,
    /// kubectl's fork of tabwriter can remember column widths across
    /// flushes so that `get -w` rows stay aligned with the header printed
    /// earlier; `Some` turns that on.
    remembered: Option<Vec<usize>>,
}

impl TabWriter {
    /// The writer behind `kubectl describe` (`tabwriter.NewWriter(out, 0,
    /// 8, 2, ' ', 0)`).
    pub fn describe() -> Self {
        TabWriter {
            min_width: 0,
            padding: 2,
            remembered: None,
        }
    }

    /// The writer behind `kubectl get` and `api-resources`
    /// (`printers.GetNewTabWriter`: minimum width 6, padding 3, widths
    /// remembered between flushes).
    pub fn table() -> Self {
        TabWriter {
            min_width: 6,
            padding: 3,
            remembered: Some(Vec::new()),
        }
    }

    /// Aligns `text`: every `\t`-terminated cell is padded to its column
    /// block's width; the text after a line's last tab is left as is.
    pub fn align(&mut self, text: &str) -> String {
        let lines: Vec<Vec<&str>> = text.split('\n').map(|l| l.split('\t').collect()).collect();
        let mut out = String::with_capacity(text.len() * 2);
        let mut widths = Vec::new();
        self.format(&lines, 0, lines.len(), &mut widths, &mut out);
        out
    }

    /// Go's recursive `format`: finds the blocks of lines that have a cell
    /// in the next column, sizes that column per block, and recurses.
    fn format(
        &mut self,
        lines: &[Vec<&str>],
        mut line0: usize,
        line1: usize,
        widths: &mut Vec<usize>,
        out: &mut String,
    ) {
        let column = widths.len();
        let mut this = line0;
        while this < line1 {
            // Cells in columns are the tab-terminated ones: all but the last.
            if column + 1 >= lines[this].len() {
                this += 1;
                continue;
            }
            // A block starts here; print the lines before it.
            self.write_lines(lines, line0, this, widths, out);
            line0 = this;
            let mut width = self.min_width;
            while this < line1 && column + 1 < lines[this].len() {
                width = width.max(lines[this][column].chars().count() + self.padding);
                this += 1;
            }
            if let Some(remembered) = &mut self.remembered {
                if remembered.len() <= column {
                    remembered.resize(column + 1, 0);
                }
                if remembered[column] > width {
                    width = remembered[column];
                } else {
                    remembered[column] = width;
                }
            }
            widths.push(width);
            self.format(lines, line0, this, widths, out);
            widths.pop();
            line0 = this;
        }
        self.write_lines(lines, line0, line1, widths, out);
    }

    fn write_lines(
        &self,
        lines: &[Vec<&str>],
        line0: usize,
        line1: usize,
        widths: &[usize],
        out: &mut String,
    ) {
        for (i, line) in lines.iter().enumerate().take(line1).skip(line0) {
            for (j, cell) in line.iter().enumerate() {
                out.push_str(cell);
                if j + 1 < line.len() && j < widths.len() {
                    let pad = widths[j].saturating_sub(cell.chars().count());
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            // The last line has no newline of its own (text after the final
            // '\n', usually empty).
            if i + 1 < lines.len() {
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_fields_align_in_one_block() {
        let text = "Name:\tngx-svc\nNamespace:\tdefault\nLabels:\t<none>\n";
        assert_eq!(
            TabWriter::describe().align(text),
            "Name:       ngx-svc\nNamespace:  default\nLabels:     <none>\n"
        );
    }

    #[test]
    fn a_line_without_tabs_ends_the_block() {
        let text = "A:\t1\nEvents:\n  Type\tReason\n  ----\t------\nend\nLonger label:\t2\n";
        assert_eq!(
            TabWriter::describe().align(text),
            "A:  1\nEvents:\n  Type  Reason\n  ----  ------\nend\nLonger label:  2\n"
        );
    }

    #[test]
    fn nested_columns_get_their_own_width() {
        // The service Port line has two cells, TargetPort only one: the
        // second column is sized by the Port line alone.
        let text = "Port:\t<unset>\t80/TCP\nTargetPort:\t80/TCP\nEndpoints:\t<none>\n";
        assert_eq!(
            TabWriter::describe().align(text),
            "Port:        <unset>  80/TCP\nTargetPort:  80/TCP\nEndpoints:   <none>\n"
        );
    }

    #[test]
    fn table_writer_has_minimum_width_and_three_spaces() {
        let text = "NAME\tSHORTNAMES\tKIND\nsvc\t\tService\n";
        assert_eq!(
            TabWriter::table().align(text),
            "NAME   SHORTNAMES   KIND\nsvc                 Service\n"
        );
    }

    #[test]
    fn table_writer_remembers_widths_between_calls() {
        let mut writer = TabWriter::table();
        let header = writer.align("NAME\tAGE\nlong-service-name\t5s\n");
        assert_eq!(header, "NAME                AGE\nlong-service-name   5s\n");
        // A later, shorter row keeps the earlier column width.
        assert_eq!(writer.align("a\t6s\n"), "a                   6s\n");
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let text = "ä:\tx\nab:\ty\n";
        assert_eq!(TabWriter::describe().align(text), "ä:   x\nab:  y\n");
    }
}
