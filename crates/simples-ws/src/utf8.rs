//! Incremental UTF-8 validation that fails at the first invalid byte.
//!
//! RFC 6455 §8.1: when an endpoint is to interpret a byte stream as UTF-8 and
//! finds that it is not valid UTF-8, it MUST _Fail the WebSocket
//! Connection_. Autobahn's strict cases (6.4.x) expect the failure as soon as
//! the invalid byte arrives, not when the message (or even the frame) ends,
//! so the validator is fed every piece of a text message as it arrives and
//! carries an incomplete trailing code point over to the next piece.
//!
//! The bulk validation is `simdutf8::compat`, which reports, like the
//! standard library, whether an error is a definitely invalid byte or only a
//! sequence cut short by the end of the input.

/// Streaming validator for one text message (or one close reason).
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    /// Bytes of a code point that the last piece ended in the middle of.
    pending: [u8; 4],
    pending_len: u8,
}

/// The input is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

impl Utf8Validator {
    /// A validator at the start of a message.
    pub const fn new() -> Self {
        Utf8Validator { pending: [0; 4], pending_len: 0 }
    }

    /// Validates the next piece of the message.
    ///
    /// Returns `Err` as soon as any byte makes the sequence invalid, even if
    /// the code point it belongs to is not complete yet.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let need = sequence_len(self.pending[0]).ok_or(InvalidUtf8)?;
            let take = (need - have).min(input.len());
            let mut tmp = [0u8; 4];
            tmp[..have].copy_from_slice(&self.pending[..have]);
            tmp[have..have + take].copy_from_slice(&input[..take]);
            match simdutf8::compat::from_utf8(&tmp[..have + take]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_none() => {
                    // Still incomplete, and the input is exhausted.
                    self.pending = tmp;
                    self.pending_len = (have + take) as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
            input = &input[take..];
        }
        match simdutf8::compat::from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    let rest = &input[e.valid_up_to()..];
                    // An incomplete sequence is at most 3 bytes long.
                    self.pending[..rest.len()].copy_from_slice(rest);
                    self.pending_len = rest.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// Ends the message: fails if it stopped in the middle of a code point.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let complete = self.pending_len == 0;
        self.pending_len = 0;
        if complete {
            Ok(())
        } else {
            Err(InvalidUtf8)
        }
    }

    /// True when no partial code point is carried over.
    pub fn is_clean(&self) -> bool {
        self.pending_len == 0
    }
}

/// Length of the UTF-8 sequence a lead byte starts, if it can start one.
fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_in_pieces(data: &[u8], split: usize) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        v.feed(&data[..split])?;
        v.feed(&data[split..])?;
        v.finish()
    }

    #[test]
    fn every_split_of_valid_text_is_valid() {
        let s = "κόσμε a€𝄞 ü";
        for split in 0..=s.len() {
            assert_eq!(valid_in_pieces(s.as_bytes(), split), Ok(()), "split {split}");
        }
    }

    #[test]
    fn byte_at_a_time() {
        let s = "héllo 𝄞 wörld €".as_bytes();
        let mut v = Utf8Validator::new();
        for b in s {
            v.feed(std::slice::from_ref(b)).unwrap();
        }
        v.finish().unwrap();
    }

    #[test]
    fn fails_at_first_invalid_byte_even_mid_code_point() {
        // U+110000 and above: F4 90 is already invalid after two bytes.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[b'a', 0xf4]), Ok(()));
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
        // A surrogate: ED A0 is invalid after two bytes.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xed, 0xa0]), Err(InvalidUtf8));
        // Overlong: C0 is never valid.
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xc0]), Err(InvalidUtf8));
    }

    #[test]
    fn truncated_message_fails_at_finish() {
        let mut v = Utf8Validator::new();
        assert_eq!(v.feed(&[0xe2, 0x82]), Ok(()));
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn agrees_with_std_on_every_split() {
        let samples: &[&[u8]] = &[
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            b"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf",
            b"\xef\xbf\xbe\xef\xbf\xbf",
            b"\xf8\x88\x80\x80\x80",
            b"abc\xe0\x80\xaf",
        ];
        for s in samples {
            let expected = std::str::from_utf8(s).is_ok();
            for split in 0..=s.len() {
                assert_eq!(valid_in_pieces(s, split).is_ok(), expected, "{s:?} at {split}");
            }
        }
    }
}
