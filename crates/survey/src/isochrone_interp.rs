//! Interpolating isochrones in (initial mass, age, metallicity) by equivalent evolutionary phase.
//!
//! Each isochrone is cut into phase groups from the PARSEC labels: 0 = pre-main sequence and
//! main sequence (labels 0, 1: PARSEC flips between them at low mass), 1 = subgiant (2),
//! 2 = red giant branch (3), 3 = core helium burning (4, 5, 6), 4 = early AGB (7), 5 = TP-AGB (8),
//! 6 = post-AGB (9). The group of a row is the running maximum along the track, so groups never
//! go backwards. Group `g` spans initial masses `[b_g, b_{g+1}]` (from its first row to the
//! first row of the next group; a missing group has zero width). A point of the track has the
//! phase coordinate `φ = g + f`, `f` its fractional position in initial mass within the group.
//!
//! Between the four isochrones bracketing (log age, log Z), quantities are blended with bilinear
//! weights *at equal φ*: the interpolated initial mass `M(φ) = Σ w_k M_k(φ)` is piecewise linear
//! and non-decreasing in φ, so a star's φ is found exactly (no iteration), and every corner is
//! read at the same phase: a giant is never blended with a main-sequence star. Within a corner,
//! quantities are linear in initial mass between rows.
//!
//! A star heavier than `M(φ_max)` (the interpolated most massive star alive) is a remnant;
//! one below the lightest row, or with age or Z outside the grid, is clamped and flagged.

use crate::error::{Result, SurveyError};
use crate::isochrone::{Isochrone, IsochroneSet};

/// Number of phase groups (see the module documentation).
pub const N_PHASE_GROUPS: usize = 7;

/// Fraction of the lightest corner turnoff mass below which main-sequence stars are
/// interpolated at equal initial mass (unevolved); above it, at equal fractional mass.
pub const UNEVOLVED_FRACTION: f64 = 0.8;

/// Number of extended groups: the main sequence split in two, then the other phase groups.
const N_EXT: usize = N_PHASE_GROUPS + 1;

/// Flag: initial mass below the grid's lightest star; the lightest row's values are returned.
pub const FLAG_MASS_BELOW_GRID: u8 = 1;
/// Flag: age outside the grid; the nearest grid age is used.
pub const FLAG_AGE_CLAMPED: u8 = 2;
/// Flag: metallicity outside the grid; the nearest grid Z is used.
pub const FLAG_Z_CLAMPED: u8 = 4;
/// Flag: initial mass above the most massive star alive: a stellar remnant (values are NaN).
pub const FLAG_REMNANT: u8 = 8;
/// Flag: a non-finite or non-positive input (values are NaN).
pub const FLAG_BAD_INPUT: u8 = 16;

/// Phase group of a PARSEC label.
pub fn phase_group(label: u8) -> usize {
    match label {
        0 | 1 => 0,
        2 => 1,
        3 => 2,
        4..=6 => 3,
        7 => 4,
        8 => 5,
        _ => 6,
    }
}

/// One isochrone prepared for phase interpolation.
#[derive(Debug, Clone)]
struct Track {
    iso: Isochrone,
    /// Group boundaries in initial mass, `b[0] = mini[0]`, `b[N] = mini[last]`.
    b: [f64; N_PHASE_GROUPS + 1],
    /// First row of each group (`len` when absent, then clamped), plus `len` at the end.
    start: [usize; N_PHASE_GROUPS + 1],
    /// Running-maximum phase group per row.
    group: Vec<u8>,
}

