//! Mail text made literal for Zendesk's Markdown: what the mail says is shown
//! as written, never rendered as links, images or markup.

/// Mail text as Zendesk should show it. Zendesk renders a comment's `body` as
/// Markdown, so every character that could start markup is backslash-escaped
/// (CommonMark shows an escaped punctuation character as itself): inline
/// (`\ ` * _ [ ] < > & ~ |`) everywhere, block markers (`# > - + =`, `1.`) at the
/// start of a line. Web addresses keep their characters, so they still work as
/// links, except `<`, `>`, `` ` ``, `\`, the brackets and parentheses that
/// could form a link inside one, and an `&` that starts a character reference. Indentation is kept: an indented line
/// may show as code, which is still the text as written.
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    for (n, line) in text.split('\n').enumerate() {
        if n > 0 {
            out.push('\n');
        }
        let rest = line.trim_start_matches([' ', '\t']);
        out.push_str(&line[..line.len() - rest.len()]);
        let rest = escape_block_start(rest, &mut out);
        escape_inline(rest, &mut out);
    }
    out
}

/// Escapes a block marker at the start of `line`; returns the part left.
fn escape_block_start<'a>(line: &'a str, out: &mut String) -> &'a str {
    let Some(first) = line.chars().next() else {
        return line;
    };
    if matches!(first, '#' | '>' | '-' | '+' | '=') {
        out.push('\\');
        out.push(first);
        return &line[1..];
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 && matches!(line[digits..].chars().next(), Some('.' | ')')) {
        out.push_str(&line[..digits]);
        out.push('\\');
        out.push_str(&line[digits..=digits]);
        return &line[digits + 1..];
    }
    line
}

fn escape_inline(text: &str, out: &mut String) {
    let mut in_address = false;
    let mut at_word_start = true;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            in_address = false;
            at_word_start = true;
            out.push(c);
            continue;
        }
        if at_word_start {
            let word = &text[i..];
            // Compared as bytes: the word may start with a multi-byte character.
            in_address = ["http://", "https://"].iter().any(|scheme| {
                word.as_bytes()
                    .get(..scheme.len())
                    .is_some_and(|start| start.eq_ignore_ascii_case(scheme.as_bytes()))
            });
            at_word_start = false;
        }
        // In an address too: brackets and parentheses could still make a
        // link (`https://a.example/[x](https://evil.example)`).
        // And an `&` that starts a character reference: CommonMark decodes
        // `&#x202E;` to the character, which would bring back the
        // bidirectional overrides and invisible characters `defang` took out.
        let special = if in_address {
            matches!(c, '<' | '>' | '`' | '\\' | '[' | ']' | '(' | ')')
                || (c == '&' && starts_reference(&text[i + 1..]))
        } else {
            matches!(
                c,
                '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '~' | '|'
            )
        };
        if special {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Whether the text after an `&` makes it a character reference, as
/// CommonMark reads one: `#` and 1-7 digits, `#x` and 1-6 hex digits, or an
/// entity name, then `;`. Looks at most 33 bytes ahead (the longest entity
/// name is 31 letters), so escaping stays linear.
fn starts_reference(after: &str) -> bool {
    let ahead = &after.as_bytes()[..after.len().min(33)];
    let (name, most, allowed): (&[u8], usize, fn(&u8) -> bool) = match ahead {
        [b'#', b'x' | b'X', rest @ ..] => (rest, 6, u8::is_ascii_hexdigit),
        [b'#', rest @ ..] => (rest, 7, u8::is_ascii_digit),
        _ => (ahead, 32, u8::is_ascii_alphanumeric),
    };
    let run = name.iter().take_while(|b| allowed(b)).count();
    run > 0 && run <= most && name.get(run) == Some(&b';')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_mail_text_is_shown_as_written() {
        assert_eq!(
            literal("[click](http://evil.example) ![x](http://t.example/p.png)"),
            "\\[click\\](http://evil.example) !\\[x\\](http://t.example/p.png)"
        );
        assert_eq!(
            literal("<script>alert(1)</script>"),
            "\\<script\\>alert(1)\\</script\\>"
        );
        assert_eq!(
            literal("**bold** _it_ `code` ~~x~~ a|b &amp;"),
            "\\*\\*bold\\*\\* \\_it\\_ \\`code\\` \\~\\~x\\~\\~ a\\|b \\&amp;"
        );
        assert_eq!(
            literal("# Title\n> quote\n- item\n1. one\n  2) two\n==="),
            "\\# Title\n\\> quote\n\\- item\n1\\. one\n  2\\) two\n\\==="
        );
    }

    #[test]
    fn web_addresses_keep_their_characters() {
        let url = "https://console.aws.amazon.com/billing/home#/bills?x_y=1&z=*";
        assert_eq!(literal(&format!("See {url} now")), format!("See {url} now"));
        assert_eq!(
            literal("https://a.example/<b>"),
            "https://a.example/\\<b\\>"
        );
        assert_eq!(
            literal("AWS account 1234-5678-9012, 42 USD."),
            "AWS account 1234-5678-9012, 42 USD."
        );
    }

    /// A character reference in a web address was left for Markdown to
    /// decode: `https://&#x202E;fdp.exe` showed the rest of the line
    /// reversed (a right-to-left override `defang` had taken out of the
    /// text). Its `&` is escaped; a query's `&` stays.
    #[test]
    fn character_references_in_a_web_address_stay_text() {
        for (text, escaped) in [
            ("https://&#x202E;fdp.exe", "https://\\&#x202E;fdp.exe"),
            ("https://a.example/&#8238;x", "https://a.example/\\&#8238;x"),
            (
                "https://a.example/&ZeroWidthSpace;x",
                "https://a.example/\\&ZeroWidthSpace;x",
            ),
            (
                "https://a.example/?a=1&b=2;c",
                "https://a.example/?a=1&b=2;c",
            ),
            ("https://a.example/?a=1&#=2", "https://a.example/?a=1&#=2"),
            (
                "https://a.example/&#12345678;",
                "https://a.example/&#12345678;",
            ),
        ] {
            assert_eq!(literal(text), escaped, "{text}");
        }
    }

    /// Issue B: a word that starts with `https://` could still carry link
    /// syntax (`https://a.example/[x](https://evil.example)`); its brackets
    /// and parentheses are escaped, the address stays readable.
    #[test]
    fn link_syntax_inside_a_web_address_is_escaped() {
        assert_eq!(
            literal("https://a.example/[click](https://evil.example)"),
            "https://a.example/\\[click\\]\\(https://evil.example\\)"
        );
        assert_eq!(
            literal("https://a.example/![x](https://t.example/p.png)").replace('\\', ""),
            "https://a.example/![x](https://t.example/p.png)"
        );
    }

    /// Found by the crash-point tests: a word whose first 7 or 8 bytes end
    /// inside a character (`日本語`) was sliced there to compare with
    /// `http://`, and the writer panicked on every delivery of that mail.
    #[test]
    fn words_of_multi_byte_characters_are_escaped_without_a_panic() {
        for text in [
            "Grüße ünd 日本語 *ß*",
            "é",
            "€€€ https://ä.example/_x_",
            "ñhttp://",
        ] {
            let escaped = literal(text);
            assert_eq!(escaped.replace('\\', ""), text, "{text}");
        }
        assert_eq!(literal("日本 *x*"), "日本 \\*x\\*");
    }
}
