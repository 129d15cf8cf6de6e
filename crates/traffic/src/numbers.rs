//! Small deterministic number tools: seeded streams, a hash for draws that must not depend on
//! the order of other draws, and apportionment of a whole number by weights.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// A seeded ChaCha8 stream (portable: the same seed gives the same numbers everywhere).
pub(crate) fn stream(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Mixes two numbers into one well-spread number (SplitMix64's finalizer over their sum):
/// used to derive independent seeds and order-free draws from the one seed.
pub(crate) fn mix(seed: u64, value: u64) -> u64 {
    let mut z = seed.wrapping_add(value.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The top 53 bits of `value` as a number in [0, 1).
pub(crate) fn unit(value: u64) -> f64 {
    (value >> 11) as f64 / (1u64 << 53) as f64
}

/// Splits `total` into whole parts proportional to `weights` (largest remainder; ties go to
/// the lower index). The parts add up to `total` exactly; all weights zero gives all zeros.
pub(crate) fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    if weights.is_empty() || sum <= 0.0 {
        return vec![0; weights.len()];
    }
    let shares: Vec<f64> = weights.iter().map(|weight| total as f64 * weight / sum).collect();
    let mut parts: Vec<u64> = shares.iter().map(|share| share.floor() as u64).collect();
    let given: u64 = parts.iter().sum();
    let mut order: Vec<usize> = (0..weights.len()).filter(|index| weights[*index] > 0.0).collect();
    order.sort_by(|a, b| {
        let remainder = |index: usize| shares[index] - shares[index].floor();
        remainder(*b).total_cmp(&remainder(*a)).then(a.cmp(b))
    });
    // Rounding can leave the floors a little above or below; walk the remainders either way.
    let mut left = total.saturating_sub(given);
    for index in order.iter().cycle().take(order.len() * 2) {
        if left == 0 {
            break;
        }
        parts[*index] += 1;
        left -= 1;
    }
    let mut over = parts.iter().sum::<u64>().saturating_sub(total);
    for index in order.iter().rev() {
        if over == 0 {
            break;
        }
        if parts[*index] > 0 {
            parts[*index] -= 1;
            over -= 1;
        }
    }
    // INVARIANT: the parts account for the total exactly.
    assert_eq!(parts.iter().sum::<u64>(), total, "apportion of {total} by {weights:?}");
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_adds_up_and_follows_the_weights() {
        assert_eq!(apportion(10, &[1.0, 1.0]), vec![5, 5]);
        assert_eq!(apportion(10, &[1.0, 0.0, 3.0]), vec![3, 0, 7]);
        assert_eq!(apportion(1, &[1.0, 1.0, 1.0]), vec![1, 0, 0]);
        assert_eq!(apportion(7, &[0.0, 0.0]), vec![0, 0]);
        let weights: Vec<f64> = (1..=97).map(|weight| f64::from(weight) * 0.37).collect();
        for total in [0, 1, 96, 97, 1_000, 10_000_000] {
            assert_eq!(apportion(total, &weights).iter().sum::<u64>(), total);
        }
    }

    #[test]
    fn mix_spreads_neighbouring_inputs() {
        assert_ne!(mix(1, 1), mix(1, 2));
        assert_ne!(mix(1, 2), mix(2, 1));
        let draws: Vec<f64> = (0..1_000).map(|value| unit(mix(7, value))).collect();
        assert!(draws.iter().all(|draw| (0.0..1.0).contains(draw)));
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
    }
}
