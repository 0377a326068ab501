//! Separated columns (CSV, TSV, space-separated), with quoting. Columns are
//! named by 0-based index or by the name a header line gives them.

use std::borrow::Cow;

use crate::field::{FIELD_COUNT, Field, Values};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Column {
    Index(usize),
    Name(String),
}

pub struct DelimitedFormat {
    separator: char,
    quote: Option<char>,
    /// What the config asked for, per field.
    columns: [Option<Column>; FIELD_COUNT],
    /// Column index per field, once every name is known.
    resolved: Option<[Option<usize>; FIELD_COUNT]>,
    /// Names of the current header (or of `columns:` in the config).
    header: Option<Vec<String>>,
    /// Whether the data carries header lines.
    header_lines: bool,
    cells: Vec<(usize, usize)>,
}

/// What one line was.
#[derive(Debug)]
pub enum Line {
    Header,
    Record,
}

impl DelimitedFormat {
    pub fn new(
        separator: char,
        quote: Option<char>,
        columns: [Option<Column>; FIELD_COUNT],
        names: Option<Vec<String>>,
        header_lines: bool,
    ) -> Result<Self, String> {
        if quote == Some(separator) {
            return Err("quote and separator must differ".to_owned());
        }
        let by_name = columns
            .iter()
            .flatten()
            .any(|c| matches!(c, Column::Name(_)));
        if by_name && names.is_none() && !header_lines {
            return Err(
                "columns are named, but there is no header: set `header: true` or list `columns`"
                    .to_owned(),
            );
        }
        let mut format = DelimitedFormat {
            separator,
            quote,
            columns,
            resolved: None,
            header: None,
            header_lines,
            cells: Vec::new(),
        };
        if let Some(names) = names {
            format.set_header(names)?;
        } else if !by_name {
            format.resolved = Some(std::array::from_fn(|i| match &format.columns[i] {
                Some(Column::Index(n)) => Some(*n),
                _ => None,
            }));
        }
        Ok(format)
    }

    fn set_header(&mut self, names: Vec<String>) -> Result<(), String> {
        let mut resolved = [None; FIELD_COUNT];
        for (field, column) in Field::ALL.into_iter().zip(&self.columns) {
            resolved[field.index()] = match column {
                None => None,
                Some(Column::Index(n)) => Some(*n),
                Some(Column::Name(name)) => {
                    Some(names.iter().position(|n| n == name).ok_or_else(|| {
                        format!("{}: the header has no column {name:?}", field.name())
                    })?)
                }
            };
        }
        self.resolved = Some(resolved);
        self.header = Some(names);
        Ok(())
    }

    /// The header's names, for carrying across a hot swap.
    pub fn header(&self) -> Option<&[String]> {
        self.header.as_deref()
    }

    pub fn restore_header(&mut self, names: Vec<String>) -> Result<(), String> {
        self.set_header(names)
    }

    /// Splits `line` into cells (start, end), quotes removed from the ends;
    /// a doubled quote inside a quoted cell stands for one quote.
    fn split(&mut self, line: &str) {
        self.cells.clear();
        let sep = self.separator;
        let mut rest_start = 0;
        loop {
            let rest = &line[rest_start..];
            if let Some(q) = self.quote
                && let Some(inner) = rest.strip_prefix(q)
            {
                let mut i = 0;

                let qlen = q.len_utf8();
                let close = loop {
                    match inner[i..].find(q) {
                        Some(p) if inner[i + p + qlen..].starts_with(q) => i += p + 2 * qlen,
                        Some(p) => break Some(i + p),
                        None => break None,
                    }
                };
                let start = rest_start + qlen;
                let end = close.map_or(line.len(), |c| start + c);
                self.cells.push((start, end));
                let after = (end + qlen).min(line.len());

                match line[after..].find(sep) {
                    Some(p) => rest_start = after + p + sep.len_utf8(),
                    None => return,
                }
                continue;
            }
            match rest.find(sep) {
                Some(p) => {
                    self.cells.push((rest_start, rest_start + p));
                    rest_start += p + sep.len_utf8();
                    if sep == ' ' {
                        // Runs of spaces are one separator.
                        while line[rest_start..].starts_with(' ') {
                            rest_start += 1;
                        }
                    }
                }
                None => {
                    self.cells.push((rest_start, line.len()));
                    return;
                }
            }
        }
    }

