//! One call per batch of stars and per observer: photometry, astrometry, extinction, Gaia
//! errors and the magnitude cut, composed in that order.
//!
//! Chain per star: isochrone (Mini, age, Z) → absolute G, BP, RP (remnants: NaN); observer →
//! astrometry and distance modulus; intrinsic apparent = absolute + distance modulus; A0 from
//! the dust source; reddened apparent = intrinsic + A_X(A0, (BP − RP)0); observed = reddened /
//! true astrometry + Gaia noise (per-star draws from `(seed, id)`); selected = observed G within
//! the cut.

use crate::astrometry::{AstrometryColumns, SkyProjector};
use crate::error::{Result, SurveyError};
use crate::errors::{observe_per_star, GaiaRelease, ObservedColumns, TrueObservables};
use crate::extinction::{av_from_column, redden, DustModel, Reddened};
use crate::gas_column::ColumnGrid;
use crate::isochrone_interp::{IsochroneGrid, PhotometryColumns};
use crate::selection::MagnitudeCut;

/// Where A0 comes from.
#[derive(Debug, Clone, Copy)]
pub enum Dust<'a> {
    /// No dust, a constant A0, or a uniform screen (mag per kpc).
    Model(DustModel),
    /// A0 (mag) per star, computed by the caller (e.g. gas columns for the candidates of a
    /// cut only), parallel to the batch.
    PerStar(&'a [f64]),
    /// Hydrogen column through a gas grid, converted with `nh_per_av` (cm⁻² mag⁻¹; the grid's
    /// deposit weight carries any metallicity scaling).
    Gas {
        /// Deposited gas.
        grid: &'a ColumnGrid,
        /// N_H / A_V (cm⁻² mag⁻¹), e.g. [`crate::extinction::NH_PER_AV_GUVER_OZEL`].
        nh_per_av: f64,
    },
}

/// Settings of a mock Gaia survey.
#[derive(Debug, Clone, Copy)]
pub struct MockSettings<'a> {
    /// Release whose uncertainties are simulated.
    pub release: GaiaRelease,
    /// Dust source.
    pub dust: Dust<'a>,
    /// Cut on the observed G.
    pub cut: MagnitudeCut,
    /// Run seed for the per-star noise draws.
    pub seed: u64,
}

/// A batch of stars in the galaxy frame (parallel slices).
#[derive(Debug, Clone, Copy)]
pub struct StarBatch<'a> {
    /// Positions (kpc).
    pub pos_kpc: &'a [[f64; 3]],
    /// Velocities (km/s).
    pub vel_kms: &'a [[f64; 3]],
    /// Initial masses (Msun).
    pub initial_mass_msun: &'a [f64],
    /// Ages (Gyr).
    pub age_gyr: &'a [f64],
    /// Metallicities Z (mass fraction).
    pub metallicity: &'a [f64],
    /// Stable star ids (the noise of a star depends on (seed, id) only).
    pub ids: &'a [u64],
}

/// Every column of a batch, parallel to the input; `selected` marks the stars kept.
#[derive(Debug, Clone, Default)]
pub struct MockColumns {
    /// Isochrone properties and absolute magnitudes (all bands of the grid).
    pub photometry: PhotometryColumns,
    /// True astrometry.
    pub astrometry: AstrometryColumns,
    /// Intrinsic (unreddened) apparent G, BP, RP (mag).
    pub intrinsic_g: Vec<f64>,
    /// Intrinsic apparent G_BP (mag).
    pub intrinsic_bp: Vec<f64>,
    /// Intrinsic apparent G_RP (mag).
    pub intrinsic_rp: Vec<f64>,
    /// Extinctions and reddened (true) apparent magnitudes.
    pub reddened: Reddened,
    /// Observed values and uncertainties.
    pub observed: ObservedColumns,
    /// Star kept by the cut on observed G (remnants never are).
    pub selected: Vec<bool>,
}

impl MockColumns {
    /// Number of selected stars.
    pub fn n_selected(&self) -> usize {
        self.selected.iter().filter(|&&k| k).count()
    }
}

/// Mock-observe one batch of stars with one observer.
pub fn mock_observe(
    iso: &IsochroneGrid,
    observer: &SkyProjector,
    settings: &MockSettings,
    stars: &StarBatch,
) -> Result<MockColumns> {
    let n = stars.pos_kpc.len();
    if [
        stars.vel_kms.len(),
        stars.initial_mass_msun.len(),
        stars.age_gyr.len(),
        stars.metallicity.len(),
        stars.ids.len(),
    ]
    .iter()
    .any(|&l| l != n)
    {
        return Err(SurveyError::Invalid(format!(
            "mock_observe: {n} positions but {} velocities, {} masses, {} ages, {} Z, {} ids",
            stars.vel_kms.len(),
            stars.initial_mass_msun.len(),
            stars.age_gyr.len(),
            stars.metallicity.len(),
            stars.ids.len()
        )));
    }
    let band = |name: &str| {
        iso.band_index(name).ok_or_else(|| {
            SurveyError::Invalid(format!(
                "isochrones have no {name} band (bands: {:?}); a Gaia mock needs G, G_BP, G_RP",
                iso.bands()
            ))
        })
    };
    let (bg, bbp, brp) = (band("G")?, band("G_BP")?, band("G_RP")?);
    let photometry = iso.photometry(stars.initial_mass_msun, stars.age_gyr, stars.metallicity)?;
    let astrometry = observer.project_batch(stars.pos_kpc, stars.vel_kms)?;
    let dm = &astrometry.distance_modulus;
    let app = |b: usize| -> Vec<f64> {
        photometry.abs_mag[b]
            .iter()
            .zip(dm)
            .map(|(m, d)| m + d)
            .collect()
    };
    let (g0, bp0, rp0) = (app(bg), app(bbp), app(brp));
    let a0: Vec<f64> = match settings.dust {
        Dust::Model(m) => astrometry.distance_kpc.iter().map(|&d| m.a0(d)).collect(),
        Dust::PerStar(a0) => {
            if a0.len() != n {
                return Err(SurveyError::Invalid(format!(
                    "mock_observe: {n} stars but {} A0 values",
                    a0.len()
                )));
            }
            a0.to_vec()
        }
        Dust::Gas { grid, nh_per_av } => {
            let sun = observer.observer().position_galaxy_kpc();
            stars
                .pos_kpc
                .iter()
                .map(|p| av_from_column(grid.column(sun, *p), nh_per_av, 1.0))
                .collect()
        }
    };
    let reddened = redden(&g0, &bp0, &rp0, &a0)?;
    let truth = TrueObservables {
        ra_deg: &astrometry.ra_deg,
        dec_deg: &astrometry.dec_deg,
        parallax_mas: &astrometry.parallax_mas,
        pmra_cosdec_masyr: &astrometry.pmra_cosdec_masyr,
        pmdec_masyr: &astrometry.pmdec_masyr,
        radial_velocity_kms: &astrometry.radial_velocity_kms,
        g_mag: &reddened.g,
        bp_mag: &reddened.bp,
        rp_mag: &reddened.rp,
        teff_k: &photometry
            .log_teff
            .iter()
            .map(|t| 10f64.powf(*t))
            .collect::<Vec<_>>(),
        logg: &photometry.log_g,
    };
    let observed = observe_per_star(&truth, settings.release, settings.seed, stars.ids)?;
    let selected = settings.cut.mask(&observed.g_mag);
    Ok(MockColumns {
        photometry,
        astrometry,
        intrinsic_g: g0,
        intrinsic_bp: bp0,
        intrinsic_rp: rp0,
        reddened,
        observed,
        selected,
    })
}
