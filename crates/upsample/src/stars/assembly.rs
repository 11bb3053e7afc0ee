//! Star assembly: IMF masses against each parent particle's initial mass, the main-sequence
//! lifetime cut, phase-space positions from a sampler, inherited age, metallicity and parent,
//! streamed in batches into the catalogue.

use anyhow::{bail, Context, Result};
use rand::rngs::Xoshiro256PlusPlus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use snapio::{CatalogWriter, StarBatch, StarParticles};

use super::imf::{Imf, Lifetime};
use super::parents::ParentFinder;
use crate::decompose::{CellBox, Cluster};
use crate::seed::{chunk_seed, cluster_seed, mix_seed, particle_rng, VELOCITY_DRAW};

/// Parent particles processed per batch (bounds memory: their stars are written before the next).
const PARTICLES_PER_BATCH: usize = 2048;

/// Totals of a star-drawing pass.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StarTotals {
    /// Stars written to the catalogue.
    pub stars_written: u64,
    /// Stars drawn from the IMF (before the lifetime cut).
    pub stars_drawn: u64,
    /// Initial mass of all stars drawn, Msun (expected: fraction × particles' initial mass).
    pub initial_mass_drawn_msun: f64,
    /// Initial mass of the stars written, Msun.
    pub initial_mass_written_msun: f64,
    /// Initial mass of the parent particles, Msun.
    pub particle_initial_mass_msun: f64,
}

impl StarTotals {
    /// Adds another pass's totals (a cluster's) to these.
    pub fn add(&mut self, s: &StarTotals) {
        self.stars_written += s.stars_written;
        self.stars_drawn += s.stars_drawn;
        self.initial_mass_drawn_msun += s.initial_mass_drawn_msun;
        self.initial_mass_written_msun += s.initial_mass_written_msun;
        self.particle_initial_mass_msun += s.particle_initial_mass_msun;
    }
}

/// What the stars are drawn from: the IMF, the fraction of stars wanted, the job's seed and the
/// lifetime rule.
#[derive(Clone)]
pub(crate) struct StarDraw<'a> {
    /// Initial mass function sampler.
    pub imf: &'a Imf,
    /// Fraction of the stars drawn (0 < f <= 1).
    pub fraction: f64,
    /// Random seed of the job.
    pub seed: u64,
    /// Which stars are alive at their parent's age (the others are remnants, not written).
    pub lifetime: &'a dyn Lifetime,
}

/// What stars are drawn from in phase space: one ensemble member's position sampler and its
/// velocity sampler conditioned on position (the flow method's flows; anything else will do).
pub(crate) trait PhaseSampler: Sync {
    /// `n` positions (kpc), deterministic given `seed`.
    fn positions(&self, n: usize, seed: u64) -> Result<Vec<[f64; 3]>>;
    /// One velocity (km/s) at each position `x` (kpc), deterministic given `seed`.
    fn velocities(&self, x: &[[f64; 3]], seed: u64) -> Result<Vec<[f64; 3]>>;
}

/// Where drawn stars go: the catalogue writer, or a sink that also feeds other outputs (the
/// survey catalogues). Each call holds every star of each of its parents drawn in that pass.
pub(crate) trait StarSink {
    /// Appends a batch of stars.
    fn append(&mut self, batch: &StarBatch) -> Result<()>;
}

impl StarSink for CatalogWriter {
    fn append(&mut self, batch: &StarBatch) -> Result<()> {
        Ok(CatalogWriter::append(self, batch)?)
    }
}

/// Whether the parents carry FIRE child/generation numbers (their stars then record them).
pub(crate) fn has_parent_identity(parents: &StarParticles) -> bool {
    !parents.child_id.is_empty() || !parents.generation.is_empty()
}

/// Appends one living star of mass `m` (Msun) at (`x` kpc, `v` km/s) to `b`: its initial mass,
/// the age, metallicity and identity of parent `p`, and its cluster.
fn push_star(
    b: &mut StarBatch,
    parents: &StarParticles,
    p: usize,
    x: [f64; 3],
    v: [f64; 3],
    m: f64,
    cluster: u32,
) {
    b.position.push(x);
    b.velocity.push(v);
    b.mass.push(m);
    b.initial_mass.push(m);
    b.age.push(parents.age[p]);
    b.metallicity.push(parents.metallicity[p]);
    b.parent_id.push(parents.id[p]);
    if has_parent_identity(parents) {
        b.parent_child_id.push(parents.child(p));
        b.parent_generation.push(parents.generation_of(p));
    }
    b.cluster.push(cluster);
}

