//! The generator's randomness: SplitMix64 (deterministic, seedable, no dependency) and a
//! Zipf-like rank.

/// A rank in `0..n` drawn from a continuous approximation of Zipf's law with `exponent`.
pub(super) fn zipf_rank(rng: &mut SplitMix, n: u32, exponent: f64) -> u32 {
    if n <= 1 {
        return 0;
    }
    let n_float = f64::from(n);
    let draw = rng.unit();
    // Inverse of the CDF of density x^-s on [1, n + 1).
    let x = if (exponent - 1.0).abs() < 1e-9 {
        (n_float + 1.0).powf(draw)
    } else {
        let power = 1.0 - exponent;
        (1.0 + draw * ((n_float + 1.0).powf(power) - 1.0)).powf(1.0 / power)
    };
    ((x as u32).saturating_sub(1)).min(n - 1)
}

/// SplitMix64's output function: a good 64-bit mix of a counter or a key.
pub(super) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// SplitMix64: small, fast, and the same on every platform.
pub(super) struct SplitMix {
    state: u64,
}

impl SplitMix {
    pub(super) fn new(seed: u64) -> SplitMix {
        SplitMix { state: seed }
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.state)
    }

    /// Uniform in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (0 when `n` is 0).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}
