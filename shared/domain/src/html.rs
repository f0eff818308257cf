//! HTML to readable plain text: no markup, no remote content, links shown as text.
//!
//! A small tokenizer rather than a DOM: mail HTML is often broken, and all we need
//! is the visible text, the link targets and the certainty that nothing active
//! (scripts, styles, frames, images) survives.

use std::borrow::Cow;

/// Elements whose content is never shown.
const HIDDEN: &[&str] = &[
    "script", "style", "head", "title", "template", "iframe", "object", "embed", "noscript", "svg",
    "math", "select", "textarea",
];

/// Elements that end a line of text.
const BLOCK: &[&str] = &[
    "p",
    "div",
    "br",
    "tr",
    "table",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "blockquote",
    "section",
    "article",
    "header",
    "footer",
    "pre",
    "center",
    "dl",
    "dt",
    "dd",
];

pub fn html_to_text(html: &str) -> String {
    let mut writer = TextWriter::with_capacity(html.len() / 2);
    let mut rest = html;

    while !rest.is_empty() {
        let Some(lt) = rest.find('<') else {
            writer.text(rest);
            break;
        };
        writer.text(&rest[..lt]);
        rest = &rest[lt..];

        if let Some(after) = rest.strip_prefix("<!--") {
            rest = after.find("-->").map_or("", |end| &after[end + 3..]);
            continue;
        }
        // A `<` not followed by a tag name is text. Checked before looking for
        // the tag's end, so a run of lone `<` costs one step each, not a scan
        // to the end of the input each.
        let parsed = starts_tag(rest)
            .then(|| tag_at_start(rest))
            .and_then(|(inner, end)| Some((Tag::parse(inner)?, end)));
        let Some((tag, end)) = parsed else {
            writer.text("<");
            rest = &rest[1..];
            continue;
        };
        rest = &rest[end..];
        writer.tag(tag);
    }
    // A link never closed is shown all the same (a page cut short, or
    // written to hide its target from a converter that waits for `</a>`).
    writer.end_link();
    tidy(&writer.out)
}

/// The text written so far, and the state the tags before it left: inside
/// a hidden element (until its closing tag), inside a link (its target and
/// where its label starts).
struct TextWriter {
    out: String,
    hidden_until: Option<String>,
    link: Option<(String, usize)>,
}

impl TextWriter {
    fn with_capacity(capacity: usize) -> Self {
        Self {
            out: String::with_capacity(capacity),
            hidden_until: None,
            link: None,
        }
    }

    /// Text between tags, unless a hidden element holds it.
    fn text(&mut self, raw: &str) {
        if self.hidden_until.is_none() {
            push_text(&mut self.out, raw);
        }
    }

    /// A tag: it may end or start a hidden element, or shape the text.
    fn tag(&mut self, tag: Tag<'_>) {
        if let Some(name) = &self.hidden_until {
            if tag.closing && tag.name == name.as_str() {
                self.hidden_until = None;
            }
            return;
        }
        if HIDDEN.contains(&tag.name.as_ref()) {
            if !tag.closing && !tag.self_closing {
                self.hidden_until = Some(tag.name.into_owned());
            }
            return;
        }
        self.element(&tag)
    }

    /// What a visible element adds: link targets, image alt text, list
    /// bullets, cell spacing, line ends.
    fn element(&mut self, tag: &Tag<'_>) {
        if tag.name == "a" && !tag.closing {
            // Links do not nest: a new one ends the one left open.
            self.end_link();
        }
        let out = &mut self.out;
        match tag.name.as_ref() {
            "a" if !tag.closing => {
                self.link = tag
                    .attr("href")
                    .map(|href| (link_as_followed(href), out.len()));
            }
            "a" => self.end_link(),
            "img" => {
                // Never fetched; alt text is the only trace a reader needs.
                if let Some(alt) = tag.attr("alt").map(str::trim).filter(|a| !a.is_empty()) {
                    push_text(out, &format!("[image: {}]", decode_attribute(alt)));
                }
            }
            "li" if !tag.closing => {
                newline(out);
                out.push_str("- ");
            }
            "td" | "th"
                if !tag.closing
                    && !out.ends_with('\n')
                    && !out.ends_with(' ')
                    && !out.is_empty() =>
            {
                out.push(' ');
            }
            name if BLOCK.contains(&name) => newline(out),
            _ => {}
        }
    }

