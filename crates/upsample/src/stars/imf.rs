//! Initial mass function (IMF) sampling and main-sequence lifetimes.
//!
//! The default IMF is Kroupa (2001, MNRAS 322, 231, eq. 2): a broken power law
//! ξ(m) ∝ m^-α with α = 0.3 below 0.08 Msun, 1.3 from 0.08 to 0.5 Msun and 2.3 above, made
//! continuous at the breaks. Stars are drawn against each particle's *initial* mass: the number
//! of stars of a particle is Poisson with mean f · M_init / ⟨m⟩ (f the star fraction), so the
//! expected initial mass of its stars is exactly f · M_init and the scatter is Poisson noise.
//!
//! A star is alive if its main-sequence lifetime exceeds the particle's age; the lifetime is the
//! textbook scaling t_MS = 10 Gyr (m / Msun)^-2.5 (e.g. Kippenhahn & Weigert; Hansen, Kawaler &
//! Trimble, "Stellar Interiors", ch. 1). Stars past it are removed (no remnants are made), and
//! living stars keep their initial mass (main-sequence mass loss is neglected).

use anyhow::{bail, Result};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, Poisson};
use serde::{Deserialize, Serialize};

/// Which stars are still alive at their parent's age: the star assembly's lifetime cut.
pub trait Lifetime: Sync {
    /// Whether a star of initial mass `m` (Msun) born `age_gyr` ago with metal mass fraction
    /// `z` is still a star (not a remnant).
    fn alive(&self, m: f64, age_gyr: f64, z: f64) -> bool;
}

/// The default cut: alive while the main-sequence lifetime [`main_sequence_lifetime_gyr`] is
/// not shorter than the age (metallicity ignored).
#[derive(Debug, Clone, Copy, Default)]
pub struct MainSequenceScaling;

impl Lifetime for MainSequenceScaling {
    fn alive(&self, m: f64, age_gyr: f64, _z: f64) -> bool {
        // The same comparison as ever (no inversion of the relation: no rounding change).
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        !(main_sequence_lifetime_gyr(m) < age_gyr)
    }
}

/// Main-sequence lifetime of a star of initial mass `m` (Msun), in Gyr: 10 Gyr · m^-2.5.
pub(crate) fn main_sequence_lifetime_gyr(m: f64) -> f64 {
    10.0 * m.powf(-2.5)
}

/// A broken power-law IMF ξ(m) ∝ m^-α between mass breaks, truncated to [m_min, m_max] (Msun).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImfConfig {
    /// Lowest stellar mass drawn, Msun.
    pub m_min: f64,
    /// Highest stellar mass drawn, Msun.
    pub m_max: f64,
    /// Interior break masses, Msun, increasing (Kroupa: 0.08, 0.5).
    pub breaks: Vec<f64>,
    /// Slopes α of ξ ∝ m^-α, one more than `breaks` (Kroupa: 0.3, 1.3, 2.3).
    pub slopes: Vec<f64>,
}

impl Default for ImfConfig {
    /// Kroupa (2001) between 0.08 and 100 Msun.
    fn default() -> Self {
        Self {
            m_min: 0.08,
            m_max: 100.0,
            breaks: vec![0.08, 0.5],
            slopes: vec![0.3, 1.3, 2.3],
        }
    }
}

/// One power-law piece of the IMF on [lo, hi].
#[derive(Debug, Clone)]
struct Segment {
    lo: f64,
    hi: f64,
    alpha: f64,
    /// Coefficient making ξ continuous: ξ(m) = coef · m^-α.
    coef: f64,
    /// Cumulative number fraction at `hi`.
    cdf_hi: f64,
}

/// A sampler for a normalised IMF (number fractions and mass moments precomputed).
#[derive(Debug, Clone)]
pub struct Imf {
    segments: Vec<Segment>,
    mean_mass: f64,
}

/// ∫_lo^hi m^p dm.
fn power_integral(lo: f64, hi: f64, p: f64) -> f64 {
    if (p + 1.0).abs() < 1e-12 {
        (hi / lo).ln()
    } else {
        (hi.powf(p + 1.0) - lo.powf(p + 1.0)) / (p + 1.0)
    }
}

