//! Star particles in physical units, spheres, read options and reports.

use std::collections::BTreeMap;
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
    /// FIRE/GIZMO `ParticleChildIDsNumber` (dimensionless); empty when the snapshot has none (all 0).
    pub child_id: Vec<u32>,
    /// FIRE/GIZMO `ParticleIDGenerationNumber` (dimensionless); empty when the snapshot has none (all 0).
    pub generation: Vec<u32>,
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
            child_id: Vec::new(),
            generation: Vec::new(),
        }
    }

    /// `ParticleChildIDsNumber` of particle `i` (0 when the snapshot has none).
    pub fn child(&self, i: usize) -> u32 {
        self.child_id.get(i).copied().unwrap_or(0)
    }

    /// `ParticleIDGenerationNumber` of particle `i` (0 when the snapshot has none).
    pub fn generation_of(&self, i: usize) -> u32 {
        self.generation.get(i).copied().unwrap_or(0)
    }

    /// Unique 64-bit identity of particle `i`: [`particle_uid`] of (ID, child, generation).
    ///
    /// Equal to `id[i]` whenever the child and generation numbers are 0 or absent.
    pub fn uid(&self, i: usize) -> u64 {
        particle_uid(self.id[i], self.child(i), self.generation_of(i))
    }

    /// Unique identities of all particles, in order (see [`StarParticles::uid`]).
    pub fn uids(&self) -> Vec<u64> {
        (0..self.len()).map(|i| self.uid(i)).collect()
    }

    /// Appends identity column entry `i` of `theirs` to `mine`, which describes `n` particles so
    /// far: an absent column stays empty until a value must be stored, then is padded with 0.
    fn push_identity(mine: &mut Vec<u32>, n: usize, theirs: &[u32], i: usize) {
        if theirs.is_empty() && mine.is_empty() {
            return;
        }
        mine.resize(n, 0);
        mine.push(theirs.get(i).copied().unwrap_or(0));
    }

    /// Appends particle `i` of `other`.
    pub fn push_from(&mut self, other: &StarParticles, i: usize) {
        let n = self.len();
        Self::push_identity(&mut self.child_id, n, &other.child_id, i);
        Self::push_identity(&mut self.generation, n, &other.generation, i);
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
        if !self.child_id.is_empty() {
            filt(&mut self.child_id, &mask);
        }
        if !self.generation.is_empty() {
            filt(&mut self.generation, &mask);
        }
    }

    /// Appends all particles of `other`.
    pub fn extend(&mut self, other: &StarParticles) {
        let (n, m) = (self.len(), other.len());
        for (mine, theirs) in [
            (&mut self.child_id, &other.child_id),
            (&mut self.generation, &other.generation),
        ] {
            extend_optional_column(mine, n, theirs, m);
        }
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
        for (name, l) in [
            ("child_id", self.child_id.len()),
            ("generation", self.generation.len()),
        ] {
            if l != 0 && l != n {
                return Err(crate::SnapError::InvalidInput(format!(
                    "StarParticles: `{name}` has {l} entries but `mass` has {n} (0 = absent)"
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

/// SplitMix64's finaliser: a bijection of u64 that mixes every input bit into every output bit.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Tag mixed into the (child, generation) key of [`particle_uid`] ("FIRE-uid").
const UID_TAG: u64 = 0x4649_5245_2d75_6964;

/// Unique 64-bit identity of a particle from `ParticleIDs`, `ParticleChildIDsNumber` and
/// `ParticleIDGenerationNumber` (FIRE-2/3 split star particles share their ParticleIDs).
///
/// `id` itself when child = generation = 0 (every particle of a snapshot without child numbers,
/// so identities, seeds and catalogues of such snapshots are those of the plain IDs); otherwise
/// `mix64(id ^ mix64(((generation << 32) | child) ^ TAG))` with SplitMix64's finaliser `mix64`.
/// For one (child, generation) pair the map is a bijection of the IDs, so two particles can only
/// collide across different pairs (chance about n²/2⁶⁵); the reader checks identities are unique.
pub fn particle_uid(id: u64, child: u32, generation: u32) -> u64 {
    if child == 0 && generation == 0 {
        return id;
    }
    let key = ((generation as u64) << 32) | child as u64;
    mix64(id ^ mix64(key ^ UID_TAG))
}

/// What to do with a particle whose values are invalid (non-finite, mass <= 0, age or
/// metallicity out of range, position outside the box, duplicated identity).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InvalidPolicy {
    /// Stop with an error naming the file, dataset, row and value (the default).
    #[default]
    Error,
    /// Drop the particle and count it per kind in [`ReadReport::invalid_dropped`].
    Drop,
}

impl std::fmt::Display for InvalidPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InvalidPolicy::Error => "error",
            InvalidPolicy::Drop => "drop",
        })
    }
}

impl std::str::FromStr for InvalidPolicy {
    type Err = crate::SnapError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(InvalidPolicy::Error),
            "drop" => Ok(InvalidPolicy::Drop),
            other => Err(crate::SnapError::InvalidInput(format!(
                "on_invalid = `{other}`: expected \"error\" or \"drop\""
            ))),
        }
    }
}

/// How to read star particles.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadOptions {
    /// Keep only stars inside this sphere, given in the snapshot's physical frame (kpc).
    pub region: Option<Sphere>,
    /// Rows read per hyperslab chunk (default 1<<20); bounds memory beyond the kept stars.
    pub chunk_len: usize,
    /// What to do with invalid particles (default: stop with an error).
    pub on_invalid: InvalidPolicy,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            region: None,
            chunk_len: 1 << 20,
            on_invalid: InvalidPolicy::Error,
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
    /// Stars kept (after wind filtering, region selection and dropping invalid particles).
    pub stars_kept: u64,
    /// Bytes of PartType4 data read.
    pub bytes_read: u64,
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Conventions applied and defaults used, in words.
    pub notes: Vec<String>,
    /// Particles dropped as invalid under [`InvalidPolicy::Drop`], per kind (see `docs/UNITS.md`):
    /// `nonfinite_position`, `position_out_of_box`, `nonfinite_velocity`, `nonfinite_mass`,
    /// `nonpositive_mass`, `nonfinite_initial_mass`, `nonpositive_initial_mass`,
    /// `nonfinite_formation_time`, `age_out_of_range`, `nonfinite_metallicity`,
    /// `metallicity_out_of_range`, `child_id_out_of_range`, `duplicate_id`. Each particle is
    /// counted once, under the first check it fails.
    pub invalid_dropped: BTreeMap<String, u64>,
}

impl ReadReport {
    /// Total number of particles dropped as invalid (all kinds).
    pub fn invalid_dropped_total(&self) -> u64 {
        self.invalid_dropped.values().sum()
    }
}

/// Appends an optional column of `m` rows (`theirs`, empty when absent, i.e. all 0) to one of
/// `n` rows (`mine`, same convention): stays empty while both are absent, else is padded with 0.
pub(crate) fn extend_optional_column(mine: &mut Vec<u32>, n: usize, theirs: &[u32], m: usize) {
    if theirs.is_empty() && mine.is_empty() {
        return;
    }
    mine.resize(n, 0);
    if theirs.is_empty() {
        mine.resize(n + m, 0);
    } else {
        mine.extend_from_slice(theirs);
    }
}