impl Track {
    fn new(iso: Isochrone) -> Result<Self> {
        let n = iso.len();
        if n < 2 {
            return Err(SurveyError::Invalid(format!(
                "isochrone Z = {}, logAge = {} has {n} row(s); at least 2 are needed",
                iso.zini, iso.log_age
            )));
        }
        let mut group = Vec::with_capacity(n);
        let mut g = 0usize;
        for &l in &iso.label {
            g = g.max(phase_group(l));
            group.push(g as u8);
        }
        let mut start = [n; N_PHASE_GROUPS + 1];
        for (row, &gr) in group.iter().enumerate().rev() {
            start[gr as usize] = row;
        }
        start[0] = 0;
        // A missing group starts where the next present one does.
        for k in (0..N_PHASE_GROUPS).rev() {
            start[k] = start[k].min(start[k + 1]);
        }
        let mut b = [0.0; N_PHASE_GROUPS + 1];
        for k in 0..=N_PHASE_GROUPS {
            b[k] = iso.mini[start[k].min(n - 1)];
        }
        b[N_PHASE_GROUPS] = iso.mini[n - 1];
        Ok(Track {
            iso,
            b,
            start,
            group,
        })
    }

    /// Row `i` and weight `t` of row `i + 1` for initial mass `m` within group `g`.
    #[inline]
    fn locate(&self, g: usize, m: f64) -> (usize, f64) {
        let n = self.iso.len();
        let lo = self.start[g].saturating_sub(1);
        let hi = self.start[g + 1].min(n - 1).max(lo + 1);
        let mini = &self.iso.mini[lo..=hi];
        // First index with mini > m, within [1, len-1].
        let j = mini.partition_point(|&x| x <= m).clamp(1, mini.len() - 1);
        let (m0, m1) = (mini[j - 1], mini[j]);
        let t = if m1 > m0 {
            ((m - m0) / (m1 - m0)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        (lo + j - 1, t)
    }
}

/// The isochrones of one metallicity, sorted by age.
#[derive(Debug, Clone)]
struct ZSlice {
    log_z: f64,
    log_ages: Vec<f64>,
    tracks: Vec<Track>,
}

/// Interpolated properties of one star (magnitudes go to a caller-provided slice).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StarProperties {
    /// Current mass (Msun).
    pub mass: f64,
    /// log10 luminosity (Lsun).
    pub log_l: f64,
    /// log10 effective temperature (K).
    pub log_teff: f64,
    /// log10 surface gravity (cgs).
    pub log_g: f64,
    /// PARSEC phase label of the nearest row of the dominant grid isochrone (255 for remnants).
    pub label: u8,
    /// Phase coordinate φ = group + fraction (NaN for remnants).
    pub phase: f64,
    /// Bit flags `FLAG_*`.
    pub flags: u8,
}

/// Per-star photometry columns of a batch (parallel to the input slices).
#[derive(Debug, Clone, Default)]
pub struct PhotometryColumns {
    /// Current mass (Msun).
    pub mass: Vec<f64>,
    /// log10 luminosity (Lsun).
    pub log_l: Vec<f64>,
    /// log10 effective temperature (K).
    pub log_teff: Vec<f64>,
    /// log10 surface gravity (cgs).
    pub log_g: Vec<f64>,
    /// PARSEC phase label (255 for remnants and bad inputs).
    pub label: Vec<u8>,
    /// Bit flags `FLAG_*`.
    pub flags: Vec<u8>,
    /// Absolute magnitudes per band: `abs_mag[band][star]` (Vega mag; NaN for remnants).
    pub abs_mag: Vec<Vec<f64>>,
}

/// A grid of isochrones ready for per-star interpolation (immutable, shareable across threads).
#[derive(Debug, Clone)]
pub struct IsochroneGrid {
    bands: Vec<String>,
    zs: Vec<ZSlice>,
}

/// Bracketing indices and weight of the upper one for `x` in sorted `grid`; sets `clamped`.
#[inline]
fn bracket(grid: &[f64], x: f64, clamped: &mut bool) -> (usize, usize, f64) {
    let n = grid.len();
    if n == 1 {
        *clamped |= x != grid[0];
        return (0, 0, 0.0);
    }
    if x <= grid[0] {
        *clamped |= x < grid[0];
        return (0, 1, 0.0);
    }
    if x >= grid[n - 1] {
        *clamped |= x > grid[n - 1];
        return (n - 2, n - 1, 1.0);
    }
    let j = grid.partition_point(|&g| g <= x).clamp(1, n - 1);
    let w = (x - grid[j - 1]) / (grid[j] - grid[j - 1]);
    (j - 1, j, w)
}

impl IsochroneGrid {
    /// Build the grid from a set of isochrones (any number of Z, each with its own ages).
    pub fn new(set: IsochroneSet) -> Result<Self> {
        let nb = set.bands.len();
        let mut zs: Vec<ZSlice> = Vec::new();
        for iso in set.isochrones {
            if iso.zini.is_nan() || iso.zini <= 0.0 {
                return Err(SurveyError::Invalid(format!(
                    "isochrone with Zini = {} (must be > 0)",
                    iso.zini
                )));
            }
            if iso.mags.len() != iso.len() * nb {
                return Err(SurveyError::Invalid(format!(
                    "isochrone Z = {}, logAge = {}: {} magnitudes for {} rows × {nb} bands",
                    iso.zini,
                    iso.log_age,
                    iso.mags.len(),
                    iso.len()
                )));
            }
            let log_z = iso.zini.log10();
            let track = Track::new(iso)?;
            match zs.iter_mut().find(|s| s.log_z == log_z) {
                Some(s) => s.tracks.push(track),
                None => zs.push(ZSlice {
                    log_z,
                    log_ages: vec![],
                    tracks: vec![track],
                }),
            }
        }
        if zs.is_empty() {
            return Err(SurveyError::Invalid("no isochrones".into()));
        }
        zs.sort_by(|a, b| a.log_z.total_cmp(&b.log_z));
        for s in &mut zs {
            s.tracks
                .sort_by(|a, b| a.iso.log_age.total_cmp(&b.iso.log_age));
            for w in s.tracks.windows(2) {
                if w[0].iso.log_age == w[1].iso.log_age {
                    return Err(SurveyError::Invalid(format!(
                        "two isochrones with Z = {}, logAge = {}",
                        w[0].iso.zini, w[0].iso.log_age
                    )));
                }
            }
            s.log_ages = s.tracks.iter().map(|t| t.iso.log_age).collect();
        }
        Ok(IsochroneGrid {
            bands: set.bands,
            zs,
        })
    }