impl Imf {
    /// Builds the sampler, checking that the configuration is a valid IMF.
    pub fn new(cfg: &ImfConfig) -> Result<Imf> {
        if !(cfg.m_min > 0.0 && cfg.m_max > cfg.m_min && cfg.m_max.is_finite()) {
            bail!(
                "IMF mass range must satisfy 0 < m_min < m_max (Msun), got [{}, {}]",
                cfg.m_min,
                cfg.m_max
            );
        }
        if cfg.slopes.len() != cfg.breaks.len() + 1 {
            bail!(
                "IMF needs one slope more than breaks, got {} slopes and {} breaks",
                cfg.slopes.len(),
                cfg.breaks.len()
            );
        }
        if cfg.breaks.windows(2).any(|w| w[1] <= w[0]) || cfg.breaks.iter().any(|b| *b <= 0.0) {
            bail!(
                "IMF breaks must be positive and increasing, got {:?}",
                cfg.breaks
            );
        }
        // Continuous piecewise power law over the full break list, then clipped to the range.
        let mut edges = vec![0.0];
        edges.extend(cfg.breaks.iter().copied());
        edges.push(f64::INFINITY);
        let mut coef = 1.0;
        let mut pieces = Vec::new();
        for (i, alpha) in cfg.slopes.iter().enumerate() {
            if i > 0 {
                // ξ continuous at edges[i]: coef_i b^-α_i = coef_{i-1} b^-α_{i-1}.
                let b = edges[i];
                coef *= b.powf(alpha - cfg.slopes[i - 1]);
            }
            let lo = edges[i].max(cfg.m_min);
            let hi = edges[i + 1].min(cfg.m_max);
            if hi > lo {
                pieces.push((lo, hi, *alpha, coef));
            }
        }
        let numbers: Vec<f64> = pieces
            .iter()
            .map(|(lo, hi, a, c)| c * power_integral(*lo, *hi, -a))
            .collect();
        let masses: Vec<f64> = pieces
            .iter()
            .map(|(lo, hi, a, c)| c * power_integral(*lo, *hi, 1.0 - a))
            .collect();
        let n_total: f64 = numbers.iter().sum();
        let mut cum = 0.0;
        let segments = pieces
            .iter()
            .zip(&numbers)
            .map(|((lo, hi, alpha, coef), n)| {
                cum += n / n_total;
                Segment {
                    lo: *lo,
                    hi: *hi,
                    alpha: *alpha,
                    coef: *coef / n_total,
                    cdf_hi: cum,
                }
            })
            .collect();
        Ok(Imf {
            segments,
            mean_mass: masses.iter().sum::<f64>() / n_total,
        })
    }

    /// Mean stellar mass ⟨m⟩ of the IMF, Msun.
    pub fn mean_mass(&self) -> f64 {
        self.mean_mass
    }

    /// Normalised number density dN/dm at `m` (per Msun); zero outside [m_min, m_max].
    pub fn pdf(&self, m: f64) -> f64 {
        self.segments
            .iter()
            .find(|s| m >= s.lo && m <= s.hi)
            .map_or(0.0, |s| s.coef * m.powf(-s.alpha))
    }

