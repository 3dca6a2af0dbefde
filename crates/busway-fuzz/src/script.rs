//! The scripts the stateful targets read their steps from.

/// Reads the script: one byte at a time, zero once it runs out.
pub(crate) struct Script<'a>(pub(crate) &'a [u8]);

impl Script<'_> {
    pub(crate) fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                *b
            }
            None => 0,
        }
    }
    pub(crate) fn u16(&mut self) -> u16 {
        u16::from(self.byte()) << 8 | u16::from(self.byte())
    }
    pub(crate) fn done(&self) -> bool {
        self.0.is_empty()
    }
}