    /// At `</a>`: a web or mail link's target is shown after its label (or as
    /// the label, when it has none), so a reader sees where it really goes.
    fn end_link(&mut self) {
        let Some((href, start)) = self.link.take() else {
            return;
        };
        let label = self.out.get(start..).unwrap_or_default().trim().to_string();
        let shown = has_scheme(&href, &["http://", "https://", "mailto:"]);
        if shown && label != href && !href.is_empty() {
            if label.is_empty() {
                // Apart from the word before it (an image-only button after
                // "Reset your password"), so the link reads as one.
                push_text(&mut self.out, " ");
                push_text(&mut self.out, &href);
            } else {
                // Right after the label's last word, and the label's closing
                // space after the target.
                let spaced = self.out.ends_with(' ');
                self.out.truncate(self.out.trim_end_matches(' ').len());
                self.out.push_str(" (");
                self.out.push_str(&href);
                self.out.push(')');
                if spaced {
                    self.out.push(' ');
                }
            }
        }
    }
}

/// Whether `s` (starting with `<`) starts a tag: `<name` or `</name`, where a
/// name starts with what [`Tag::parse`] accepts.
fn starts_tag(s: &str) -> bool {
    let after = s[1..].strip_prefix('/').unwrap_or(&s[1..]);
    after
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '!' || c == '?' || c == '-')
}

/// The inside of the tag that starts `s` (after `<`, before `>`, honouring quotes)
/// and the index just past it. An unterminated tag runs to the end.
fn tag_at_start(s: &str) -> (&str, usize) {
    let mut quote: Option<char> = None;
    for (i, c) in s.char_indices().skip(1) {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => return (&s[1..i], i + 1),
            _ => {}
        }
    }
    (&s[1..], s.len())
}

struct Tag<'a> {
    /// Lower-case: as written when it is (most tags), else a lower-cased copy.
    name: Cow<'a, str>,
    closing: bool,
    self_closing: bool,
    attrs: &'a str,
}

impl<'a> Tag<'a> {
    fn parse(inner: &'a str) -> Option<Self> {
        let (closing, inner) = match inner.strip_prefix('/') {
            Some(rest) => (true, rest),
            None => (false, inner),
        };
        let name_len = inner
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '!' || c == '?' || c == '-'))
            .unwrap_or(inner.len());
        if name_len == 0 {
            return None;
        }
        let name = &inner[..name_len];
        let name = match name.bytes().any(|b| b.is_ascii_uppercase()) {
            true => Cow::Owned(name.to_ascii_lowercase()),
            false => Cow::Borrowed(name),
        };
        Some(Self {
            name,
            closing,
            self_closing: inner.trim_end().ends_with('/'),
            attrs: &inner[name_len..],
        })
    }

    fn attr(&self, wanted: &str) -> Option<&'a str> {
        let mut rest = self.attrs;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '/');
            if rest.is_empty() {
                return None;
            }
            let key_len = rest
                .find(|c: char| c == '=' || c.is_whitespace() || c == '/')
                .unwrap_or(rest.len());
            let key = &rest[..key_len];
            rest = rest[key_len..].trim_start();
            let value = if let Some(after_eq) = rest.strip_prefix('=') {
                let after_eq = after_eq.trim_start();
                let (value, remaining) = match after_eq.chars().next() {
                    Some(q @ ('"' | '\'')) => {
                        let body = &after_eq[1..];
                        let end = body.find(q).unwrap_or(body.len());
                        (&body[..end], body.get(end + 1..).unwrap_or_default())
                    }
                    _ => {
                        let end = after_eq.find(char::is_whitespace).unwrap_or(after_eq.len());
                        (&after_eq[..end], &after_eq[end..])
                    }
                };
                rest = remaining;
                value
            } else {
                ""
            };
            if key.eq_ignore_ascii_case(wanted) {
                return Some(value);
            }
        }
    }
}

