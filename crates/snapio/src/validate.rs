//! Validity rules of star particle values, applied while streaming, and the invalid-row policy.
//!
//! The rules (documented in `docs/UNITS.md`, "Validation"): values finite; masses > 0 (current
//! and initial); age in [0, age of the universe at the snapshot] within [`age_tolerance_gyr`];
//! metallicity in [0, 1]; position inside the periodic box within [`BOX_TOLERANCE`] of its
//! size, or for non-periodic runs (no or zero `BoxSize`) within [`MAX_ABS_POSITION_KPC`].

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Result, SnapError};
use crate::header::Header;
use crate::particles::InvalidPolicy;

/// Allowed overshoot of a periodic box, as a fraction of `BoxSize`, on each side.
pub(crate) const BOX_TOLERANCE: f64 = 1e-3;
/// Largest |x|, |y| or |z| in physical kpc of a star of a non-periodic run (100 Mpc).
pub(crate) const MAX_ABS_POSITION_KPC: f64 = 1e5;
/// Oldest star age in Gyr accepted in a non-cosmological run, whose time origin is arbitrary.
pub(crate) const MAX_AGE_NON_COSMOLOGICAL_GYR: f64 = 20.0;

/// Rounding allowed below age 0 and above the oldest age, in Gyr: 10 kyr plus 1e-6 of the
/// snapshot's cosmic time (an f32 formation time equal to the snapshot time lands within
/// about 1e-7 of it). Ages within it below 0 are set to 0, as before.
pub(crate) fn age_tolerance_gyr(t_snap: f64) -> f64 {
    1e-5 + 1e-6 * t_snap.abs()
}

/// Ranges a star must fall in, derived once from the header.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Periodic box size in code length units, if any.
    pub(crate) box_code: Option<f64>,
    /// Code length → physical kpc factor.
    pub(crate) length_to_kpc: f64,
    /// Oldest valid age in Gyr.
    pub(crate) age_max: f64,
    /// Rounding tolerance on ages in Gyr.
    pub(crate) age_tol: f64,
    /// Whether formation times are scale factors (must then be >= 0).
    pub(crate) cosmological: bool,
}

impl Limits {
    /// Limits for stars of a snapshot with this header.
    pub(crate) fn new(h: &Header) -> Self {
        let t_snap = h.time_gyr();
        Limits {
            box_code: (h.box_size.is_finite() && h.box_size > 0.0).then_some(h.box_size),
            length_to_kpc: h.length_to_kpc(),
            age_max: if h.cosmological {
                t_snap
            } else {
                t_snap.max(MAX_AGE_NON_COSMOLOGICAL_GYR)
            },
            age_tol: age_tolerance_gyr(t_snap),
            cosmological: h.cosmological,
        }
    }

    /// Why the position (code units, finite) is out of bounds, or `None` if it is fine.
    pub(crate) fn position_problem(&self, x: [f64; 3]) -> Option<String> {
        match self.box_code {
            Some(b) => {
                let tol = BOX_TOLERANCE * b;
                x.iter().any(|&c| c < -tol || c > b + tol).then(|| {
                    format!(
                        "position outside the periodic box (expected every coordinate in [0, BoxSize = {b}] \
                         code units, within {BOX_TOLERANCE} × BoxSize)"
                    )
                })
            }
            None => x
                .iter()
                .any(|&c| (c * self.length_to_kpc).abs() > MAX_ABS_POSITION_KPC)
                .then(|| {
                    format!(
                        "position farther than {MAX_ABS_POSITION_KPC:e} kpc from the origin on an axis \
                         (non-periodic run: no BoxSize; code length × {} = kpc)",
                        self.length_to_kpc
                    )
                }),
        }
    }

    /// Why the age (Gyr) of a star with stored formation time `t_form` is invalid, or `None`.
    pub(crate) fn age_problem(&self, t_form: f64, age: f64) -> Option<String> {
        if self.cosmological && t_form < 0.0 {
            return Some("formation scale factor below 0".into());
        }
        if age < -self.age_tol {
            return Some(format!(
                "formed after the snapshot (age {age:.6} Gyr; expected in [0, {:.4}] Gyr)",
                self.age_max
            ));
        }
        if age.is_nan() || age > self.age_max + self.age_tol {
            return Some(format!(
                "age {age:.6} Gyr older than {} ({:.4} Gyr)",
                if self.cosmological {
                    "the universe at the snapshot"
                } else {
                    "the oldest allowed in a non-cosmological run"
                },
                self.age_max
            ));
        }
        None
    }
}

/// Invalid-row bookkeeping of one chunk: errors under [`InvalidPolicy::Error`], marks and counts
/// under [`InvalidPolicy::Drop`].
pub(crate) struct ChunkCheck<'a> {
    policy: InvalidPolicy,
    path: &'a Path,
    /// Row of the chunk's first element within its file.
    row0: usize,
    /// Rows already found invalid.
    pub(crate) bad: Vec<bool>,
    counts: &'a mut BTreeMap<String, u64>,
}

