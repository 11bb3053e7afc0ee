//! The observer: the Sun's place and motion, and the galaxy frame → astropy Galactocentric map.
//!
//! The galaxy frame has z along the galaxy's angular momentum, so the galaxy turns
//! counter-clockwise seen from +z. The Milky Way turns clockwise seen from the North Galactic
//! Pole: its angular momentum points to the South Galactic Pole, −z of astropy's
//! Galactocentric frame. The map is
//!
//! `r_gc = F · Rz(180° − φ) · r_gal`, `v_gc = F · Rz(180° − φ) · v_gal`, `F = diag(1, −1, −1)`,
//!
//! with `Rz` an active rotation about z and φ the observer's azimuth in the galaxy frame
//! (measured from +x toward +y, i.e. along the rotation): the observer lands on the
//! Galactocentric −x axis where astropy puts the Sun, the galaxy's rotation becomes the Milky
//! Way's (the Sun's `v_y = +245.6 km/s` is along it), and the North Galactic Pole is the galaxy
//! frame's −z. In the galaxy frame the Sun sits at `R0 cos θ (cos φ, sin φ, 0) − (0, 0, z_sun)`,
//! `sin θ = z_sun / R0`, and moves with the galaxy's rotation.

/// Rotation matrix, row-major: `out = m · v`.
pub type Mat3 = [[f64; 3]; 3];

/// Matrix product `a · b`.
pub fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    out
}

/// Matrix–vector product `m · v`.
#[inline]
pub fn mat_vec(m: &Mat3, v: [f64; 3]) -> [f64; 3] {
    [
        m[0][0] * v[0] + m[0][1] * v[1] + m[0][2] * v[2],
        m[1][0] * v[0] + m[1][1] * v[1] + m[1][2] * v[2],
        m[2][0] * v[0] + m[2][1] * v[1] + m[2][2] * v[2],
    ]
}

/// Transpose (the inverse of a rotation).
pub fn transpose(m: &Mat3) -> Mat3 {
    let mut t = [[0.0; 3]; 3];
    for (i, row) in m.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            t[j][i] = *v;
        }
    }
    t
}

/// Passive rotation of the coordinate axes by `angle_deg` about axis 0 (x), 1 (y) or 2 (z),
/// the convention of astropy's `rotation_matrix`.
pub fn axis_rotation(angle_deg: f64, axis: usize) -> Mat3 {
    let (s, c) = angle_deg.to_radians().sin_cos();
    match axis {
        0 => [[1.0, 0.0, 0.0], [0.0, c, s], [0.0, -s, c]],
        1 => [[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]],
        _ => [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]],
    }
}

/// Astropy (v4.0 Galactocentric defaults) ICRS right ascension of the Galactic centre (deg).
pub const GALCEN_RA_DEG: f64 = 266.4051;
/// Astropy (v4.0 defaults) ICRS declination of the Galactic centre (deg).
pub const GALCEN_DEC_DEG: f64 = -28.936175;
/// Astropy's roll that aligns the Galactocentric z with the Galactic pole (deg).
pub const GALCEN_ROLL0_DEG: f64 = 58.5986320306;

/// One observer (a Sun) placed in the simulated galaxy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Observer {
    /// Distance from the Sun to the galaxy centre (kpc); astropy `galcen_distance`.
    pub r0_kpc: f64,
    /// Height of the Sun above the disc plane toward the North Galactic Pole (kpc); `z_sun`.
    pub z_sun_kpc: f64,
    /// Sun's velocity in the Galactocentric frame (km/s): (toward the centre, along the
    /// rotation, toward the NGP); astropy `galcen_v_sun`.
    pub v_sun_kms: [f64; 3],
    /// Azimuth of the Sun in the galaxy frame (deg), from +x toward +y (the rotation sense).
    pub azimuth_deg: f64,
}

impl Default for Observer {
    /// Astropy v4.0 Galactocentric defaults: R0 = 8.122 kpc, z_sun = 20.8 pc,
    /// v_sun = (12.9, 245.6, 7.78) km/s; the Sun on the galaxy frame's −x axis.
    fn default() -> Self {
        Observer {
            r0_kpc: 8.122,
            z_sun_kpc: 0.0208,
            v_sun_kms: [12.9, 245.6, 7.78],
            azimuth_deg: 180.0,
        }
    }
}