fn push_text(out: &mut String, raw: &str) {
    let decoded = decode_entities(raw);
    for c in decoded.chars() {
        if c.is_whitespace() {
            if !out.is_empty() && !out.ends_with(' ') && !out.ends_with('\n') {
                out.push(' ');
            }
        } else if !c.is_control() {
            out.push(c);
        }
    }
}

fn newline(out: &mut String) {
    while out.ends_with(' ') {
        out.pop();
    }
    if !out.is_empty() {
        out.push('\n');
    }
}

/// Trim each line and keep at most one empty line in a row.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.trim_end().to_string()
}

/// The character references of HTML text decoded as a browser shows them: the
/// whole HTML5 named set (`&AMP;`, `&colon;`), numeric references (`&#38;`,
/// `&#x26;`; an invalid one reads as U+FFFD) and the legacy names written
/// without `;` (`&amp`). Unknown ones stay as written. Linear: each `&` looks
/// ahead at most the longest entity name, or over the digits of a number.
pub fn decode_entities(s: &str) -> Cow<'_, str> {
    htmlize::unescape(s)
}

/// Whether `link` starts with one of `schemes` (`https://`), in any case:
/// schemes are case-insensitive, so `HTTPS://` is a web link too.
pub(crate) fn has_scheme(link: &str, schemes: &[&str]) -> bool {
    schemes.iter().any(|scheme| {
        link.as_bytes()
            .get(..scheme.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(scheme.as_bytes()))
    })
}

/// An `href` as a browser follows it: references decoded, and the tabs and
/// line breaks the URL standard removes from anywhere in it gone (a link
/// written `reset&#10;password?token=...` still works, and was shown in two
/// pieces, its token unredacted).
fn link_as_followed(href: &str) -> String {
    let mut link = decode_attribute(href.trim()).into_owned();
    link.retain(|c| !matches!(c, '\t' | '\n' | '\r'));
    link
}