    /// Band names (`mag` suffix removed), in the order of the magnitudes returned.
    pub fn bands(&self) -> &[String] {
        &self.bands
    }

    /// Index of a band by name (`G` or `Gmag`).
    pub fn band_index(&self, name: &str) -> Option<usize> {
        let name = name.strip_suffix("mag").unwrap_or(name);
        self.bands.iter().position(|b| b == name)
    }

    /// Metallicities Z of the grid, ascending.
    pub fn metallicities(&self) -> Vec<f64> {
        self.zs.iter().map(|s| 10f64.powf(s.log_z)).collect()
    }

    /// Four corner tracks and bilinear weights for (age Gyr, Z); flags for clamping.
    #[inline]
    fn corners(&self, age_gyr: f64, z: f64, flags: &mut u8) -> [(&Track, f64); 4] {
        let log_age = (age_gyr * 1e9).log10();
        let log_z = z.log10();
        let mut zc = false;
        let n = self.zs.len();
        let (z0, z1, wz) = if n == 1 {
            zc = log_z != self.zs[0].log_z;
            (0, 0, 0.0)
        } else {
            let j = self.zs.partition_point(|s| s.log_z <= log_z);
            if j == 0 {
                zc = log_z < self.zs[0].log_z;
                (0, 1, 0.0)
            } else if j >= n {
                zc = log_z > self.zs[n - 1].log_z;
                (n - 2, n - 1, 1.0)
            } else {
                let (a, b) = (self.zs[j - 1].log_z, self.zs[j].log_z);
                (j - 1, j, (log_z - a) / (b - a))
            }
        };
        if zc {
            *flags |= FLAG_Z_CLAMPED;
        }
        let mut ac = false;
        let sa = &self.zs[z0];
        let sb = &self.zs[z1];
        let (a0, a1, wa) = bracket(&sa.log_ages, log_age, &mut ac);
        let (b0, b1, wb) = bracket(&sb.log_ages, log_age, &mut ac);
        if ac {
            *flags |= FLAG_AGE_CLAMPED;
        }
        [
            (&sa.tracks[a0], (1.0 - wz) * (1.0 - wa)),
            (&sa.tracks[a1], (1.0 - wz) * wa),
            (&sb.tracks[b0], wz * (1.0 - wb)),
            (&sb.tracks[b1], wz * wb),
        ]
    }

