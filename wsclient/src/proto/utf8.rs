//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! Owns the state carried between pieces (a code point cut at a piece
//! boundary) so that invalid text fails on the first bad byte, mid-message,
//! instead of after the whole message has been buffered. The fast path is
//! `simdutf8`'s SIMD validator; only the few bytes of a split code point are
//! handled here.

/// Validates a byte stream as UTF-8, piece by piece.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of a code point begun in an earlier piece (at most 3).
    partial: [u8; 4],
    partial_len: u8,
}

/// The text is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a text.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates the next piece.
    ///
    /// # Errors
    /// [`InvalidUtf8`] as soon as a byte cannot be part of valid UTF-8.
    pub fn feed(&mut self, mut piece: &[u8]) -> Result<(), InvalidUtf8> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = sequence_len(self.partial[0]).ok_or(InvalidUtf8)?;
            let take = (need - have).min(piece.len());
            self.partial[have..have + take].copy_from_slice(&piece[..take]);
            let now = have + take;
            piece = &piece[take..];
            match simdutf8::compat::from_utf8(&self.partial[..now]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_none() && now < need => {
                    // Still a valid prefix of a code point; more to come.
                    self.partial_len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match simdutf8::compat::from_utf8(piece) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                // A valid prefix of a code point at the end: keep it.
                let tail = &piece[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(InvalidUtf8),
        }
    }

    /// Ends the text.
    ///
    /// # Errors
    /// [`InvalidUtf8`] when the text stops inside a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.partial_len == 0;
        self.partial_len = 0;
        if complete { Ok(()) } else { Err(InvalidUtf8) }
    }

    /// Forgets any state, ready for a new text.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

/// The length of the code point a lead byte starts, if it can start one.
fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7F => Some(1),
        0xC2..=0xDF => Some(2),
        0xE0..=0xEF => Some(3),
        0xF0..=0xF4 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check_pieces(data: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut at = 0;
        for &c in cuts {
            let c = c.clamp(at, data.len());
            v.feed(&data[at..c])?;
            at = c;
        }
        v.feed(&data[at..])?;
        v.finish()
    }

    #[test]
    fn fails_fast_on_first_bad_byte() {
        let mut v = Utf8Validator::new();
        assert!(v.feed("κόσμε".as_bytes()).is_ok());
        // 0xF5 can never appear in UTF-8: fails at once, before the text ends.
        assert_eq!(v.feed(&[0xF5]), Err(InvalidUtf8));
    }

    #[test]
    fn split_code_point_then_invalid_continuation() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xE2, 0x82]).is_ok());
        assert_eq!(v.feed(&[0x41]), Err(InvalidUtf8));
    }

    #[test]
    fn surrogate_prefix_fails_early() {
        // ED A0 starts a UTF-16 surrogate: invalid even before the third byte.
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xED]).is_ok());
        assert_eq!(v.feed(&[0xA0]), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_at_end_fails_on_finish() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xF0, 0x9F, 0x98]).is_ok());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    proptest! {
        #[test]
        fn any_chunking_agrees_with_std(data in proptest::collection::vec(any::<u8>(), 0..64), cuts in proptest::collection::vec(0usize..64, 0..8)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            let expected = std::str::from_utf8(&data).is_ok();
            prop_assert_eq!(check_pieces(&data, &cuts).is_ok(), expected);
        }

        #[test]
        fn valid_strings_in_any_chunking(s in "\\PC{0,40}", cuts in proptest::collection::vec(0usize..160, 0..8)) {
            let mut cuts = cuts;
            cuts.sort_unstable();
            prop_assert!(check_pieces(s.as_bytes(), &cuts).is_ok());
        }
    }
}
