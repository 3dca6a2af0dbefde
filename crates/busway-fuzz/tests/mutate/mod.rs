//! Deterministic inputs for the smoke run: a seeded generator, mutations of seed files in the
//! style of libFuzzer's (bit flips, token insertion, deletion, duplication, splicing), and
//! inputs built from tokens alone. Fixed seeds make every failure reproducible from the test's
//! output; the tokens are the bytes the parsers branch on, so a few thousand inputs reach more
//! than random bytes would.

/// SplitMix64: tiny, fast, and good enough to pick mutations; no dependency to keep in step.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform enough in `0..n`; `n` must be positive.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A stable seed per target name (FNV-1a), so each target gets its own reproducible sequence.
pub fn seed_for(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Inputs stay small: the parsers' cost is per byte, and small inputs keep the run short.
const MAX_LEN: usize = 16 * 1024;

const TOKENS: &[&[u8]] = &[
    b"[",
    b"]",
    b"[[",
    b"]]",
    b"=",
    b"\"",
    b"'",
    b"\"\"\"",
    b"\n",
    b"\r\n",
    b"\r",
    b" ",
    b"\t",
    b"#",
    b";",
    b",",
    b":",
    b"/",
    b"//",
    b"{",
    b"}",
    b".",
    b"\\",
    b"\\n",
    b"\\u0000",
    b"\0",
    "\u{e9}".as_bytes(),
    "\u{feff}".as_bytes(),
    b"\xff",
    b"0",
    b"1",
    b"65535",
    b"65536",
    b"-1",
    b"99999999999999999999",
    b"1.5s",
    b"0s",
    b"876000h",
    b"1e400",
    b"true",
    b"tcp://",
    b"unix://",
    b"srv://",
    b"grpc://",
    b"grpcs://",
    b"label:",
    b"mdns:",
    b"env:",
    b"[::1]",
    b"[::ffff:1.2.3.4]",
    b"127.0.0.1",
    b"0.0.0.0",
    b"_busway._tcp.",
    b"localhost",
    b"server=",
    b"backend=",
    b"bind=",
    b"mode=",
    b"half duplex",
    b"[Cloudbus]",
    b"[node]",
    b"[[service]]",
    b"[service.grpc]",
    b"name = ",
    b"listen = ",
    b"backends = ",
    b"peers = ",
    b"annotations",
    b"state_dir",
    b"labels = { a = \"b\" }",
];

fn token(rng: &mut Rng) -> &'static [u8] {
    TOKENS[rng.below(TOKENS.len())]
}

/// A range of `v`: a start and a length of at most `max`.
fn range(rng: &mut Rng, v: &[u8], max: usize) -> (usize, usize) {
    let start = rng.below(v.len() + 1);
    let len = rng.below(max.min(v.len() - start) + 1);
    (start, len)
}

/// One to four mutations of a seed picked from `seeds` (which must not be empty).
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(7) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let t = token(rng);
                v.splice(at..at, t.iter().copied());
            }
            2 => {
                let (start, len) = range(rng, &v, 16);
                v.drain(start..start + len);
            }
            3 => {
                let (start, len) = range(rng, &v, 64);
                let copy = v[start..start + len].to_vec();
                v.splice(at..at, copy);
            }
            4 => {
                let other = &seeds[rng.below(seeds.len())];
                let from = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[from..]);
            }
            5 => v.truncate(at),
            _ if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            _ => v.push(rng.next() as u8),
        }
    }
    v.truncate(MAX_LEN);
    v
}

/// An input made of tokens and the odd random byte, with no seed behind it.
pub fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut v = Vec::new();
    for _ in 0..rng.below(64) {
        if rng.below(8) == 0 {
            v.push(rng.next() as u8);
        } else {
            v.extend_from_slice(token(rng));
        }
    }
    v
}
