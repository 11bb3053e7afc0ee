//! Sky astrometry of galaxy-frame stars seen by an observer: ICRS and Galactic positions,
//! parallax, proper motions, radial velocity and distance modulus.
//!
//! The chain is astropy's: galaxy frame → Galactocentric ([`crate::observer`]) → ICRS
//! (barycentric, the Sun at the barycentre, no light-time or aberration) → Galactic through
//! FK5 J2000 (the IAU frame bias of USNO Circular 179, then the J2000 Galactic pole
//! RA 192.8594812065348°, Dec 27.12825118085622°, and l of the NCP 122.9319185680026°).

use crate::error::{Result, SurveyError};
use crate::observer::{axis_rotation, mat_mul, mat_vec, transpose, Mat3, Observer};

/// km/s per (mas/yr × kpc): one astronomical unit per Julian year.
pub const KMS_PER_MASYR_KPC: f64 = 149_597_870.7 / (365.25 * 86_400.0);

/// ICRS → FK5 J2000 frame bias (USNO Circular 179: η0 = −19.9 mas, ξ0 = 9.1 mas, dα0 = −22.9 mas).
fn icrs_to_fk5() -> Mat3 {
    let mas = 1.0 / 3_600_000.0;
    mat_mul(
        &axis_rotation(19.9 * mas, 0),
        &mat_mul(&axis_rotation(9.1 * mas, 1), &axis_rotation(-22.9 * mas, 2)),
    )
}

/// ICRS → Galactic rotation matrix (through FK5 J2000, as astropy).
pub fn icrs_to_galactic() -> Mat3 {
    let fk5_to_gal = mat_mul(
        &axis_rotation(180.0 - 122.9319185680026, 2),
        &mat_mul(
            &axis_rotation(90.0 - 27.12825118085622, 1),
            &axis_rotation(192.8594812065348, 2),
        ),
    );
    mat_mul(&fk5_to_gal, &icrs_to_fk5())
}

/// Astrometry of one star.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Astrometry {
    /// Heliocentric distance (kpc).
    pub distance_kpc: f64,
    /// ICRS right ascension (deg, [0, 360)).
    pub ra_deg: f64,
    /// ICRS declination (deg).
    pub dec_deg: f64,
    /// Parallax (mas).
    pub parallax_mas: f64,
    /// Proper motion in right ascension times cos δ (mas/yr).
    pub pmra_cosdec_masyr: f64,
    /// Proper motion in declination (mas/yr).
    pub pmdec_masyr: f64,
    /// Heliocentric radial velocity (km/s).
    pub radial_velocity_kms: f64,
    /// Galactic longitude (deg, [0, 360)).
    pub l_deg: f64,
    /// Galactic latitude (deg).
    pub b_deg: f64,
    /// Proper motion in Galactic longitude times cos b (mas/yr).
    pub pml_cosb_masyr: f64,
    /// Proper motion in Galactic latitude (mas/yr).
    pub pmb_masyr: f64,
    /// Distance modulus 5 log10(d / 10 pc) (mag).
    pub distance_modulus: f64,
}

/// Astrometry columns of a batch (parallel to the input slices; units as [`Astrometry`]).
#[derive(Debug, Clone, Default)]
pub struct AstrometryColumns {
    /// Heliocentric distance (kpc).
    pub distance_kpc: Vec<f64>,
    /// ICRS right ascension (deg).
    pub ra_deg: Vec<f64>,
    /// ICRS declination (deg).
    pub dec_deg: Vec<f64>,
    /// Parallax (mas).
    pub parallax_mas: Vec<f64>,
    /// pmra × cos δ (mas/yr).
    pub pmra_cosdec_masyr: Vec<f64>,
    /// pmdec (mas/yr).
    pub pmdec_masyr: Vec<f64>,
    /// Radial velocity (km/s).
    pub radial_velocity_kms: Vec<f64>,
    /// Galactic longitude (deg).
    pub l_deg: Vec<f64>,
    /// Galactic latitude (deg).
    pub b_deg: Vec<f64>,
    /// pml × cos b (mas/yr).
    pub pml_cosb_masyr: Vec<f64>,
    /// pmb (mas/yr).
    pub pmb_masyr: Vec<f64>,
    /// Distance modulus (mag).
    pub distance_modulus: Vec<f64>,
}

/// Precomputed transformation for one observer (cheap to copy, shareable across threads).
#[derive(Debug, Clone, Copy)]
pub struct SkyProjector {
    /// Galaxy frame → ICRS rotation.
    to_icrs: Mat3,
    /// Observer's position in ICRS axes, galaxy origin (kpc): `r_icrs = to_icrs · r − sun`.
    sun_pos: [f64; 3],
    /// Observer's velocity in ICRS axes (km/s).
    sun_vel: [f64; 3],
    /// ICRS → Galactic rotation.
    to_gal: Mat3,
    /// The observer.
    observer: Observer,
}

