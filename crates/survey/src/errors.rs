//! Gaia-like uncertainties and observed values: astrometry, G/BP/RP photometry, radial velocity.
//!
//! Sources (all sky-averaged, as on the Gaia science performance pages,
//! <https://www.cosmos.esa.int/web/gaia/science-performance>):
//! - Parallax, (E)DR3: `σ_ϖ = sqrt(40 + 800 z + 30 z²)` µas, `z = 10^(0.4 (max(G, 13) − 15))`
//!   (bright floor at G = 13; Lindegren et al. 2021, A&A 649, A2). Positions:
//!   `σ_α* = 0.80 σ_ϖ`, `σ_δ = 0.70 σ_ϖ` (µas); proper motions:
//!   `σ_µα* = 1.03 σ_ϖ`, `σ_µδ = 0.89 σ_ϖ` (µas/yr).
//! - DR4 / DR5 (66 / 132 months instead of 34, 33.12 / 59 / 119 effective months): parallax and
//!   positions × `sqrt(33.12 / T)` = 0.749 / 0.527; proper motions a further × `33.12 / T`
//!   (t^−1.5 in all): factors 0.58/0.50 (DR4) and 0.29/0.25 (DR5) of σ_ϖ. The 10% "science
//!   margin" of the performance pages is not applied.
//! - Photometry: the Gaia DPAC median (E)DR3 uncertainty model (Riello et al. 2021, A&A 649, A3;
//!   gaia-dpci/gaia-dr3-photometric-uncertainties, MIT): cubic B-splines of `log10 σ` vs
//!   magnitude for `n_ref` observations (G 200, BP/RP 20), scaled as `sqrt(n_ref / n)` with the
//!   release's median number of observations (G 351 / 620 / 1240, BP/RP 40 / 70 / 140 for
//!   DR3 / DR4 / DR5). Magnitudes outside [4, 21] take the edge value.
//! - Radial velocity, DR3 (Katz et al. 2023, A&A 674, A5, as on the performance pages):
//!   `σ_v = σ_floor + b exp(a (G_RVS − G_RVS,0))` with (a, b, σ_floor, G_RVS,0) per Teff/log g
//!   group; published only for `G_RVS ≤ 14` and σ_v ≤ 20 km/s. DR4/DR5: the DR3 model × 0.749 /
//!   0.527 (photon-noise scaling with mission length, an approximation of ours), `G_RVS ≤ 16`.
//!   `G_RVS` from G and G_RP (Sartoretti et al. 2023, A&A 674, A6, Eqs. 9-10), `x = G − G_RP`
//!   clamped to [−0.15, 1.7].
//!
//! Observed = true + N(0, σ): draws come from an rng the caller passes in ([`observe`], one
//! per batch), or from [`star_rng`] ([`observe_per_star`], one per star from the run seed and a
//! star id: independent of batching and threads). Each star takes 9 normal draws in a fixed
//! order (α, δ, ϖ, µα*, µδ, v_r, G, BP, RP), drawn even where σ is NaN.

use crate::error::{Result, SurveyError};
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

/// Gaia data release whose uncertainties are simulated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GaiaRelease {
    /// (E)DR3: 34 months.
    #[default]
    Dr3,
    /// DR4: 66 months.
    Dr4,
    /// DR5: 132 months.
    Dr5,
}

