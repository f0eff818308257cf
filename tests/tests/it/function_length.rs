//! No production function is longer than 60 lines, from its `fn` line to its
//! closing brace (issue 18): past that, a function does several things and
//! should say so with named steps. Test modules are left out.

use super::error_decisions::{production_part, production_sources};

const MAX_LINES: usize = 60;

/// Each function in `code` longer than `max` lines, as (line, name, length).
/// Relies on rustfmt's layout: a body ends at a `}` line indented as its `fn`;
/// a declaration without a body (a trait's) ends with `;`.
fn long_functions(code: &str, max: usize) -> Vec<(usize, String, usize)> {
    let start = regex::Regex::new(
        r"^(\s*)(pub(\([^)]*\))? )?(const )?(async )?(unsafe )?(extern \S+ )?fn (\w+)",
    )
    .expect("valid");
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        let Some(caps) = start.captures(lines[at]) else {
            at += 1;
            continue;
        };
        let indent = &caps[1];
        let name = caps[8].to_string();
        let Some(open) = (at..lines.len()).find(|&i| {
            let line = lines[i].trim_end();
            line.ends_with('{') || line.ends_with(';')
        }) else {
            break;
        };
        if lines[open].trim_end().ends_with(';') {
            at = open + 1;
            continue;
        }
        let close = (open..lines.len())
            .find(|&i| lines[i].strip_prefix(indent) == Some("}"))
            .unwrap_or(lines.len() - 1);
        let length = close - at + 1;
        if length > max {
            found.push((at + 1, name, length));
        }
        // Functions nested inside are part of this one's length.
        at = close + 1;
    }
    found
}

#[test]
fn the_scan_measures_bodies_and_skips_declarations() {
    let body = "    let x = 1;\n".repeat(61);
    let code = format!(
        "trait T {{\n    fn declared(&self) -> u8;\n}}\n\n\
         pub async fn long(\n    a: u8,\n) -> u8 {{\n{body}    a\n}}\n\n\
         fn short() {{\n    if true {{\n    }}\n}}\n"
    );
    let found = long_functions(&code, MAX_LINES);
    assert_eq!(found, vec![(5, "long".to_string(), 66)]);
    assert!(long_functions(&code, 70).is_empty());
}

#[test]
fn no_production_function_is_over_sixty_lines() {
    let files = production_sources();
    let mut found = Vec::new();
    for path in &files {
        for (line, name, length) in long_functions(&production_part(path), MAX_LINES) {
            found.push(format!(
                "{}:{line}: {name} ({length} lines)",
                path.display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "functions over {MAX_LINES} lines (split them into named steps):\n{}",
        found.join("\n")
    );
}
