//! Interstellar extinction: A0 per star (none, uniform screen, or from a hydrogen column) and
//! the colour-dependent Gaia (E)DR3 band extinctions.
//!
//! Band extinctions: `A_X = k_X A0`, with the Gaia EDR3 extinction law (Riello et al. 2021,
//! A&A 649, A3; ESA page <https://www.cosmos.esa.int/web/gaia/edr3-extinction-law>, file
//! `Fitz19_EDR3_MainSequence.csv`, rows `Xname = BPRP`, Fitzpatrick et al. 2019 curve):
//!
//! `k = a1 + a2 X + a3 X² + a4 X³ + a5 A0 + a6 A0² + a7 A0³ + a8 X A0 + a9 A0 X² + a10 X A0²`,
//!
//! `X = (G_BP − G_RP)0` the intrinsic colour, clamped to the fit's range [−0.06, 2.5].
//! A0 is the monochromatic extinction at 550 nm; we take A0 = A_V.
//!
//! Hydrogen column → A_V: `A_V = N_H / (2.21 × 10²¹ cm⁻² mag⁻¹)` (Güver & Özel 2009, MNRAS 400,
//! 2050), optionally × Z / Z_ref (dust-to-gas ratio proportional to metallicity). Bohlin,
//! Savage & Drake (1978) give N_H / E(B−V) = 5.8 × 10²¹, i.e. 1.87 × 10²¹ per A_V at R_V = 3.1:
//! [`NH_PER_AV_BOHLIN`].

/// Güver & Özel (2009) N_H / A_V (cm⁻² mag⁻¹).
pub const NH_PER_AV_GUVER_OZEL: f64 = 2.21e21;
/// Bohlin et al. (1978) N_H / E(B−V) = 5.8e21 at R_V = 3.1, per A_V (cm⁻² mag⁻¹).
pub const NH_PER_AV_BOHLIN: f64 = 5.8e21 / 3.1;

/// Solar metal mass fraction of the PARSEC v1.2S isochrones (Bressan et al. 2012, after Caffau
/// et al. 2011): the reference Z of a dust-to-gas ratio proportional to metallicity.
pub const Z_SUN_PARSEC: f64 = 0.0152;

/// Valid range of the intrinsic colour X = (BP − RP)0 of the EDR3 law.
pub const EDR3_LAW_COLOUR_RANGE: (f64, f64) = (-0.06, 2.5);

/// EDR3 law coefficients a1..a10 (BPRP, main sequence) for G.
const K_G: [f64; 10] = [
    0.995969721536602,
    -0.159726460302015,
    0.0122380738156057,
    0.00090726555099859,
    -0.0377160263914123,
    0.00151347495244888,
    -2.52364537395142e-05,
    0.0114522658102451,
    -0.000936914989014318,
    -0.000260296774134201,
];
/// EDR3 law coefficients for G_BP.
const K_BP: [f64; 10] = [
    1.15363197483424,
    -0.0814012991657388,
    -0.036013023976704,
    0.0192143585568966,
    -0.022397548243016,
    0.000840562680547171,
    -1.31018008013549e-05,
    0.00660124080271006,
    -0.000882247501989453,
    -0.000111215755291684,
];
/// EDR3 law coefficients for G_RP.
const K_RP: [f64; 10] = [
    0.66320787941067,
    -0.0179847164933981,
    0.000493769449961458,
    -0.00267994405695751,
    -0.00651422146709376,
    3.30179903473159e-05,
    1.57894227641527e-06,
    -7.9800898337247e-05,
    0.000255679812110045,
    1.10476584967393e-05,
];

fn k_of(a: &[f64; 10], x: f64, a0: f64) -> f64 {
    a[0] + a[1] * x
        + a[2] * x * x
        + a[3] * x * x * x
        + a[4] * a0
        + a[5] * a0 * a0
        + a[6] * a0 * a0 * a0
        + a[7] * x * a0
        + a[8] * a0 * x * x
        + a[9] * x * a0 * a0
}

/// Gaia band extinctions (A_G, A_BP, A_RP) in mag for A0 (mag) and intrinsic (BP − RP)0.
///
/// No dust (A0 = 0) gives exactly zero, whatever the colour (also NaN colours of remnants).
pub fn gaia_band_extinction(a0: f64, bp_rp0: f64) -> [f64; 3] {
    if a0 == 0.0 {
        return [0.0; 3];
    }
    let x = bp_rp0.clamp(EDR3_LAW_COLOUR_RANGE.0, EDR3_LAW_COLOUR_RANGE.1);
    [
        k_of(&K_G, x, a0) * a0,
        k_of(&K_BP, x, a0) * a0,
        k_of(&K_RP, x, a0) * a0,
    ]
}

/// How A0 (= A_V, mag) is assigned to stars.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DustModel {
    /// No extinction.
    None,
    /// The same A0 for every star (mag).
    Constant(f64),
    /// A uniform screen: A0 = rate × heliocentric distance (mag per kpc).
    PerKpc(f64),
}

impl DustModel {
    /// A0 (mag) of a star at `distance_kpc`.
    pub fn a0(&self, distance_kpc: f64) -> f64 {
        match *self {
            DustModel::None => 0.0,
            DustModel::Constant(a) => a,
            DustModel::PerKpc(r) => r * distance_kpc,
        }
    }
}