impl<'a> ChunkCheck<'a> {
    /// Checker of `m` rows starting at file row `row0`, counting drops into `counts`.
    pub(crate) fn new(
        policy: InvalidPolicy,
        path: &'a Path,
        row0: usize,
        m: usize,
        counts: &'a mut BTreeMap<String, u64>,
    ) -> Self {
        ChunkCheck {
            policy,
            path,
            row0,
            bad: vec![false; m],
            counts,
        }
    }

    /// Whether row `j` (within the chunk) has been found invalid.
    pub(crate) fn is_bad(&self, j: usize) -> bool {
        self.bad[j]
    }

    fn mark(&mut self, j: usize, kind: &str) {
        if !self.bad[j] {
            self.bad[j] = true;
            *self.counts.entry(kind.to_string()).or_insert(0) += 1;
        }
    }

    /// Row `j` holds the non-finite `value` in `dataset`.
    pub(crate) fn non_finite(
        &mut self,
        j: usize,
        kind: &str,
        dataset: &str,
        value: f64,
    ) -> Result<()> {
        match self.policy {
            InvalidPolicy::Error => Err(SnapError::NonFinite {
                path: self.path.to_path_buf(),
                dataset: dataset.to_string(),
                row: (self.row0 + j) as u64,
                value,
            }),
            InvalidPolicy::Drop => {
                self.mark(j, kind);
                Ok(())
            }
        }
    }

    /// Row `j` holds `value` in `dataset`, invalid because of `problem`.
    pub(crate) fn invalid(
        &mut self,
        j: usize,
        kind: &str,
        dataset: &str,
        value: String,
        problem: String,
    ) -> Result<()> {
        match self.policy {
            InvalidPolicy::Error => Err(SnapError::InvalidValue {
                path: self.path.to_path_buf(),
                dataset: dataset.to_string(),
                row: (self.row0 + j) as u64,
                value,
                problem,
            }),
            InvalidPolicy::Drop => {
                self.mark(j, kind);
                Ok(())
            }
        }
    }

    /// Checks that every row `j` with `rows(j)` has finite values in `v` (`width` per row).
    pub(crate) fn finite(
        &mut self,
        kind: &str,
        dataset: &str,
        v: &[f64],
        width: usize,
        rows: impl Fn(usize) -> bool,
    ) -> Result<()> {
        for (j, row) in v.chunks_exact(width).enumerate() {
            if !rows(j) || self.bad[j] {
                continue;
            }
            if let Some(&x) = row.iter().find(|x| !x.is_finite()) {
                self.non_finite(j, kind, dataset, x)?;
            }
        }
        Ok(())
    }

    /// Checks that every row `j` with `rows(j)` has a positive value in `v`.
    pub(crate) fn positive(
        &mut self,
        kind: &str,
        dataset: &str,
        v: &[f64],
        rows: impl Fn(usize) -> bool,
    ) -> Result<()> {
        for (j, &x) in v.iter().enumerate() {
            if rows(j) && !self.bad[j] && x.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
                self.invalid(
                    j,
                    kind,
                    dataset,
                    format!("{x:e}"),
                    "mass <= 0 (expected a positive mass)".into(),
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_of_a_periodic_cosmological_box() {
        let h = Header {
            box_size: 1000.0,
            ..Header::cosmological_at(1.0)
        };
        let l = Limits::new(&h);
        assert!(l.position_problem([0.0, 500.0, 1000.0]).is_none());
        assert!(l.position_problem([-0.9, 500.0, 1000.9]).is_none());
        assert!(l.position_problem([-1.1, 500.0, 10.0]).is_some());
        assert!(l.position_problem([1e30, 500.0, 10.0]).is_some());
        let t = h.time_gyr();
        assert!((t - 13.80).abs() < 0.05, "{t}");
        assert!(l.age_problem(0.5, 3.0).is_none());
        assert!(l.age_problem(1.0, -5e-6).is_none());
        assert!(l.age_problem(1.01, -0.1).is_some());
        assert!(l.age_problem(-0.1, t).is_some());
        assert!(l.age_problem(0.0, t).is_none());
        assert!(l.age_problem(0.0, t + 1.0).is_some());
    }

    #[test]
    fn limits_of_a_non_periodic_run() {
        let h = Header::non_cosmological_at(3.0, 1.0);
        let l = Limits::new(&h);
        assert!(l.position_problem([-9.9e4, 0.0, 9.9e4]).is_none());
        assert!(l.position_problem([0.0, 1.01e5, 0.0]).is_some());
        assert!(l.age_problem(-5.0, 8.0).is_none());
        assert!(l.age_problem(-50.0, 50.0).is_some());
    }
}
