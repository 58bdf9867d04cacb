//! Deterministic randomness. Every stream is seeded by SHA-256 of everything it depends on,
//! so a draw is a pure function of the seed and of what the draw is for.

use sha2::{Digest, Sha256};

/// A SplitMix64 generator. Not cryptographic: it only has to look random and be repeatable.
pub(crate) struct Rng(u64);

impl Rng {
    /// A stream keyed by `parts`. Each part is length-prefixed, so no two different lists of
    /// parts hash alike.
    pub(crate) fn keyed(parts: &[&[u8]]) -> Self {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        let digest = hasher.finalize();
        let mut first = [0u8; 8];
        for (to, from) in first.iter_mut().zip(digest.iter()) {
            *to = *from;
        }
        Self(u64::from_le_bytes(first))
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n`; 0 when `n` is 0.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        // Multiply-shift maps 64 random bits onto 0..n without the bias of `%`.
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`; `lo` when the range is empty.
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        if hi <= lo {
            return lo;
        }
        let span = hi.abs_diff(lo).saturating_add(1);
        lo.saturating_add_unsigned(self.below(span))
    }

    /// True with probability `per_mille` / 1000.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }

    /// One element of a non-empty table.
    pub(crate) fn pick<'a, T, const N: usize>(&mut self, items: &'a [T; N]) -> &'a T {
        const { assert!(N > 0, "cannot pick from an empty table") };
        let i = usize::try_from(self.below(N as u64)).unwrap_or(0);
        &items[i.min(N - 1)]
    }

    /// `n` random decimal digits.
    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + u8::try_from(self.below(10)).unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_gives_the_same_stream_and_another_key_another() {
        let mut a = Rng::keyed(&[b"seed", b"giro"]);
        let mut b = Rng::keyed(&[b"seed", b"giro"]);
        let mut c = Rng::keyed(&[b"seedg", b"iro"]);
        let xs: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
    }

    #[test]
    fn draws_stay_in_their_ranges() {
        let mut rng = Rng::keyed(&[b"ranges"]);
        for _ in 0..10_000 {
            let x = rng.between(-5, 5);
            assert!((-5..=5).contains(&x));
            assert!(rng.below(3) < 3);
            assert_eq!(rng.digits(4).len(), 4);
        }
        assert_eq!(rng.below(0), 0);
        assert_eq!(rng.between(7, 7), 7);
        assert_eq!(rng.between(7, 2), 7);
    }
}