impl GaiaRelease {
    /// Parse `dr3`, `dr4`, `dr5` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "dr3" | "edr3" => Ok(GaiaRelease::Dr3),
            "dr4" => Ok(GaiaRelease::Dr4),
            "dr5" => Ok(GaiaRelease::Dr5),
            _ => Err(SurveyError::Invalid(format!(
                "unknown Gaia release `{s}` (expected dr3, dr4 or dr5)"
            ))),
        }
    }

    /// Effective astrometric time span relative to (E)DR3, `T / 33.12 months`.
    fn time_ratio(self) -> f64 {
        match self {
            GaiaRelease::Dr3 => 1.0,
            GaiaRelease::Dr4 => 59.0 / 33.12,
            GaiaRelease::Dr5 => 119.0 / 33.12,
        }
    }

    /// Factor on parallax and position uncertainties relative to (E)DR3: `1 / sqrt(T ratio)`.
    pub fn astrometric_factor(self) -> f64 {
        1.0 / self.time_ratio().sqrt()
    }

    /// Median number of observations (G, BP/RP) in this release.
    fn n_obs(self) -> (f64, f64) {
        match self {
            GaiaRelease::Dr3 => (351.0, 40.0),
            GaiaRelease::Dr4 => (620.0, 70.0),
            GaiaRelease::Dr5 => (1240.0, 140.0),
        }
    }

    /// Faintest G_RVS with a published radial velocity.
    pub fn grvs_limit(self) -> f64 {
        match self {
            GaiaRelease::Dr3 => 14.0,
            _ => 16.0,
        }
    }
}

/// Parallax uncertainty (µas) at magnitude G for a release (see the module docs).
pub fn parallax_sigma_uas(g: f64, release: GaiaRelease) -> f64 {
    let z = 10f64.powf(0.4 * (g.max(13.0) - 15.0));
    (40.0 + 800.0 * z + 30.0 * z * z).sqrt() * release.astrometric_factor()
}

/// Position uncertainties (σ_α*, σ_δ) in µas at magnitude G.
pub fn position_sigma_uas(g: f64, release: GaiaRelease) -> (f64, f64) {
    let p = parallax_sigma_uas(g, release);
    (0.80 * p, 0.70 * p)
}

/// Proper-motion uncertainties (σ_µα*, σ_µδ) in µas/yr at magnitude G.
pub fn proper_motion_sigma_uasyr(g: f64, release: GaiaRelease) -> (f64, f64) {
    let p = parallax_sigma_uas(g, release) / release.time_ratio();
    (1.03 * p, 0.89 * p)
}

/// A Gaia passband.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GaiaBand {
    /// G.
    G,
    /// G_BP.
    Bp,
    /// G_RP.
    Rp,
}

/// DPAC (E)DR3 log10 σ(mag) B-spline knots and coefficients for G (n_ref = 200).
const SPLINE_G_KNOTS: [f64; 37] = [
    4.01667, 4.01667, 4.01667, 4.01667, 5.0, 6.0, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0, 10.2, 10.4,
    10.6, 10.8, 11.0, 11.2, 11.4, 11.6, 11.8, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0,
    20.5, 20.9, 20.98333, 20.98333, 20.98333, 20.98333,
];
const SPLINE_G_COEFFS: [f64; 33] = [
    -2.79887909,
    -3.08151944,
    -2.84639276,
    -3.56581772,
    -3.72691989,
    -3.60270497,
    -3.5436255,
    -3.55291006,
    -3.69643657,
    -3.64899144,
    -3.67061528,
    -3.53485525,
    -3.4978671,
    -3.8080462,
    -3.70531135,
    -3.65814306,
    -3.49039948,
    -3.4627759,
    -3.65010982,
    -3.67777902,
    -3.58065738,
    -3.59787309,
    -3.63099015,
    -3.4425947,
    -3.2403399,
    -3.01000111,
    -2.782245,
    -2.50489,
    -2.27662556,
    -2.08203507,
    -1.98780053,
    -1.93253788,
    -1.90632763,
];
/// Knots shared by the BP and RP splines (n_ref = 20).
const SPLINE_XP_KNOTS: [f64; 25] = [
    4.01667, 4.01667, 4.01667, 4.01667, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0,
    15.0, 16.0, 17.0, 18.0, 19.0, 20.0, 20.9, 20.98333, 20.98333, 20.98333, 20.98333,
];
const SPLINE_BP_COEFFS: [f64; 21] = [
    -2.32338865,
    -2.7347354,
    -3.17685799,
    -2.85931381,
    -3.06319467,
    -3.03465194,
    -3.24178883,
    -3.21522612,
    -3.20568965,
    -3.02017022,
    -3.08397926,
    -2.97514949,
    -2.75388736,
    -2.49080265,
    -2.19398139,
    -1.88249501,
    -1.51867789,
    -1.22363879,
    -0.97861134,
    -0.89172014,
    -0.88153184,
];
const SPLINE_RP_COEFFS: [f64; 21] = [
    -2.47826261,
    -2.60799603,
    -2.57160952,
    -3.23730068,
    -3.0577367,
    -3.39917882,
    -3.39272922,
    -3.48046476,
    -3.2825215,
    -3.32760274,
    -3.14042529,
    -2.93931369,
    -2.66040611,
    -2.36268719,
    -2.00067133,
    -1.67932569,
    -1.36591438,
    -0.96526757,
    -0.84902968,
    -0.81220472,
    -0.79051121,
];

