//! `busway gen-secret`: a bus secret nobody has to invent.
//!
//! 32 bytes from the operating system's generator (through `rand`'s `OsRng`-seeded thread
//! generator, a CSPRNG) are 256 bits, far beyond guessing even by someone who recorded a
//! handshake; hex keeps the value safe to paste into TOML, an environment file or a shell.

use std::fmt::Write;
use std::process::ExitCode;

/// Bytes of a generated secret.
const SECRET_BYTES: usize = 32;

pub fn run() -> ExitCode {
    println!("{}", generate());
    ExitCode::SUCCESS
}

fn generate() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    let mut out = String::with_capacity(2 * SECRET_BYTES);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_four_hex_digits_and_never_the_same() {
        let a = generate();
        assert_eq!(a.len(), 64);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, generate());
    }
}