/// Draws the stars of every particle of `parents` (galaxy frame) and appends them to `writer`.
/// Star counts and masses come from `draw.imf` against each parent's initial mass.
/// `place(i, rng)` returns a star's (position kpc, velocity km/s) for parent `i`; `cluster(i)`
/// the cluster index recorded with it. Deterministic given `seed`, whatever the thread count.
pub(crate) fn draw_stars<P, C>(
    parents: &StarParticles,
    draw: &StarDraw,
    place: P,
    cluster: C,
    writer: &mut dyn StarSink,
    mut progress: impl FnMut(usize, u64),
) -> Result<StarTotals>
where
    P: Fn(usize, &mut Xoshiro256PlusPlus) -> ([f64; 3], [f64; 3]) + Sync,
    C: Fn(usize) -> u32 + Sync,
{
    let mut totals = StarTotals {
        particle_initial_mass_msun: parents.initial_mass.iter().sum(),
        ..Default::default()
    };
    let n = parents.len();
    for start in (0..n).step_by(PARTICLES_PER_BATCH) {
        let end = (start + PARTICLES_PER_BATCH).min(n);
        let per_particle: Vec<(StarBatch, u64, f64)> = (start..end)
            .into_par_iter()
            .map(|i| {
                let mut rng = particle_rng(draw.seed, parents.uid(i));
                let k = draw
                    .imf
                    .star_count(parents.initial_mass[i], draw.fraction, &mut rng);
                let mut b = StarBatch::default();
                let mut drawn_mass = 0.0;
                for _ in 0..k {
                    let m = draw.imf.sample(&mut rng);
                    drawn_mass += m;
                    // Draw the phase-space point whether or not the star survives, so the
                    // random stream does not depend on the lifetime relation.
                    let (x, v) = place(i, &mut rng);
                    if !draw
                        .lifetime
                        .alive(m, parents.age[i], parents.metallicity[i])
                    {
                        continue;
                    }
                    push_star(&mut b, parents, i, x, v, m, cluster(i));
                }
                (b, k, drawn_mass)
            })
            .collect();
        let mut batch = StarBatch::default();
        for (b, k, m) in per_particle {
            totals.stars_drawn += k;
            totals.initial_mass_drawn_msun += m;
            totals.initial_mass_written_msun += b.initial_mass.iter().sum::<f64>();
            batch.extend(&b);
        }
        totals.stars_written += batch.len() as u64;
        if !batch.is_empty() {
            writer.append(&batch)?;
        }
        progress(end, totals.stars_written);
    }
    Ok(totals)
}

/// Stars drawn from the flows per chunk (bounds memory for clusters of millions of stars).
const STARS_PER_CHUNK: usize = 1 << 18;

/// Rounds of rejection sampling allowed to fill a chunk inside a core cell.
const MAX_REJECTION_ROUNDS: usize = 64;

/// Draws the stars of one cluster from its flows and appends them to `writer`.
///
/// Star counts and masses come from the IMF against the initial mass of the particles the
/// cluster owns (the same per-particle random streams as the kernel method); positions from
/// p_c(x), kept only inside the core cell when there is one (rejection); velocities from
/// p_c(v | x); age, metallicity and parent ID from the nearest training particle in
/// standardised phase space; then the main-sequence lifetime cut with the inherited age.
/// Ensemble members share the stars equally (star j comes from member j mod E).
pub(crate) fn draw_flow_stars<S: PhaseSampler>(
    parents: &StarParticles,
    cluster: &Cluster,
    index: usize,
    members: &[S],
    draw: &StarDraw,
    writer: &mut CatalogWriter,
) -> Result<StarTotals> {
    if members.is_empty() {
        bail!("{}: no trained flows to draw from", cluster.label);
    }
    let masses: Vec<Vec<f64>> = cluster
        .members
        .par_iter()
        .map(|&i| {
            let mut rng = particle_rng(draw.seed, parents.uid(i));
            let k = draw
                .imf
                .star_count(parents.initial_mass[i], draw.fraction, &mut rng);
            (0..k).map(|_| draw.imf.sample(&mut rng)).collect()
        })
        .collect();
    let masses: Vec<f64> = masses.concat();
    let mut totals = StarTotals {
        particle_initial_mass_msun: cluster
            .members
            .iter()
            .map(|&i| parents.initial_mass[i])
            .sum(),
        stars_drawn: masses.len() as u64,
        initial_mass_drawn_msun: masses.iter().sum(),
        ..Default::default()
    };
    let rows = cluster.training();
    let finder = ParentFinder::new(&parents.position, &parents.velocity, &rows)
        .with_context(|| format!("{} (cluster {index})", cluster.label))?;
    let mut acceptance = core_acceptance(cluster);
    let cluster_seed = cluster_seed(draw.seed, index);
    for (chunk, chunk_masses) in masses.chunks(STARS_PER_CHUNK).enumerate() {
        let n = chunk_masses.len();
        let (position, velocity) = draw_phase(cluster, index, members, n, &mut acceptance, |m| {
            chunk_seed(cluster_seed, chunk, m)
        })?;
        let parent = finder.nearest(&position, &velocity);
        let mut b = StarBatch::default();
        for j in 0..n {
            let (p, m) = (parent[j], chunk_masses[j]);
            if !draw
                .lifetime
                .alive(m, parents.age[p], parents.metallicity[p])
            {
                continue;
            }
            push_star(
                &mut b,
                parents,
                p,
                position[j],
                velocity[j],
                m,
                index as u32,
            );
        }
        totals.stars_written += b.len() as u64;
        totals.initial_mass_written_msun += b.initial_mass.iter().sum::<f64>();
        if !b.is_empty() {
            writer.append(&b)?;
        }
    }
    Ok(totals)
}

