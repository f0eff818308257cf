//! How text reads to a person: look-alike characters (Cyrillic `а`, Greek `ο`,
//! fullwidth and mathematical letters, `0` for `o`, `rn` for `m`) read as one
//! form, so a sender name or domain that imitates AWS's is caught however it
//! is written.

use unicode_normalization::char::is_combining_mark;
use unicode_security::skeleton;

/// `text` as a reader takes it: Unicode's confusable skeleton (UTS #39, from
/// `unicode-security`), with case and accents ignored. Compare a reading only
/// with another reading: the skeleton reads `m` as `rn`, so `amazon` reads as
/// `arnazon`, and so does `arnazon`.
///
/// In order: the few look-alikes UTS #39 does not equate are folded first
/// ([`fold_beyond_uts39`]); the skeleton reads upper case as its Latin
/// look-alike (Cyrillic `Н` as `H`); lower-cased, the text is read again
/// (`AMAZON` as `arnazon`); accents are dropped (`amazón`); `vv` reads as `w`.
/// Linear: each step is one pass (the skeleton's normalization sorts each run
/// of combining marks, a few characters in real text).
pub fn reads_as(text: &str) -> String {
    let folded: String = text.chars().map(fold_beyond_uts39).collect();
    let cased = skeleton(&folded).collect::<String>().to_lowercase();
    skeleton(&cased)
        .filter(|c| !is_combining_mark(*c))
        .collect::<String>()
        .to_lowercase()
        .replace("vv", "w")
}

/// Look-alikes that UTS #39 keeps apart from the Latin letter but that a
/// reader of a sender name may take for it: lower-case Cyrillic and Greek
/// letters shaped like small capitals or Latin letters (`к`, `м`, `т`, `ω`,
/// `χ`); the ideographic full stops, which the skeleton reads as `˳`; and
/// fullwidth ASCII, whose `－` it reads as the katakana `ー`.
/// `every_look_alike_reads_as_its_latin_letter` and
/// `the_skeleton_alone_keeps_these_apart` show each one is needed.
fn fold_beyond_uts39(c: char) -> char {
    match c {
        '\u{ff01}'..='\u{ff5e}' => char::from_u32(u32::from(c) - 0xfee0).unwrap_or(c),
        '\u{3002}' | '\u{ff61}' => '.',
        'в' | 'β' => 'b',
        'ε' => 'e',
        'к' | 'κ' => 'k',
        'м' | 'μ' | 'ʍ' => 'm',
        'т' | 'τ' => 't',
        'ω' => 'w',
        'χ' => 'x',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each group reads as its letter. These are the look-alikes a hand-written
    /// table held before UTS #39 replaced it: the skeleton alone reads the
    /// ones [`fold_beyond_uts39`] folds otherwise.
    #[test]
    fn every_look_alike_reads_as_its_latin_letter() {
        let mut misread = Vec::new();
        for (look_alikes, letter) in [
            ("0оОοΟòóôõöøō", "o"),
            ("1ӏӀ", "l"),
            // Capitals read as their Latin capital, where the hand table had
            // the small letter: І and Ι as I (so as l), Ν as N, Υ as Y.
            ("ІΙ", "l"),
            ("Ν", "n"),
            ("Υ", "y"),
            ("аАαΑàáâãäåāăąɑ", "a"),
            ("вВβΒ", "b"),
            ("сСçćč", "c"),
            ("ԁ", "d"),
            ("еЕёεΕèéêëēėę", "e"),
            ("һНΗ", "h"),
            // The hand table read η as h; UTS #39 reads it as n, its shape.
            ("η", "n"),
            ("іїιìíîïıīįɩ", "i"),
            ("јЈ", "j"),
            ("кКκΚ", "k"),
            ("мМμΜʍ", "m"),
            ("рРρΡ", "p"),
            ("ԛ", "q"),
            ("ѕЅśšş", "s"),
            ("тТτΤ", "t"),
            ("уУγýÿ", "y"),
            ("ԝԜω", "w"),
            ("хХχΧ", "x"),
            ("ν", "v"),
            ("υùúûüūů", "u"),
            ("Ζźżž", "z"),
            ("ñńň", "n"),
            ("ɡ", "g"),
            ("\u{3002}\u{ff61}", "."),
        ] {
            for c in look_alikes.chars() {
                if reads_as(&c.to_string()) != reads_as(letter) {
                    misread.push(format!(
                        "{c} (U+{:04X}) reads as {:?}, not {letter:?}",
                        u32::from(c),
                        reads_as(&c.to_string())
                    ));
                }
            }
        }
        // Fullwidth forms read as their ASCII character.
        for ascii in '!'..='~' {
            let fullwidth = char::from_u32(u32::from(ascii) + 0xfee0).expect("fullwidth");
            if reads_as(&fullwidth.to_string()) != reads_as(&ascii.to_string()) {
                misread.push(format!(
                    "{fullwidth} reads as {:?}, not {:?}",
                    reads_as(&fullwidth.to_string()),
                    reads_as(&ascii.to_string())
                ));
            }
        }
        assert!(misread.is_empty(), "{misread:#?}");
    }

    #[test]
    fn the_skeleton_alone_keeps_these_apart() {
        // Why `fold_beyond_uts39` exists: without it, these differ.
        for (c, letter) in [
            ('к', "k"),
            ('м', "m"),
            ('т', "t"),
            ('ω', "w"),
            ('χ', "x"),
            ('\u{3002}', "."),
            ('\u{ff0d}', "-"),
        ] {
            let bare: String = skeleton(&c.to_string()).collect();
            assert_ne!(bare, skeleton(letter).collect::<String>(), "{c}");
        }
    }

    #[test]
    fn readings_compare_with_readings() {
        let amazon = reads_as("amazon.com");
        assert_eq!(amazon, "arnazon.corn");
        for written in [
            "AMAZON.COM",
            "am\u{430}zon.com",
            "amaz0n.com",
            "arnazon.com",
            "amaz\u{3bf}n.com",
            "amaz\u{f3}n.com",
            // Mathematical bold and Armenian օ: no hand table had them.
            "\u{1d41a}\u{1d426}\u{1d41a}\u{1d433}\u{1d428}\u{1d427}.com",
            "amaz\u{585}n.com",
            "\u{ff41}\u{ff4d}\u{ff41}\u{ff5a}\u{ff4f}\u{ff4e}\u{3002}com",
        ] {
            assert_eq!(reads_as(written), amazon, "{written}");
        }
        assert_eq!(reads_as("a\u{1d430}s"), reads_as("aws"));
        assert_eq!(reads_as("avvs"), reads_as("aws"));
        assert_eq!(reads_as(&amazon), amazon, "a reading reads as itself");
        assert_ne!(reads_as("laws"), reads_as("aws"));
        assert_ne!(reads_as("amazonses.com"), amazon);
    }
}