    /// Draws one stellar initial mass, Msun (inverse transform within a segment).
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        let u: f64 = rng.random();
        // The segment holding u (the last one takes any rounding excess of the cumulative sum).
        let i = self
            .segments
            .iter()
            .position(|s| u <= s.cdf_hi)
            .unwrap_or(self.segments.len() - 1);
        let s = &self.segments[i];
        let lower = if i == 0 {
            0.0
        } else {
            self.segments[i - 1].cdf_hi
        };
        let v = ((u - lower) / (s.cdf_hi - lower)).clamp(0.0, 1.0);
        let p = 1.0 - s.alpha;
        if p.abs() < 1e-12 {
            s.lo * (s.hi / s.lo).powf(v)
        } else {
            let (a, b) = (s.lo.powf(p), s.hi.powf(p));
            (a + v * (b - a)).powf(1.0 / p)
        }
    }

    /// Number of stars to draw for a particle of initial mass `initial_mass` (Msun) when a
    /// fraction `fraction` of all stars is wanted: Poisson with mean fraction · M_init / ⟨m⟩.
    pub fn star_count<R: Rng + ?Sized>(
        &self,
        initial_mass: f64,
        fraction: f64,
        rng: &mut R,
    ) -> u64 {
        let lambda = fraction * initial_mass / self.mean_mass;
        if lambda <= 0.0 || !lambda.is_finite() {
            return 0;
        }
        match Poisson::new(lambda) {
            Ok(p) => p.sample(rng) as u64,
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::SeedableRng;

    #[test]
    fn kroupa_mean_mass_matches_the_integral() {
        // Hand integral for Kroupa on [0.08, 100] (continuous at 0.5: k2 = 0.5^{1.0} k1):
        // N = ∫ m^-1.3 (0.08..0.5) + 0.5 ∫ m^-2.3 (0.5..100); M = ∫ m^-0.3 + 0.5 ∫ m^-1.3.
        let n = (0.08f64.powf(-0.3) - 0.5f64.powf(-0.3)) / 0.3
            + 0.5 * (0.5f64.powf(-1.3) - 100f64.powf(-1.3)) / 1.3;
        let m = (0.5f64.powf(0.7) - 0.08f64.powf(0.7)) / 0.7
            + 0.5 * (0.5f64.powf(-0.3) - 100f64.powf(-0.3)) / 0.3;
        let imf = Imf::new(&ImfConfig::default()).unwrap();
        assert!(
            (imf.mean_mass() - m / n).abs() < 1e-12,
            "{} vs {}",
            imf.mean_mass(),
            m / n
        );
        // Kroupa's mean stellar mass above the hydrogen-burning limit is a few tenths of a Msun.
        assert!(imf.mean_mass() > 0.4 && imf.mean_mass() < 0.7);
    }

    #[test]
    fn samples_follow_the_imf() {
        let imf = Imf::new(&ImfConfig::default()).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let n = 400_000;
        let ms: Vec<f64> = (0..n).map(|_| imf.sample(&mut rng)).collect();
        assert!(ms.iter().all(|m| (0.08..=100.0).contains(m)));
        let mean = ms.iter().sum::<f64>() / n as f64;
        // The mean of a heavy-tailed law: compare with a loose 5-sigma bound from the variance.
        let var = ms.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - imf.mean_mass()).abs() < 5.0 * (var / n as f64).sqrt());
        // Fraction of stars in [0.08, 0.5] against the integral of the pdf.
        let frac = ms.iter().filter(|m| **m < 0.5).count() as f64 / n as f64;
        let steps = 20_000;
        let h = (0.5 - 0.08) / steps as f64;
        let expected: f64 = (0..steps)
            .map(|i| imf.pdf(0.08 + (i as f64 + 0.5) * h) * h)
            .sum();
        let sigma = (expected * (1.0 - expected) / n as f64).sqrt();
        assert!(
            (frac - expected).abs() < 5.0 * sigma,
            "{frac} vs {expected}"
        );
        // Slope above 1 Msun: log-log counts in two decades ratio = ∫1..10 / ∫10..100 = 10^1.3.
        let a = ms.iter().filter(|m| (1.0..10.0).contains(*m)).count() as f64;
        let b = ms.iter().filter(|m| (10.0..100.0).contains(*m)).count() as f64;
        let ratio = a / b;
        assert!(
            (ratio / 10f64.powf(1.3) - 1.0).abs() < 4.0 * (1.0 / a + 1.0 / b).sqrt(),
            "{ratio}"
        );
    }

    #[test]
    fn star_counts_conserve_initial_mass_within_poisson_noise() {
        let imf = Imf::new(&ImfConfig::default()).unwrap();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(9);
        let m_init = 5000.0;
        let particles = 200;
        let mut total = 0.0;
        let mut count = 0u64;
        for _ in 0..particles {
            let k = imf.star_count(m_init, 1.0, &mut rng);
            count += k;
            total += (0..k).map(|_| imf.sample(&mut rng)).sum::<f64>();
        }
        let target = m_init * particles as f64;
        // Var of a compound Poisson sum = λ E[m²].
        let m2: f64 = (0..200_000)
            .map(|_| imf.sample(&mut rng).powi(2))
            .sum::<f64>()
            / 200_000.0;
        let sigma = (target / imf.mean_mass() * m2).sqrt();
        assert!(
            (total - target).abs() < 4.0 * sigma,
            "{total} vs {target} ± {sigma}"
        );
        assert!(count > 0);
    }

    #[test]
    fn lifetimes_and_bad_configs() {
        assert!((main_sequence_lifetime_gyr(1.0) - 10.0).abs() < 1e-12);
        assert!((main_sequence_lifetime_gyr(2.0) - 10.0 / 2f64.powf(2.5)).abs() < 1e-12);
        assert!(Imf::new(&ImfConfig {
            m_min: 1.0,
            m_max: 0.5,
            ..Default::default()
        })
        .is_err());
        assert!(Imf::new(&ImfConfig {
            slopes: vec![1.0],
            ..Default::default()
        })
        .is_err());
        // A single power law (Salpeter) from the same code.
        let s = Imf::new(&ImfConfig {
            m_min: 0.1,
            m_max: 100.0,
            breaks: vec![],
            slopes: vec![2.35],
        })
        .unwrap();
        let n = power_integral(0.1, 100.0, -2.35);
        let m = power_integral(0.1, 100.0, -1.35);
        assert!((s.mean_mass() - m / n).abs() < 1e-12);
    }
}