/// Cubic B-spline value at `x` (de Boor), `x` clamped to the base interval.
fn bspline3(knots: &[f64], coeffs: &[f64], x: f64) -> f64 {
    let n = coeffs.len();
    debug_assert_eq!(knots.len(), n + 4);
    let x = x.clamp(knots[3], knots[n]);
    // Span k with knots[k] <= x < knots[k+1], 3 <= k <= n-1.
    let k = (knots.partition_point(|&t| t <= x).saturating_sub(1)).clamp(3, n - 1);
    let mut d = [coeffs[k - 3], coeffs[k - 2], coeffs[k - 1], coeffs[k]];
    for r in 1..=3 {
        for j in (r..=3).rev() {
            let lo = knots[j + k - 3];
            let hi = knots[j + 1 + k - r];
            let alpha = if hi > lo { (x - lo) / (hi - lo) } else { 0.0 };
            d[j] = (1.0 - alpha) * d[j - 1] + alpha * d[j];
        }
    }
    d[3]
}

/// Photometric uncertainty (mag) of a band at its own magnitude, for a release.
pub fn photometric_sigma_mag(band: GaiaBand, mag: f64, release: GaiaRelease) -> f64 {
    let (ng, nxp) = release.n_obs();
    let (log_sigma, n, n_ref) = match band {
        GaiaBand::G => (bspline3(&SPLINE_G_KNOTS, &SPLINE_G_COEFFS, mag), ng, 200.0),
        GaiaBand::Bp => (
            bspline3(&SPLINE_XP_KNOTS, &SPLINE_BP_COEFFS, mag),
            nxp,
            20.0,
        ),
        GaiaBand::Rp => (
            bspline3(&SPLINE_XP_KNOTS, &SPLINE_RP_COEFFS, mag),
            nxp,
            20.0,
        ),
    };
    10f64.powf(log_sigma) * (n_ref / n).sqrt()
}

/// G_RVS (mag) from G and G_RP (Sartoretti et al. 2023, Eqs. 9-10; G − G_RP clamped to
/// [−0.15, 1.7]).
pub fn grvs_from_g_rp(g: f64, rp: f64) -> f64 {
    let x = (g - rp).clamp(-0.15, 1.7);
    let d = if x <= 1.2 {
        -0.0397 - 0.2852 * x - 0.0330 * x * x - 0.0867 * x * x * x
    } else {
        -4.0618 + 10.0187 * x - 9.0532 * x * x + 2.6089 * x * x * x
    };
    rp + d
}

/// One (Teff, log g) group of the DR3 radial-velocity uncertainty model.
struct RvGroup {
    teff: (f64, f64, bool),
    logg: (f64, f64, bool),
    a: f64,
    b: f64,
    floor: f64,
    grvs0: f64,
}

