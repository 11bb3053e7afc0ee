//! Fidelity of a catalogue against particles held out of training (never seen by any flow):
//! pure functions over arrays, no I/O, no learning, deterministic given a seed.
//!
//! - [`two_sample`]: the 6D k-nearest-neighbour two-sample statistic (Schilling 1986; Henze
//!   1988) of stars against the held-out reference, with its null mean and spread from label
//!   permutations and a z-score; [`two_sample_mass_weighted`] where the held-out particles'
//!   masses differ (a conditional randomisation test given the [`local_mass`] at each point);
//! - [`smoothness`]: distances from each star to its nearest *training* particle against the
//!   same for each held-out particle (ratio of medians, KS distance): a catalogue whose stars
//!   huddle around their parents has a ratio < 1, independent draws ≈ 1;
//! - [`shell_profile`]: density, σ_r, σ_t, β and mean v_φ in log-spaced radial shells with
//!   sampling errors, serialisable into `report.json`, and [`compare_profiles`] (ratios and
//!   differences against the reference with their errors);
//! - [`evaluate`]: all of them at once, as one [`Fidelity`] record.
//!
//! Coordinates: positions kpc and velocities km/s in the galaxy frame (centre at the origin,
//! z along the angular momentum). The 6D statistics work in coordinates divided by the
//! reference sample's per-axis robust spreads (1.4826 × MAD, [`Scales`]).

mod local_mass;
mod shells;
mod smoothness;
mod standardise;
mod two_sample;

pub use local_mass::{local_mass, LOCAL_MASS_NEIGHBOURS};
pub use shells::{
    compare_profiles, cylindrical_velocity, radius, shell_profile, spherical_velocity, Kinematics,
    Profile, Shell, ShellComparison, ShellConfig,
};
pub use smoothness::{
    ks_two_sample, ks_two_sample_weighted, nearest_distances, pool_counts, smoothness,
    NearestDistances, Smoothness, SmoothnessConfig,
};
pub(crate) use standardise::subsample;
pub use standardise::Scales;
pub use two_sample::{
    two_sample, two_sample_by_shell, two_sample_mass_weighted, LocalMass, ShellTwoSample,
    TwoSample, TwoSampleConfig,
};

use serde::{Deserialize, Serialize};

/// A set of points in phase space (borrowed arrays of equal length).
#[derive(Debug, Clone, Copy)]
pub struct PhaseSpace<'a> {
    /// Positions in kpc (galaxy frame).
    pub position: &'a [[f64; 3]],
    /// Velocities in km/s (galaxy frame).
    pub velocity: &'a [[f64; 3]],
    /// Masses in Msun (weights of the shell profiles); `None`: equal weights.
    pub mass: Option<&'a [f64]>,
}

impl<'a> PhaseSpace<'a> {
    /// Points with equal weights.
    pub fn new(position: &'a [[f64; 3]], velocity: &'a [[f64; 3]]) -> Self {
        PhaseSpace {
            position,
            velocity,
            mass: None,
        }
    }

    /// Number of points.
    pub fn len(&self) -> usize {
        self.position.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.position.is_empty()
    }

    /// Checks that the arrays have equal lengths; `what` names the set in the error.
    pub fn check(&self, what: &str) -> Result<(), FidelityError> {
        let n = self.position.len();
        let m = self.mass.map_or(n, <[f64]>::len);
        if self.velocity.len() != n || m != n {
            return Err(FidelityError::Lengths {
                what: what.to_string(),
                positions: n,
                velocities: self.velocity.len(),
                masses: m,
            });
        }
        Ok(())
    }
}

/// Whether masses `m` (Msun) differ by more than 0.1% (so that figures must weigh by them; a
/// galaxy's components can differ in the last digits of their float32 masses).
pub fn masses_differ(m: &[f64]) -> bool {
    m.first()
        .is_some_and(|&m0| m.iter().any(|&x| (x - m0).abs() > 1e-3 * m0.abs()))
}

