//! Free text the platform stores (names, descriptions, references, operator names): one rule
//! for every such field, so no validator forgets it.
//!
//! Control characters (Unicode category Cc: C0 `U+0000`–`U+001F`, DEL `U+007F` and C1
//! `U+0080`–`U+009F`) are refused. They have no place in a name a shop displays, some are
//! refused by the stores downstream (PostgreSQL refuses `U+0000` in `text` and `jsonb`, so one
//! such record could never reach the views), and others reorder or hide what an operator reads
//! in a log or a terminal.
//!
//! Descriptions are written as paragraphs, so [`TextKind::Multiline`] lets line feed (`\n`)
//! and tab (`\t`) through: both are ordinary in prose, every store and JSON encoder takes them,
//! and a storefront renders them as whitespace. Carriage returns are not let through: a
//! browser's text area already sends `\n`, and a lone `\r` rewrites terminal lines.

use super::violation::{Violation, Violations};

/// The stable code of the violation.
pub const CONTROL_CHARACTER: &str = "control_character";

/// What a text field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// One line: a name, an id-like reference, an operator's name. No control character.
    Line,
    /// Prose: a description. Line feeds and tabs allowed, no other control character.
    Multiline,
}

impl TextKind {
    fn refuses(self, c: char) -> bool {
        c.is_control() && !(self == Self::Multiline && matches!(c, '\n' | '\t'))
    }
}

/// The violation of `text` at `field`, when it holds a control character `kind` refuses.
pub fn control_character(
    field: impl Into<String>,
    text: &str,
    kind: TextKind,
) -> Option<Violation> {
    let (position, c) = text.char_indices().find(|(_, c)| kind.refuses(*c))?;
    Some(Violation::new(
        CONTROL_CHARACTER,
        field,
        format!(
            "control character U+{:04X} at byte {position}: text may not contain control characters{}",
            u32::from(c),
            match kind {
                TextKind::Line => "",
                TextKind::Multiline => " other than line feed and tab",
            }
        ),
    ))
}

impl Violations {
    /// Adds the [`control_character`] violation of `text`, if any.
    pub fn check_text(&mut self, field: impl Into<String>, text: &str, kind: TextKind) {
        if let Some(violation) = control_character(field, text, kind) {
            self.add(violation);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_and_every_other_control_character_is_refused_with_the_field() {
        let v = control_character("name", "Plan\u{0}X", TextKind::Line).unwrap();
        assert_eq!(
            (v.code.as_str(), v.field.as_str()),
            (CONTROL_CHARACTER, "name")
        );
        assert!(v.detail.contains("U+0000"), "{}", v.detail);
        for bad in [
            "\u{1}",
            "a\u{1b}[2J",
            "\u{7f}",
            "x\u{85}",
            "\u{9f}",
            "\r",
            "a\nb",
        ] {
            assert!(
                control_character("f", bad, TextKind::Line).is_some(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ordinary_text_passes_and_descriptions_may_have_lines_and_tabs() {
        for good in [
            "",
            "Fri 5G",
            "Æble – 299,00 kr.",
            "日本語",
            "a\u{2028}b",
            "🙂",
        ] {
            assert_eq!(
                control_character("f", good, TextKind::Line),
                None,
                "{good:?}"
            );
        }
        let prose = "First paragraph.\n\n\tSecond one.";
        assert_eq!(control_character("f", prose, TextKind::Multiline), None);
        assert!(control_character("f", prose, TextKind::Line).is_some());
        assert!(control_character("f", "a\r\nb", TextKind::Multiline).is_some());
        assert!(control_character("f", "a\u{0}b", TextKind::Multiline).is_some());
    }

    #[test]
    fn violations_collect_it() {
        let mut v = Violations::default();
        v.check_text("a", "fine", TextKind::Line);
        v.check_text("b", "bad\u{0}", TextKind::Line);
        let all = v.into_vec();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].field, "b");
    }
}