    fn cell<'a>(&self, line: &'a str, (start, end): (usize, usize)) -> Cow<'a, str> {
        let text = line[start..end].trim();
        match self.quote {
            Some(q) if text.contains(q) => {
                let doubled: String = [q, q].iter().collect();
                Cow::Owned(text.replace(&doubled, &q.to_string()))
            }
            _ => Cow::Borrowed(text),
        }
    }

    pub fn extract<'a>(&mut self, line: &'a str, values: &mut Values<'a>) -> Result<Line, String> {
        self.split(line);
        if self.header_lines && self.is_header(line) {
            let names = self
                .cells
                .iter()
                .map(|c| self.cell(line, *c).into_owned())
                .collect();
            self.set_header(names)?;
            return Ok(Line::Header);
        }
        let Some(resolved) = self.resolved else {
            return Err("no header line seen yet, so named columns are unknown".to_owned());
        };
        for (field, column) in Field::ALL.into_iter().zip(resolved) {
            let Some(column) = column else { continue };
            match self.cells.get(column) {
                Some(cell) => values[field.index()] = Some(self.cell(line, *cell)),
                None => {
                    return Err(format!(
                        "{}: column {column} is missing (the line has {} columns)",
                        field.name(),
                        self.cells.len()
                    ));
                }
            }
        }
        Ok(Line::Record)
    }

    /// A header holds every column name the config uses; data does not.
    /// Without names in the config, the first line is the header.
    fn is_header(&self, line: &str) -> bool {
        let named: Vec<&str> = self
            .columns
            .iter()
            .flatten()
            .filter_map(|c| match c {
                Column::Name(n) => Some(n.as_str()),
                Column::Index(_) => None,
            })
            .collect();
        if named.is_empty() {
            return self.header.is_none();
        }
        named
            .iter()
            .all(|name| self.cells.iter().any(|c| self.cell(line, *c) == *name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::empty_values;

    fn columns(pairs: &[(Field, Column)]) -> [Option<Column>; FIELD_COUNT] {
        let mut columns: [Option<Column>; FIELD_COUNT] = Default::default();
        for (field, column) in pairs {
            columns[field.index()] = Some(column.clone());
        }
        columns
    }

    #[test]
    fn by_index_with_quotes() {
        let mut format = DelimitedFormat::new(
            ',',
            Some('"'),
            columns(&[
                (Field::SrcIp, Column::Index(0)),
                (Field::Action, Column::Index(2)),
            ]),
            None,
            false,
        )
        .unwrap();
        let mut values = empty_values();
        format
            .extract(r#"10.0.0.1,"a,b","say ""hi""",x"#, &mut values)
            .unwrap();
        assert_eq!(values[Field::SrcIp.index()].as_deref(), Some("10.0.0.1"));
        assert_eq!(
            values[Field::Action.index()].as_deref(),
            Some(r#"say "hi""#)
        );

        let err = format.extract("only", &mut empty_values()).unwrap_err();
        assert!(err.contains("column 2 is missing"), "{err}");
    }

    #[test]
    fn by_header_name_and_header_changes() {
        let mut format = DelimitedFormat::new(
            '\t',
            None,
            columns(&[
                (Field::SrcIp, Column::Name("src".into())),
                (Field::DstIp, Column::Name("dst".into())),
            ]),
            None,
            true,
        )
        .unwrap();
        assert!(
            format
                .extract("1.1.1.1\t2.2.2.2", &mut empty_values())
                .unwrap_err()
                .contains("no header")
        );
        assert!(matches!(
            format.extract("src\tdst", &mut empty_values()),
            Ok(Line::Header)
        ));
        let mut values = empty_values();
        format.extract("1.1.1.1\t2.2.2.2", &mut values).unwrap();
        assert_eq!(values[Field::DstIp.index()].as_deref(), Some("2.2.2.2"));
        // A new header with another order.
        assert!(matches!(
            format.extract("x\tdst\tsrc", &mut empty_values()),
            Ok(Line::Header)
        ));
        let mut values = empty_values();
        format.extract("0\t2.2.2.2\t1.1.1.1", &mut values).unwrap();
        assert_eq!(values[Field::SrcIp.index()].as_deref(), Some("1.1.1.1"));
    }

    #[test]
    fn spaces_collapse_and_names_need_a_header() {
        let mut format = DelimitedFormat::new(
            ' ',
            None,
            columns(&[(Field::DstIp, Column::Index(1))]),
            None,
            false,
        )
        .unwrap();
        let mut values = empty_values();
        format.extract("a   b c", &mut values).unwrap();
        assert_eq!(values[Field::DstIp.index()].as_deref(), Some("b"));
        assert!(
            DelimitedFormat::new(
                ',',
                None,
                columns(&[(Field::DstIp, Column::Name("d".into()))]),
                None,
                false
            )
            .is_err()
        );
    }
}