/// Katz et al. (2023) DR3 groups: Teff range (K), log g range; `true` = upper bound inclusive.
const RV_GROUPS: [RvGroup; 11] = [
    RvGroup {
        teff: (3000.0, 4000.0, false),
        logg: (4.0, 5.0, true),
        a: 0.95,
        b: 5.0,
        floor: 0.32,
        grvs0: 13.5,
    },
    RvGroup {
        teff: (4000.0, 5000.0, false),
        logg: (4.0, 5.0, true),
        a: 0.90,
        b: 5.0,
        floor: 0.13,
        grvs0: 14.0,
    },
    RvGroup {
        teff: (5000.0, 6000.0, false),
        logg: (3.5, 5.0, true),
        a: 0.90,
        b: 7.0,
        floor: 0.13,
        grvs0: 14.0,
    },
    RvGroup {
        teff: (6000.0, 7000.0, false),
        logg: (3.5, 5.0, true),
        a: 0.85,
        b: 9.0,
        floor: 0.13,
        grvs0: 14.0,
    },
    RvGroup {
        teff: (7000.0, 8000.0, false),
        logg: (3.5, 5.0, true),
        a: 0.80,
        b: 5.0,
        floor: 0.45,
        grvs0: 12.0,
    },
    RvGroup {
        teff: (8000.0, 10000.0, false),
        logg: (3.5, 5.0, true),
        a: 0.80,
        b: 11.0,
        floor: 0.80,
        grvs0: 12.0,
    },
    RvGroup {
        teff: (10000.0, 14500.0, true),
        logg: (3.5, 5.0, true),
        a: 1.00,
        b: 3.0,
        floor: 1.00,
        grvs0: 10.0,
    },
    RvGroup {
        teff: (3000.0, 4750.0, true),
        logg: (-0.5, 1.0, false),
        a: 1.00,
        b: 6.0,
        floor: 0.16,
        grvs0: 14.0,
    },
    RvGroup {
        teff: (3500.0, 5250.0, true),
        logg: (1.0, 2.0, false),
        a: 1.00,
        b: 5.5,
        floor: 0.13,
        grvs0: 14.0,
    },
    RvGroup {
        teff: (4000.0, 5500.0, true),
        logg: (2.0, 3.0, false),
        a: 1.00,
        b: 6.0,
        floor: 0.12,
        grvs0: 14.0,
    },
    RvGroup {
        teff: (4500.0, 5500.0, true),
        logg: (3.0, 3.5, false),
        a: 1.00,
        b: 7.0,
        floor: 0.12,
        grvs0: 14.0,
    },
];

fn in_range(x: f64, (lo, hi, hi_incl): (f64, f64, bool)) -> bool {
    x >= lo && (x < hi || (hi_incl && x == hi))
}

/// Radial-velocity uncertainty (km/s) from G_RVS (mag), Teff (K) and log g (cgs); NaN where
/// the release publishes no radial velocity (too faint, outside the model's Teff/log g groups,
/// or σ > 20 km/s).
pub fn radial_velocity_sigma_kms(grvs: f64, teff: f64, logg: f64, release: GaiaRelease) -> f64 {
    if grvs.is_nan() || grvs > release.grvs_limit() {
        return f64::NAN;
    }
    // Dwarf groups first, then giants; the last group (log g 3.5-4, 4500-5000 K) shares
    // coefficients with the one before.
    let group = RV_GROUPS
        .iter()
        .find(|g| in_range(teff, g.teff) && in_range(logg, g.logg))
        .or_else(|| {
            (in_range(teff, (4500.0, 5000.0, false)) && in_range(logg, (3.5, 4.0, false)))
                .then_some(&RV_GROUPS[10])
        });
    let Some(g) = group else {
        return f64::NAN;
    };
    let s = g.floor + g.b * (g.a * (grvs - g.grvs0)).exp();
    if s > 20.0 {
        return f64::NAN;
    }
    s * release.astrometric_factor()
}

/// A reproducible per-star random generator from the run seed and a star id (SplitMix64
/// mixing of both, then `StdRng`): draws do not depend on batching or thread count.
pub fn star_rng(seed: u64, star_id: u64) -> rand::rngs::StdRng {
    let mut z = seed ^ star_id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    rand::rngs::StdRng::seed_from_u64(z)
}