/// The character references of an attribute value (an `href`) decoded as a
/// browser follows it: as [`decode_entities`], except that a legacy name
/// without `;` before a letter, digit or `=` stays as written, so a link's
/// `?a=1&copy=2` keeps its `&copy=`.
pub fn decode_attribute(s: &str) -> Cow<'_, str> {
    htmlize::unescape_attribute(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A browser removes tabs and line breaks from a link: so does its
    /// text, so the link is read (and redacted) whole.
    #[test]
    fn a_link_is_shown_as_a_browser_follows_it() {
        let html = "<a href=\"https://signin.aws.amazon.com/reset&#10;password?token=F&#9;FF\n2\">Reset</a>";
        assert_eq!(
            html_to_text(html).trim(),
            "Reset (https://signin.aws.amazon.com/resetpassword?token=FFF2)"
        );
    }

    #[test]
    fn scripts_styles_and_images_vanish_links_stay_readable() {
        let html = r#"<html><head><title>t</title><style>p{color:red}</style></head><body>
            <script>alert(1)</script><p>Hello&nbsp;<b>world</b></p>
            <img src="https://tracker.example/p.gif" width=1 height=1>
            <a href="https://aws.amazon.com/billing?a=1&amp;b=2">Billing console</a>
            <iframe src="https://evil.example/"></iframe><ul><li>one</li><li>two</li></ul></body></html>"#;
        let text = html_to_text(html);
        assert!(!text.contains("alert"), "{text}");
        assert!(!text.contains("color:red"), "{text}");
        assert!(!text.contains("tracker.example"), "{text}");
        assert!(!text.contains("evil.example"), "{text}");
        assert!(text.contains("Hello world"), "{text}");
        assert!(
            text.contains("Billing console (https://aws.amazon.com/billing?a=1&b=2)"),
            "{text}"
        );
        assert!(text.contains("- one\n- two"), "{text}");
    }

    /// Every link target reaches the text, where the secret search reads
    /// it: after an image-only label, in capitals, and left open.
    #[test]
    fn every_link_target_is_shown_apart() {
        let button = html_to_text(
            r#"<p>Reset your password<a href="https://x.example/?token=1"><img src="cid:b"></a></p>"#,
        );
        assert_eq!(button, "Reset your password https://x.example/?token=1");
        let capitals = html_to_text(r#"<a href="HTTPS://X.EXAMPLE/?token=2">Reset</a>"#);
        assert_eq!(capitals, "Reset (HTTPS://X.EXAMPLE/?token=2)");
        let open =
            html_to_text(r#"<a href="https://a.example/1">one <a href="https://b.example/2">two"#);
        assert_eq!(open, "one (https://a.example/1) two (https://b.example/2)");
    }

    #[test]
    fn tags_are_read_in_any_case() {
        let text = html_to_text(
            "<SCRIPT>alert(1)</Script><P>one<BR>two</P><STYLE>p{}</STYLE><A HREF='https://x.example/a'>link</A>",
        );
        assert_eq!(text, "one\ntwo\nlink (https://x.example/a)");
    }

    #[test]
    fn broken_html_does_not_lose_text_or_panic() {
        assert_eq!(html_to_text("a < b and <unclosed"), "a < b and");
        assert_eq!(html_to_text("<p>x</p><!-- never closed"), "x");
        assert_eq!(
            html_to_text("<a href='https://x.example/'>https://x.example/</a>"),
            "https://x.example/"
        );
        assert_eq!(html_to_text("&#x41;&#66;&unknown;&amp"), "AB&unknown;&");
        let _ = html_to_text("<<<>>><a href=\"unterminated");
        let _ = html_to_text("<\u{1F600}é>");
    }

    #[test]
    fn every_html5_character_reference_is_decoded() {
        assert_eq!(
            decode_entities(
                "&AMP;&colon;&sol;&quest;&equals;&Lambda;&hellip;&NotNestedGreaterGreater;"
            ),
            "&:/?=Λ…\u{2AA2}\u{338}"
        );
        assert_eq!(decode_entities("&#38;&#x26;&#X26;&#0038;"), "&&&&");
        // In text a legacy name needs no `;`, as browsers show it; in a link's
        // query it stays as written when a letter, digit or `=` follows.
        assert_eq!(decode_entities("a=1&copy=2 &amp x"), "a=1©=2 & x");
        assert_eq!(
            decode_attribute("a=1&copy=2&notify=3&amp"),
            "a=1&copy=2&notify=3&"
        );
        assert_eq!(
            html_to_text("<a href=\"https://x.example/?a=1&copy=2\">go</a>"),
            "go (https://x.example/?a=1&copy=2)"
        );
    }

    #[test]
    fn malformed_character_references_stay_text_and_never_panic() {
        for (written, shown) in [
            ("&bogus", "&bogus"),
            ("&bogus;", "&bogus;"),
            ("&", "&"),
            ("&#", "&#"),
            ("&#;", "&#;"),
            ("&#x", "&#x"),
            ("&#x;", "&#x;"),
            ("&#xZZ;", "&#xZZ;"),
            // Invalid code points read as U+FFFD, as in a browser.
            ("&#0;", "\u{FFFD}"),
            ("&#xFFFFFFFF;", "\u{FFFD}"),
            ("&#xD800;", "\u{FFFD}"),
            ("&#99999999999999999999999;", "\u{FFFD}"),
            // Unterminated: decoded up to where the reference ends.
            ("&#x41", "A"),
            ("&#65x", "Ax"),
            ("&lt", "<"),
        ] {
            assert_eq!(decode_entities(written), shown, "{written}");
            let _ = decode_attribute(written);
            let _ = html_to_text(&format!("<p title=\"{written}\">{written}</p>"));
        }
    }
}
