//! Plain-text tables and times for people.

/// Prints rows under a header, each column as wide as its widest cell (capped).
pub fn table(header: &[&str], rows: &[Vec<String>], max_width: usize) -> String {
    let cell = |s: &str| -> String {
        let s: String = s
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if s.chars().count() > max_width {
            let cut: String = s.chars().take(max_width.saturating_sub(1)).collect();
            format!("{cut}…")
        } else {
            s
        }
    };
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| cell(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(c);
                out.push_str(&" ".repeat(widths[i] - c.chars().count() + 2));
            }
        }
        out.trim_end().to_string()
    };
    let mut out = line(header.to_vec());
    out.push('\n');
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

pub use rootmail_domain::dates::utc;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_and_caps_columns() {
        let out = table(
            &["A", "B"],
            &[
                vec!["xx".into(), "y\nz".into()],
                vec!["abcdefgh".into(), "1".into()],
            ],
            5,
        );
        assert_eq!(out, "A      B\nxx     y z\nabcd…  1\n");
    }
}