/// True values of a batch of stars (parallel slices), the inputs of [`observe`].
#[derive(Debug, Clone, Copy)]
pub struct TrueObservables<'a> {
    /// ICRS right ascension (deg).
    pub ra_deg: &'a [f64],
    /// ICRS declination (deg).
    pub dec_deg: &'a [f64],
    /// Parallax (mas).
    pub parallax_mas: &'a [f64],
    /// pmra × cos δ (mas/yr).
    pub pmra_cosdec_masyr: &'a [f64],
    /// pmdec (mas/yr).
    pub pmdec_masyr: &'a [f64],
    /// Radial velocity (km/s).
    pub radial_velocity_kms: &'a [f64],
    /// Apparent G (mag, extincted).
    pub g_mag: &'a [f64],
    /// Apparent G_BP (mag, extincted).
    pub bp_mag: &'a [f64],
    /// Apparent G_RP (mag, extincted).
    pub rp_mag: &'a [f64],
    /// Effective temperature (K).
    pub teff_k: &'a [f64],
    /// Surface gravity log g (cgs).
    pub logg: &'a [f64],
}

/// Observed values and their σ for a batch (units as in [`TrueObservables`]; σ of positions
/// in mas, NaN radial velocity where none is published).
#[derive(Debug, Clone, Default)]
pub struct ObservedColumns {
    /// Observed right ascension (deg).
    pub ra_deg: Vec<f64>,
    /// σ of α* = α cos δ (mas).
    pub ra_cosdec_error_mas: Vec<f64>,
    /// Observed declination (deg).
    pub dec_deg: Vec<f64>,
    /// σ of δ (mas).
    pub dec_error_mas: Vec<f64>,
    /// Observed parallax (mas).
    pub parallax_mas: Vec<f64>,
    /// σ of the parallax (mas).
    pub parallax_error_mas: Vec<f64>,
    /// Observed pmra × cos δ (mas/yr).
    pub pmra_cosdec_masyr: Vec<f64>,
    /// σ of pmra × cos δ (mas/yr).
    pub pmra_error_masyr: Vec<f64>,
    /// Observed pmdec (mas/yr).
    pub pmdec_masyr: Vec<f64>,
    /// σ of pmdec (mas/yr).
    pub pmdec_error_masyr: Vec<f64>,
    /// Observed radial velocity (km/s; NaN where not published).
    pub radial_velocity_kms: Vec<f64>,
    /// σ of the radial velocity (km/s; NaN where not published).
    pub radial_velocity_error_kms: Vec<f64>,
    /// G_RVS (mag) used for the radial-velocity model.
    pub grvs_mag: Vec<f64>,
    /// Observed G (mag).
    pub g_mag: Vec<f64>,
    /// σ of G (mag).
    pub g_mag_error: Vec<f64>,
    /// Observed G_BP (mag).
    pub bp_mag: Vec<f64>,
    /// σ of G_BP (mag).
    pub bp_mag_error: Vec<f64>,
    /// Observed G_RP (mag).
    pub rp_mag: Vec<f64>,
    /// σ of G_RP (mag).
    pub rp_mag_error: Vec<f64>,
}

fn check_lengths(truth: &TrueObservables, ids: Option<&[u64]>) -> Result<usize> {
    let n = truth.g_mag.len();
    let lens = [
        truth.ra_deg.len(),
        truth.dec_deg.len(),
        truth.parallax_mas.len(),
        truth.pmra_cosdec_masyr.len(),
        truth.pmdec_masyr.len(),
        truth.radial_velocity_kms.len(),
        truth.bp_mag.len(),
        truth.rp_mag.len(),
        truth.teff_k.len(),
        truth.logg.len(),
    ];
    if lens.iter().any(|&l| l != n) {
        return Err(SurveyError::Invalid(format!(
            "observe: input slices differ in length (G has {n}; others {lens:?})"
        )));
    }
    if let Some(ids) = ids {
        if ids.len() != n {
            return Err(SurveyError::Invalid(format!(
                "observe: {} star ids for {n} stars",
                ids.len()
            )));
        }
    }
    Ok(n)
}