/// Positions (kpc) and velocities (km/s) of drawn points, in the galaxy frame.
pub(crate) type PhasePoints = (Vec<[f64; 3]>, Vec<[f64; 3]>);

/// Expected fraction of position draws that land in the cluster's core (1 without a core).
fn core_acceptance(cluster: &Cluster) -> f64 {
    match cluster.core {
        Some(_) => cluster.members.len() as f64 / cluster.training().len().max(1) as f64,
        None => 1.0,
    }
}

/// `n` phase-space points of a cluster's flows: star j from ensemble member j mod E, its
/// position inside the core (rejection), its velocity from p_c(v | x); member m's draws
/// seeded by `seed_of(m)`.
fn draw_phase<S: PhaseSampler>(
    cluster: &Cluster,
    index: usize,
    members: &[S],
    n: usize,
    acceptance: &mut f64,
    seed_of: impl Fn(usize) -> u64,
) -> Result<PhasePoints> {
    let e = members.len();
    let mut position = vec![[0.0; 3]; n];
    let mut velocity = vec![[0.0; 3]; n];
    for (m, member) in members.iter().enumerate() {
        let want = (m..n).step_by(e).count();
        if want == 0 {
            continue;
        }
        let seed = seed_of(m);
        let x = sample_in_core(member, cluster.core.as_ref(), want, seed, acceptance)
            .with_context(|| format!("drawing positions of {} (cluster {index})", cluster.label))?;
        let v = member
            .velocities(&x, mix_seed(seed, VELOCITY_DRAW))
            .with_context(|| {
                format!("drawing velocities of {} (cluster {index})", cluster.label)
            })?;
        for (k, j) in (m..n).step_by(e).enumerate() {
            position[j] = x[k];
            velocity[j] = v[k];
        }
    }
    Ok((position, velocity))
}

/// `n` independent phase-space draws from a cluster's flows exactly as its stars are drawn
/// (core rejection, ensemble members in turn), but with their own `seed` and no masses, ages or
/// lifetime cut: the fidelity report's sample of what the flows produce.
pub(crate) fn draw_phase_sample<S: PhaseSampler>(
    cluster: &Cluster,
    index: usize,
    members: &[S],
    n: usize,
    seed: u64,
) -> Result<PhasePoints> {
    if members.is_empty() {
        bail!("{}: no trained flows to draw from", cluster.label);
    }
    let mut acceptance = core_acceptance(cluster);
    let (mut x, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (chunk, start) in (0..n).step_by(STARS_PER_CHUNK).enumerate() {
        let len = STARS_PER_CHUNK.min(n - start);
        let (cx, cv) = draw_phase(cluster, index, members, len, &mut acceptance, |m| {
            chunk_seed(seed, chunk, m)
        })?;
        x.extend(cx);
        v.extend(cv);
    }
    Ok((x, v))
}

/// Draws `want` positions from a member's position flow, inside `core` when given (rejection,
/// in rounds sized by the running `acceptance` estimate). Deterministic given `seed`.
fn sample_in_core<S: PhaseSampler>(
    member: &S,
    core: Option<&CellBox>,
    want: usize,
    seed: u64,
    acceptance: &mut f64,
) -> Result<Vec<[f64; 3]>> {
    let Some(core) = core else {
        return member.positions(want, seed);
    };
    let mut kept = Vec::with_capacity(want);
    for round in 0..MAX_REJECTION_ROUNDS {
        let missing = want - kept.len();
        let tries = ((missing as f64 / acceptance.max(1e-3)) * 1.1).ceil() as usize + 64;
        let x = member.positions(tries, mix_seed(seed, round as u64))?;
        let before = kept.len();
        kept.extend(x.into_iter().filter(|p| core.contains(p)).take(missing));
        let inside = kept.len() - before;
        if inside < missing {
            // Only a full round measures the acceptance without the truncation bias.
            *acceptance = (inside as f64 / tries as f64).max(1e-4);
        }
        if kept.len() == want {
            return Ok(kept);
        }
    }
    bail!(
        "after {MAX_REJECTION_ROUNDS} rounds only {} of {want} positions fell inside the core cell \
         (acceptance {:.2e}): the position flow puts almost no mass in its own cell",
        kept.len(),
        acceptance
    )
}