/// Spherical angles (deg) and proper motions (mas/yr) of a vector and velocity in one frame.
#[inline]
fn sky(r: [f64; 3], v: [f64; 3], d: f64) -> (f64, f64, f64, f64) {
    let rho = r[0].hypot(r[1]);
    let lon = r[1].atan2(r[0]);
    let lat = r[2].atan2(rho);
    let (sl, cl) = lon.sin_cos();
    let (sb, cb) = lat.sin_cos();
    let v_lon = -sl * v[0] + cl * v[1];
    let v_lat = -sb * cl * v[0] - sb * sl * v[1] + cb * v[2];
    let k = 1.0 / (KMS_PER_MASYR_KPC * d);
    (
        lon.to_degrees().rem_euclid(360.0),
        lat.to_degrees(),
        v_lon * k,
        v_lat * k,
    )
}

impl SkyProjector {
    /// Precompute the transformation for `observer`.
    pub fn new(observer: &Observer) -> Self {
        let (a, sun) = observer.icrs_to_galactocentric();
        let at = transpose(&a);
        SkyProjector {
            to_icrs: mat_mul(&at, &observer.galaxy_to_galactocentric()),
            sun_pos: mat_vec(&at, sun),
            sun_vel: mat_vec(&at, observer.v_sun_kms),
            to_gal: icrs_to_galactic(),
            observer: *observer,
        }
    }

    /// The observer this projector was built for.
    pub fn observer(&self) -> &Observer {
        &self.observer
    }

    /// Heliocentric ICRS Cartesian position (kpc) and velocity (km/s) of a galaxy-frame star.
    #[inline]
    pub fn icrs_cartesian(&self, pos_kpc: [f64; 3], vel_kms: [f64; 3]) -> ([f64; 3], [f64; 3]) {
        let r = mat_vec(&self.to_icrs, pos_kpc);
        let v = mat_vec(&self.to_icrs, vel_kms);
        (
            [
                r[0] - self.sun_pos[0],
                r[1] - self.sun_pos[1],
                r[2] - self.sun_pos[2],
            ],
            [
                v[0] - self.sun_vel[0],
                v[1] - self.sun_vel[1],
                v[2] - self.sun_vel[2],
            ],
        )
    }

    /// Astrometry of one star from its galaxy-frame position (kpc) and velocity (km/s).
    #[inline]
    pub fn project(&self, pos_kpc: [f64; 3], vel_kms: [f64; 3]) -> Astrometry {
        let (r, v) = self.icrs_cartesian(pos_kpc, vel_kms);
        let d = (r[0] * r[0] + r[1] * r[1] + r[2] * r[2]).sqrt();
        let rv = (r[0] * v[0] + r[1] * v[1] + r[2] * v[2]) / d;
        let (ra, dec, pmra, pmdec) = sky(r, v, d);
        let (l, b, pml, pmb) = sky(mat_vec(&self.to_gal, r), mat_vec(&self.to_gal, v), d);
        Astrometry {
            distance_kpc: d,
            ra_deg: ra,
            dec_deg: dec,
            parallax_mas: 1.0 / d,
            pmra_cosdec_masyr: pmra,
            pmdec_masyr: pmdec,
            radial_velocity_kms: rv,
            l_deg: l,
            b_deg: b,
            pml_cosb_masyr: pml,
            pmb_masyr: pmb,
            distance_modulus: 5.0 * d.log10() + 10.0,
        }
    }

    /// Astrometry of a batch: parallel slices of galaxy-frame positions (kpc) and velocities
    /// (km/s); columns out.
    pub fn project_batch(
        &self,
        pos_kpc: &[[f64; 3]],
        vel_kms: &[[f64; 3]],
    ) -> Result<AstrometryColumns> {
        let n = pos_kpc.len();
        if vel_kms.len() != n {
            return Err(SurveyError::Invalid(format!(
                "astrometry: {n} positions but {} velocities",
                vel_kms.len()
            )));
        }
        let mut c = AstrometryColumns::default();
        for col in [
            &mut c.distance_kpc,
            &mut c.ra_deg,
            &mut c.dec_deg,
            &mut c.parallax_mas,
            &mut c.pmra_cosdec_masyr,
            &mut c.pmdec_masyr,
            &mut c.radial_velocity_kms,
            &mut c.l_deg,
            &mut c.b_deg,
            &mut c.pml_cosb_masyr,
            &mut c.pmb_masyr,
            &mut c.distance_modulus,
        ] {
            col.reserve_exact(n);
        }
        for (p, v) in pos_kpc.iter().zip(vel_kms) {
            let a = self.project(*p, *v);
            c.distance_kpc.push(a.distance_kpc);
            c.ra_deg.push(a.ra_deg);
            c.dec_deg.push(a.dec_deg);
            c.parallax_mas.push(a.parallax_mas);
            c.pmra_cosdec_masyr.push(a.pmra_cosdec_masyr);
            c.pmdec_masyr.push(a.pmdec_masyr);
            c.radial_velocity_kms.push(a.radial_velocity_kms);
            c.l_deg.push(a.l_deg);
            c.b_deg.push(a.b_deg);
            c.pml_cosb_masyr.push(a.pml_cosb_masyr);
            c.pmb_masyr.push(a.pmb_masyr);
            c.distance_modulus.push(a.distance_modulus);
        }
        Ok(c)
    }
}