    /// Interpolate one star: initial mass (Msun), age (Gyr), metallicity Z (mass fraction).
    ///
    /// Absolute magnitudes go to `mags` (length = number of bands); NaN for remnants and bad
    /// inputs. No allocation.
    pub fn interpolate(&self, mini: f64, age_gyr: f64, z: f64, mags: &mut [f64]) -> StarProperties {
        let nb = self.bands.len();
        debug_assert_eq!(mags.len(), nb);
        let nan = StarProperties {
            mass: f64::NAN,
            log_l: f64::NAN,
            log_teff: f64::NAN,
            log_g: f64::NAN,
            label: 255,
            phase: f64::NAN,
            flags: 0,
        };
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if !(positive(mini) && positive(age_gyr) && positive(z)) {
            mags.fill(f64::NAN);
            return StarProperties {
                flags: FLAG_BAD_INPUT,
                ..nan
            };
        }
        let mut flags = 0u8;
        let corners = self.corners(age_gyr, z, &mut flags);
        // Extended boundaries per corner: the main-sequence group is split at the common mass
        // c = UNEVOLVED_FRACTION × (lightest turnoff among the corners), so unevolved stars
        // below c are matched at equal initial mass and the upper main sequence at equal
        // fractional mass between c and each corner's turnoff.
        let mut c = f64::INFINITY;
        let mut b0 = f64::NEG_INFINITY;
        for (t, w) in &corners {
            if *w > 0.0 {
                c = c.min(t.b[1]);
                b0 = b0.max(t.b[0]);
            }
        }
        let c = (UNEVOLVED_FRACTION * c).max(b0);
        let mut ext = [[0.0; N_EXT + 1]; 4];
        let mut bnd = [0.0; N_EXT + 1];
        for ((t, w), e) in corners.iter().zip(ext.iter_mut()) {
            e[0] = t.b[0];
            e[1] = c.min(t.b[1]).max(t.b[0]);
            e[2..].copy_from_slice(&t.b[1..]);
            if *w > 0.0 {
                for (acc, x) in bnd.iter_mut().zip(e.iter()) {
                    *acc += w * x;
                }
            }
        }
        let mut m = mini;
        if m > bnd[N_EXT] {
            mags.fill(f64::NAN);
            return StarProperties {
                flags: flags | FLAG_REMNANT,
                ..nan
            };
        }
        if m < bnd[0] {
            flags |= FLAG_MASS_BELOW_GRID;
            m = bnd[0];
        }
        // Extended group ge with M(ge) <= m <= M(ge+1); the fraction is exact (M is linear).
        let mut ge = 0;
        // A mass on a boundary belongs to the next (non-empty) group: its first row.
        while ge + 1 < N_EXT && (m > bnd[ge + 1] || (m == bnd[ge + 1] && bnd[ge + 2] > m)) {
            ge += 1;
        }
        let width = bnd[ge + 1] - bnd[ge];
        let f = if width > 0.0 {
            ((m - bnd[ge]) / width).clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Phase group and the reported phase coordinate.
        let g = ge.saturating_sub(1);
        let phase = if ge <= 1 {
            let to = bnd[2] - bnd[0];
            if to > 0.0 {
                (m - bnd[0]) / to
            } else {
                0.0
            }
        } else {
            g as f64 + f
        };
        let mut p = StarProperties {
            mass: 0.0,
            log_l: 0.0,
            log_teff: 0.0,
            log_g: 0.0,
            label: 255,
            phase,
            flags,
        };
        mags.fill(0.0);
        let mut best_w = -1.0;
        for ((t, w), e) in corners.iter().zip(ext.iter()) {
            if *w <= 0.0 {
                continue;
            }
            let mk = e[ge] + f * (e[ge + 1] - e[ge]);
            let (i, s) = t.locate(g, mk);
            let iso = &t.iso;
            let lerp = |q: &[f64]| q[i] + s * (q[i + 1] - q[i]);
            p.mass += w * lerp(&iso.mass);
            p.log_l += w * lerp(&iso.log_l);
            p.log_teff += w * lerp(&iso.log_teff);
            p.log_g += w * lerp(&iso.log_g);
            let (r0, r1) = (
                &iso.mags[i * nb..(i + 1) * nb],
                &iso.mags[(i + 1) * nb..(i + 2) * nb],
            );
            for ((o, a), b) in mags.iter_mut().zip(r0).zip(r1) {
                *o += w * (a + s * (b - a));
            }
            // Label: the dominant corner's nearest row in this phase group.
            let present = t.b[g + 1] > t.b[g] || t.start[g] < t.start[g + 1];
            let score = if present { *w } else { *w - 2.0 };
            if score > best_w {
                best_w = score;
                let near = if s < 0.5 { i } else { i + 1 };
                let row = if t.group[near] as usize == g {
                    near
                } else if t.group[i] as usize == g {
                    i
                } else {
                    i + 1
                };
                p.label = iso.label[row];
            }
        }
        p
    }

    /// Interpolate a batch: parallel slices of initial mass (Msun), age (Gyr), Z; columns out.
    pub fn photometry(
        &self,
        mini: &[f64],
        age_gyr: &[f64],
        z: &[f64],
    ) -> Result<PhotometryColumns> {
        let n = mini.len();
        if age_gyr.len() != n || z.len() != n {
            return Err(SurveyError::Invalid(format!(
                "photometry: slice lengths differ (mini {n}, age {}, z {})",
                age_gyr.len(),
                z.len()
            )));
        }
        let nb = self.bands.len();
        let mut out = PhotometryColumns {
            mass: Vec::with_capacity(n),
            log_l: Vec::with_capacity(n),
            log_teff: Vec::with_capacity(n),
            log_g: Vec::with_capacity(n),
            label: Vec::with_capacity(n),
            flags: Vec::with_capacity(n),
            abs_mag: vec![Vec::with_capacity(n); nb],
        };
        let mut mags = vec![0.0; nb];
        for i in 0..n {
            let p = self.interpolate(mini[i], age_gyr[i], z[i], &mut mags);
            out.mass.push(p.mass);
            out.log_l.push(p.log_l);
            out.log_teff.push(p.log_teff);
            out.log_g.push(p.log_g);
            out.label.push(p.label);
            out.flags.push(p.flags);
            for (col, &v) in out.abs_mag.iter_mut().zip(&mags) {
                col.push(v);
            }
        }
        Ok(out)
    }

    /// Most massive initial mass alive (Msun) at (age Gyr, Z), interpolated at equal phase.
    pub fn max_alive_mass(&self, age_gyr: f64, z: f64) -> f64 {
        let mut flags = 0;
        self.corners(age_gyr, z, &mut flags)
            .iter()
            .map(|(t, w)| w * t.b[N_PHASE_GROUPS])
            .sum()
    }
}