/// Why a fidelity statistic could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum FidelityError {
    /// Arrays of one point set differ in length.
    #[error("{what}: {positions} positions, {velocities} velocities, {masses} masses")]
    Lengths {
        /// Which set.
        what: String,
        /// Number of positions.
        positions: usize,
        /// Number of velocities.
        velocities: usize,
        /// Number of masses (= positions when none are given).
        masses: usize,
    },
    /// A set has too few points for the statistic.
    #[error("{what}: {have} points, at least {need} needed")]
    TooFew {
        /// Which set.
        what: String,
        /// Points given.
        have: usize,
        /// Points needed.
        need: usize,
    },
    /// The reference has no spread along an axis (cannot standardise).
    #[error("reference sample has zero or non-finite spread along axis {axis} (0-2 x, 3-5 v)")]
    Degenerate {
        /// Axis 0..6.
        axis: usize,
    },
    /// A configuration value is out of range.
    #[error("fidelity configuration: {0}")]
    Config(String),
}

/// Configuration of [`evaluate`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FidelityConfig {
    /// The two-sample statistic.
    pub two_sample: TwoSampleConfig,
    /// The smoothness statistic.
    pub smoothness: SmoothnessConfig,
    /// The shell profiles.
    pub shells: ShellConfig,
}

/// All fidelity figures of one catalogue (a cluster or a whole run), for `report.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fidelity {
    /// Stars against held-out particles, 6D k-NN.
    pub two_sample: TwoSample,
    /// Nearest-training-particle distances of stars against held-out particles.
    pub smoothness: Smoothness,
    /// Shell profiles of the stars.
    pub stars: Profile,
    /// Shell profiles of the held-out particles.
    pub reference: Profile,
    /// Stars against held-out particles, shell by shell.
    pub shells: Vec<ShellComparison>,
}

/// Every fidelity figure of `stars` against the held-out `reference`, with `training` the
/// particles the model was trained on (the reference must not be among them).
pub fn evaluate(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    training: PhaseSpace<'_>,
    config: &FidelityConfig,
) -> Result<Fidelity, FidelityError> {
    let distances = nearest_distances(stars, reference, training, &config.smoothness)?;
    evaluate_with(stars, reference, &distances, config)
}

/// [`evaluate`] with the nearest-training-particle distances already measured (or pooled from
/// several clusters, [`NearestDistances::pool`]).
pub fn evaluate_with(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    distances: &NearestDistances,
    config: &FidelityConfig,
) -> Result<Fidelity, FidelityError> {
    evaluate_against(stars, reference, reference, None, distances, config)
}

/// [`evaluate_with`] with a reference of its own for the shell profiles. Where particles'
/// initial masses differ, `profile_reference` is every held-out particle with its mass as
/// weight, and the two-sample statistic either compares with it through the [`LocalMass`] at
/// each star and each of its points ([`two_sample_mass_weighted`]) when `local_mass` is given,
/// or else with `reference`, a subset of the held-out particles thinned ∝ mass (a sample of the
/// mass density the stars follow, for the unweighted statistic).
pub fn evaluate_against(
    stars: PhaseSpace<'_>,
    reference: PhaseSpace<'_>,
    profile_reference: PhaseSpace<'_>,
    local_mass: Option<LocalMass<'_>>,
    distances: &NearestDistances,
    config: &FidelityConfig,
) -> Result<Fidelity, FidelityError> {
    let star_profile = shell_profile(stars, &config.shells)?;
    let reference_profile = shell_profile(profile_reference, &config.shells)?;
    let shells = Some(&config.shells);
    let two_sample = match local_mass {
        Some(m) => {
            two_sample_mass_weighted(stars, profile_reference, m, &config.two_sample, shells)?
        }
        None => two_sample_by_shell(stars, reference, &config.two_sample, shells)?,
    };
    Ok(Fidelity {
        two_sample,
        smoothness: Smoothness::from(distances),
        shells: compare_profiles(&star_profile, &reference_profile),
        stars: star_profile,
        reference: reference_profile,
    })
}

#[cfg(test)]
mod tests;