/// Gaia-like observation of a batch, drawing in star order from one generator:
/// σ from the release's model, observed = true + N(0, σ).
pub fn observe<R: rand::Rng + ?Sized>(
    truth: &TrueObservables,
    release: GaiaRelease,
    rng: &mut R,
) -> Result<ObservedColumns> {
    let n = check_lengths(truth, None)?;
    let mut o = ObservedColumns::default();
    for i in 0..n {
        observe_star(truth, i, release, rng, &mut o);
    }
    Ok(o)
}

/// As [`observe`], with one generator per star, [`star_rng`]`(seed, ids[i])`: the draws of a
/// star do not depend on the batch it is in.
pub fn observe_per_star(
    truth: &TrueObservables,
    release: GaiaRelease,
    seed: u64,
    ids: &[u64],
) -> Result<ObservedColumns> {
    let n = check_lengths(truth, Some(ids))?;
    let mut o = ObservedColumns::default();
    for (i, &id) in ids.iter().enumerate().take(n) {
        observe_star(truth, i, release, &mut star_rng(seed, id), &mut o);
    }
    Ok(o)
}

/// Observe star `i` of `truth`, appending to `o`.
fn observe_star<R: rand::Rng + ?Sized>(
    truth: &TrueObservables,
    i: usize,
    release: GaiaRelease,
    rng: &mut R,
    o: &mut ObservedColumns,
) {
    let mut gauss = || -> f64 { StandardNormal.sample(rng) };
    let g = truth.g_mag[i];
    let (sa, sd) = position_sigma_uas(g, release);
    let (sa, sd) = (sa * 1e-3, sd * 1e-3);
    let dec = truth.dec_deg[i];
    let mas_deg = 1.0 / 3.6e6;
    let cosd = dec.to_radians().cos().max(1e-12);
    o.ra_deg
        .push((truth.ra_deg[i] + gauss() * sa * mas_deg / cosd).rem_euclid(360.0));
    o.ra_cosdec_error_mas.push(sa);
    o.dec_deg
        .push((dec + gauss() * sd * mas_deg).clamp(-90.0, 90.0));
    o.dec_error_mas.push(sd);
    let sp = parallax_sigma_uas(g, release) * 1e-3;
    o.parallax_mas.push(truth.parallax_mas[i] + gauss() * sp);
    o.parallax_error_mas.push(sp);
    let (spa, spd) = proper_motion_sigma_uasyr(g, release);
    let (spa, spd) = (spa * 1e-3, spd * 1e-3);
    o.pmra_cosdec_masyr
        .push(truth.pmra_cosdec_masyr[i] + gauss() * spa);
    o.pmra_error_masyr.push(spa);
    o.pmdec_masyr.push(truth.pmdec_masyr[i] + gauss() * spd);
    o.pmdec_error_masyr.push(spd);
    let grvs = grvs_from_g_rp(g, truth.rp_mag[i]);
    let sv = radial_velocity_sigma_kms(grvs, truth.teff_k[i], truth.logg[i], release);
    let dv = gauss();
    o.radial_velocity_kms
        .push(truth.radial_velocity_kms[i] + dv * sv);
    o.radial_velocity_error_kms.push(sv);
    o.grvs_mag.push(grvs);
    for (band, m, obs, err) in [
        (GaiaBand::G, g, &mut o.g_mag, &mut o.g_mag_error),
        (
            GaiaBand::Bp,
            truth.bp_mag[i],
            &mut o.bp_mag,
            &mut o.bp_mag_error,
        ),
        (
            GaiaBand::Rp,
            truth.rp_mag[i],
            &mut o.rp_mag,
            &mut o.rp_mag_error,
        ),
    ] {
        let s = photometric_sigma_mag(band, m, release);
        obs.push(m + gauss() * s);
        err.push(s);
    }
}