/// A_V (mag) of a hydrogen column `nh_cm2` (cm⁻²) with `nh_per_av` (cm⁻² mag⁻¹), e.g.
/// [`NH_PER_AV_GUVER_OZEL`]; `metal_ratio` = Z / Z_ref scales the dust-to-gas ratio (1 for none).
pub fn av_from_column(nh_cm2: f64, nh_per_av: f64, metal_ratio: f64) -> f64 {
    nh_cm2 / nh_per_av * metal_ratio
}

/// Reddened photometry of a batch: intrinsic apparent magnitudes and A0 in, columns out.
#[derive(Debug, Clone, Default)]
pub struct Reddened {
    /// A0 = A_V (mag).
    pub a0: Vec<f64>,
    /// A_G (mag).
    pub a_g: Vec<f64>,
    /// A_BP (mag).
    pub a_bp: Vec<f64>,
    /// A_RP (mag).
    pub a_rp: Vec<f64>,
    /// Reddened apparent G (mag).
    pub g: Vec<f64>,
    /// Reddened apparent G_BP (mag).
    pub bp: Vec<f64>,
    /// Reddened apparent G_RP (mag).
    pub rp: Vec<f64>,
}

/// Apply extinction to a batch of intrinsic (unreddened) apparent G, BP, RP with per-star A0.
/// The intrinsic colour (BP − RP)0 sets the coefficients. Slices must have equal lengths.
pub fn redden(g0: &[f64], bp0: &[f64], rp0: &[f64], a0: &[f64]) -> crate::Result<Reddened> {
    let n = g0.len();
    if bp0.len() != n || rp0.len() != n || a0.len() != n {
        return Err(crate::SurveyError::Invalid(format!(
            "redden: slice lengths differ (G {n}, BP {}, RP {}, A0 {})",
            bp0.len(),
            rp0.len(),
            a0.len()
        )));
    }
    let mut r = Reddened::default();
    for i in 0..n {
        let [ag, abp, arp] = gaia_band_extinction(a0[i], bp0[i] - rp0[i]);
        r.a0.push(a0[i]);
        r.a_g.push(ag);
        r.a_bp.push(abp);
        r.a_rp.push(arp);
        r.g.push(g0[i] + ag);
        r.bp.push(bp0[i] + abp);
        r.rp.push(rp0[i] + arp);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_column_gives_zero_extinction() {
        let a0 = av_from_column(0.0, NH_PER_AV_GUVER_OZEL, 1.0);
        assert_eq!(a0, 0.0);
        assert_eq!(gaia_band_extinction(a0, 0.8), [0.0, 0.0, 0.0]);
        assert_eq!(gaia_band_extinction(0.0, f64::NAN), [0.0, 0.0, 0.0]);
        assert_eq!(DustModel::None.a0(3.0), 0.0);
    }

    #[test]
    fn coefficients_are_the_published_ones() {
        // In the A0 -> 0 limit at X = 0, k is the table's intercept.
        let a0 = 1e-9;
        let [g, bp, rp] = gaia_band_extinction(a0, 0.0);
        assert!((g / a0 - 0.995969721536602).abs() < 1e-8);
        assert!((bp / a0 - 1.15363197483424).abs() < 1e-8);
        assert!((rp / a0 - 0.66320787941067).abs() < 1e-8);
        // A Sun-like star, (BP-RP)0 = 0.82, A0 = 1, term by term from the table:
        let x: f64 = 0.82;
        let kg = 0.995969721536602 - 0.159726460302015 * x
            + 0.0122380738156057 * x * x
            + 0.00090726555099859 * x.powi(3)
            - 0.0377160263914123
            + 0.00151347495244888
            - 2.52364537395142e-05
            + 0.0114522658102451 * x
            - 0.000936914989014318 * x * x
            - 0.000260296774134201 * x;
        let [g, bp, rp] = gaia_band_extinction(1.0, x);
        assert!((g - kg).abs() < 1e-14);
        // Literature A_G / A0 of a solar-type star at A0 = 1: about 0.83-0.86.
        assert!((0.83..0.86).contains(&kg), "{kg}");
        // Reddening E(BP-RP) / A0 of a G dwarf is about 0.43.
        assert!(((bp - rp) - 0.43).abs() < 0.03, "{}", bp - rp);
        // Colour clamped outside the fit.
        assert_eq!(
            gaia_band_extinction(1.0, 4.0),
            gaia_band_extinction(1.0, 2.5)
        );
    }

    #[test]
    fn redden_adds_band_extinctions() {
        let r = redden(&[15.0, 16.0], &[15.5, 16.9], &[14.4, 15.1], &[0.0, 2.0]).unwrap();
        assert_eq!(r.g[0], 15.0);
        let [ag, abp, arp] = gaia_band_extinction(2.0, 1.8);
        assert_eq!(
            (r.g[1], r.bp[1], r.rp[1]),
            (16.0 + ag, 16.9 + abp, 15.1 + arp)
        );
        assert!(redden(&[1.0], &[1.0], &[], &[0.0]).is_err());
        // Uniform screen: 0.7 mag per kpc at 3 kpc.
        assert!((DustModel::PerKpc(0.7).a0(3.0) - 2.1).abs() < 1e-15);
        // Güver & Özel: 2.21e21 cm^-2 is one magnitude; half-solar metals halve it.
        assert!((av_from_column(4.42e21, NH_PER_AV_GUVER_OZEL, 0.5) - 1.0).abs() < 1e-12);
    }
}