impl Observer {
    /// `n` copies of `self` spaced evenly in azimuth starting at `self.azimuth_deg`
    /// (e.g. three Suns 120° apart).
    pub fn ring(&self, n: usize) -> Vec<Observer> {
        (0..n)
            .map(|k| Observer {
                azimuth_deg: (self.azimuth_deg + 360.0 * k as f64 / n as f64).rem_euclid(360.0),
                ..*self
            })
            .collect()
    }

    /// Galaxy frame → Galactocentric rotation `F · Rz(180° − φ)` (see the module docs).
    pub fn galaxy_to_galactocentric(&self) -> Mat3 {
        let (s, c) = (180.0 - self.azimuth_deg).to_radians().sin_cos();
        // F · Rz(active): rows 2 and 3 negated.
        [[c, -s, 0.0], [-s, -c, 0.0], [0.0, 0.0, -1.0]]
    }

    /// ICRS → Galactocentric rotation `A` and the Sun's Galactocentric position (kpc):
    /// `r_gc = A · r_icrs + sun`, as astropy builds them.
    pub fn icrs_to_galactocentric(&self) -> (Mat3, [f64; 3]) {
        let r = mat_mul(
            &axis_rotation(GALCEN_ROLL0_DEG, 0),
            &mat_mul(
                &axis_rotation(-GALCEN_DEC_DEG, 1),
                &axis_rotation(GALCEN_RA_DEG, 2),
            ),
        );
        let theta = (self.z_sun_kpc / self.r0_kpc).asin().to_degrees();
        let h = axis_rotation(-theta, 1);
        let a = mat_mul(&h, &r);
        let t = mat_vec(&h, [self.r0_kpc, 0.0, 0.0]);
        (a, [-t[0], -t[1], -t[2]])
    }

    /// The Sun's position in the galaxy frame (kpc).
    pub fn position_galaxy_kpc(&self) -> [f64; 3] {
        let (_, sun) = self.icrs_to_galactocentric();
        mat_vec(&transpose(&self.galaxy_to_galactocentric()), sun)
    }

    /// The Sun's velocity in the galaxy frame (km/s).
    pub fn velocity_galaxy_kms(&self) -> [f64; 3] {
        mat_vec(&transpose(&self.galaxy_to_galactocentric()), self.v_sun_kms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_sun_sits_on_minus_x_below_the_plane_and_corotates() {
        let o = Observer::default();
        let p = o.position_galaxy_kpc();
        let r = (8.122f64.powi(2) - 0.0208f64.powi(2)).sqrt();
        assert!((p[0] + r).abs() < 1e-12 && p[1].abs() < 1e-12, "{p:?}");
        // NGP is the galaxy frame's −z: the Sun, 20.8 pc toward the NGP, has z = −0.0208.
        assert!((p[2] + 0.0208).abs() < 1e-12);
        let v = o.velocity_galaxy_kms();
        assert_eq!(v, [12.9, -245.6, -7.78]);
        // Angular momentum of the Sun along +z: rotation is counter-clockwise seen from +z.
        let lz = p[0] * v[1] - p[1] * v[0];
        assert!(lz > 1900.0, "{lz}");
    }

    #[test]
    fn ring_of_three_suns() {
        let suns = Observer::default().ring(3);
        let az: Vec<f64> = suns.iter().map(|o| o.azimuth_deg).collect();
        assert_eq!(az, [180.0, 300.0, 60.0]);
        let p = suns[1].position_galaxy_kpc();
        let r = (8.122f64.powi(2) - 0.0208f64.powi(2)).sqrt();
        assert!((p[0] - r * 0.5).abs() < 1e-12 && (p[1] + r * 0.75f64.sqrt()).abs() < 1e-12);
        // Each Sun moves along the rotation: v ⟂ r in the plane and Lz > 0.
        for o in &suns {
            let (p, v) = (o.position_galaxy_kpc(), o.velocity_galaxy_kms());
            assert!(p[0] * v[1] - p[1] * v[0] > 1900.0);
        }
    }
}
