//! Star particles in physical units, spheres, read options and reports.

use std::path::PathBuf;

/// Star particles as a struct of arrays, in physical units (kpc, km/s, Msun, Gyr).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StarParticles {
    /// Positions in kpc (physical, snapshot frame unless transformed).
    pub position: Vec<[f64; 3]>,
    /// Peculiar velocities in km/s.
    pub velocity: Vec<[f64; 3]>,
    /// Current masses in Msun.
    pub mass: Vec<f64>,
    /// Initial (birth) masses in Msun; equal to `mass` when the code stores none (see the report).
    pub initial_mass: Vec<f64>,
    /// `ParticleIDs` of the snapshot.
    pub id: Vec<u64>,
    /// Ages at the snapshot time in Gyr.
    pub age: Vec<f64>,
    /// Total metal mass fraction (dimensionless).
    pub metallicity: Vec<f64>,
}

impl StarParticles {
    /// Number of star particles.
    pub fn len(&self) -> usize {
        self.mass.len()
    }

    /// Whether there are no star particles.
    pub fn is_empty(&self) -> bool {
        self.mass.is_empty()
    }

    /// Empty set with room for `n` particles.
    pub fn with_capacity(n: usize) -> Self {
        StarParticles {
            position: Vec::with_capacity(n),
            velocity: Vec::with_capacity(n),
            mass: Vec::with_capacity(n),
            initial_mass: Vec::with_capacity(n),
            id: Vec::with_capacity(n),
            age: Vec::with_capacity(n),
            metallicity: Vec::with_capacity(n),
        }
    }

    /// Appends particle `i` of `other`.
    pub fn push_from(&mut self, other: &StarParticles, i: usize) {
        self.position.push(other.position[i]);
        self.velocity.push(other.velocity[i]);
        self.mass.push(other.mass[i]);
        self.initial_mass.push(other.initial_mass[i]);
        self.id.push(other.id[i]);
        self.age.push(other.age[i]);
        self.metallicity.push(other.metallicity[i]);
    }

    /// New set holding the particles at `indices` (in that order). Panics on an index out of range.
    pub fn select(&self, indices: &[usize]) -> StarParticles {
        let mut out = StarParticles::with_capacity(indices.len());
        for &i in indices {
            out.push_from(self, i);
        }
        out
    }

    /// Keeps only the particles for which `keep(self, i)` is true, in place.
    pub fn retain(&mut self, mut keep: impl FnMut(&StarParticles, usize) -> bool) {
        let mask: Vec<bool> = (0..self.len()).map(|i| keep(self, i)).collect();
        fn filt<T: Copy>(v: &mut Vec<T>, mask: &[bool]) {
            let mut j = 0;
            v.retain(|_| {
                let k = mask[j];
                j += 1;
                k
            });
        }
        filt(&mut self.position, &mask);
        filt(&mut self.velocity, &mask);
        filt(&mut self.mass, &mask);
        filt(&mut self.initial_mass, &mask);
        filt(&mut self.id, &mask);
        filt(&mut self.age, &mask);
        filt(&mut self.metallicity, &mask);
    }

    /// Appends all particles of `other`.
    pub fn extend(&mut self, other: &StarParticles) {
        self.position.extend_from_slice(&other.position);
        self.velocity.extend_from_slice(&other.velocity);
        self.mass.extend_from_slice(&other.mass);
        self.initial_mass.extend_from_slice(&other.initial_mass);
        self.id.extend_from_slice(&other.id);
        self.age.extend_from_slice(&other.age);
        self.metallicity.extend_from_slice(&other.metallicity);
    }

    /// Total current mass in Msun.
    pub fn total_mass(&self) -> f64 {
        self.mass.iter().sum()
    }

    /// Checks that all arrays have the same length; returns that length.
    pub fn check_lengths(&self) -> Result<usize, crate::SnapError> {
        let n = self.mass.len();
        let lens = [
            ("position", self.position.len()),
            ("velocity", self.velocity.len()),
            ("initial_mass", self.initial_mass.len()),
            ("id", self.id.len()),
            ("age", self.age.len()),
            ("metallicity", self.metallicity.len()),
        ];
        for (name, l) in lens {
            if l != n {
                return Err(crate::SnapError::InvalidInput(format!(
                    "StarParticles: `{name}` has {l} entries but `mass` has {n}"
                )));
            }
        }
        Ok(n)
    }
}

/// A sphere: centre and radius in kpc.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sphere {
    /// Centre in kpc.
    pub center: [f64; 3],
    /// Radius in kpc.
    pub radius: f64,
}

impl Sphere {
    /// Whether the point `x` (kpc) lies inside or on the sphere.
    pub fn contains(&self, x: [f64; 3]) -> bool {
        dist2(x, self.center) <= self.radius * self.radius
    }
}

pub(crate) fn dist2(a: [f64; 3], b: [f64; 3]) -> f64 {
    let d = [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
    d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
}

/// Particles inside the sphere `s` (kpc), in whatever frame `stars` are in.
pub fn select_sphere(stars: &StarParticles, s: &Sphere) -> StarParticles {
    let idx: Vec<usize> = (0..stars.len())
        .filter(|&i| s.contains(stars.position[i]))
        .collect();
    stars.select(&idx)
}

/// How to read star particles.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Keep only stars inside this sphere, given in the snapshot's physical frame (kpc).
    pub region: Option<Sphere>,
    /// Rows read per hyperslab chunk (default 1<<20); bounds memory beyond the kept stars.
    pub chunk_len: usize,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            region: None,
            chunk_len: 1 << 20,
        }
    }
}

/// What happened while reading: files, dropped wind particles, conventions applied.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadReport {
    /// AREPO/TNG wind particles (formation time <= 0) found and dropped.
    pub winds_dropped: u64,
    /// Star particles read from the files (before region selection, winds included).
    pub rows_read: u64,
    /// Stars kept (after wind filtering and region selection).
    pub stars_kept: u64,
    /// Bytes of PartType4 data read.
    pub bytes_read: u64,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Conventions applied and defaults used, in words.
    pub notes: Vec<String>,
}
