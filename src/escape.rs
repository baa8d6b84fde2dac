//! Outside text in logs. A tool name a model chose, a provider's error, a
//! worker's message may hold newlines and terminal escapes; written as they
//! are into a text log they could end the line and forge another one (an
//! `ERROR` that never happened) or restyle the terminal. This module
//! imports nothing, so every layer can use it.

use std::fmt::{self, Write as _};

/// Text from outside (what a model chose, what a provider or a worker
/// answered), as a log field (`%Escaped(&name)`): control
/// characters (newlines, carriage returns, the escape of ANSI sequences)
/// and the invisible characters that reorder text are written escaped
/// (`\u{a}`, `\u{1b}`), so the value cannot end the log line, start a forged
/// one or restyle it; anything else is written as it is.
pub(crate) struct Escaped<'a>(pub(crate) &'a str);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            let reorders = matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
            if c.is_control() || reorders {
                write!(f, "{}", c.escape_unicode())?;
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}
