//! The seed tree: every random stream of a run is derived here from the job's `--seed`, by
//! mixing in the identity of what it draws for (a particle, a cluster, a chunk, a flow, a
//! query point) and a named tag, never from the order of work or the thread count. That is
//! what makes a catalogue identical whether it runs on one core or many, resumed or sharded.
//!
//! ```text
//! seed ─┬─ particle_rng(seed, particle_id)                 IMF counts and masses (+ kernel offsets)
//!       ├─ cluster_seed(seed, c) ─ chunk_seed(.., chunk, member) ─┬─ rejection rounds (.., round)
//!       │                                                          └─ velocity draws (.., VELOCITY_DRAW)
//!       ├─ flow_seed(seed, c, member, role)               weights, batches and splits of one flow
//!       ├─ subset_rng(seed, c)                            the training subset of a large cluster
//!       ├─ held_out(seed, uid, f)                         particles kept out of training (fidelity)
//!       └─ fidelity_seed(seed, c)                         the fidelity report's flow draws and statistics
//! seed ─ survey_seed(seed, observer) ─ survey_star_id(parent uid, cluster, k)   a survey's
//!                                        Gaia noise draws, per star (k: the star's index among
//!                                        its parent's stars in that cluster, catalogue order)
//! accel seed ─ point_seed(seed, i) ─┬─ stream(.., MIXTURE_PICK)  which component draws each velocity
//!                                    ├─ stream(.., FLOW_BASE)     the flows' base normal draws
//!                                    ├─ stream(.., PLUMMER_DRAW)  the analytic sphere's draws
//!                                    └─ stream(.., BOOTSTRAP)     bootstrap resampling
//! ```
//!
//! Changing any tag or derivation changes every catalogue: they are part of what a seed
//! reproduces.

use rand::rngs::Xoshiro256PlusPlus;
use rand::SeedableRng;

/// Tag of the per-cluster star-sampling streams (positions and velocities from the flows).
pub const STAR_SAMPLING: u64 = 0x57A2_5EED;
/// Tag of the velocity draws of one chunk of a cluster's stars.
pub const VELOCITY_DRAW: u64 = 0x7E10_C17E;
/// Tag of the flows' training seeds (initial weights, mini-batches, held-out split).
pub const FLOW_TRAINING: u64 = 0x5EED_F10E;
/// Tag of the random training subset of a cluster with more particles than allowed.
pub const TRAINING_SUBSET: u64 = 0x0005_0B5E;
/// Tag of the component picks of a mixture density ("mixt").
pub const MIXTURE_PICK: u64 = 0x6d69_7874;
/// Tag of the base normal draws of a flow density's velocities ("flow").
pub const FLOW_BASE: u64 = 0x666c_6f77;
/// Tag of the analytic Plummer sphere's velocity draws ("plum").
pub const PLUMMER_DRAW: u64 = 0x706c_756d;
/// Tag of the bootstrap resamples of the acceleration solver ("boot").
pub const BOOTSTRAP: u64 = 0x626f_6f74;

/// Tag of the choice of held-out particles of the fidelity report ("hold").
pub const HOLDOUT: u64 = 0x686f_6c64;
/// Tag of the fidelity report's own draws from a cluster's flows and its statistics ("fide").
pub const FIDELITY: u64 = 0x6669_6465;

/// Whether the particle with unique identity `uid` is held out of training under `seed`, with
/// probability `fraction`: a hash of (seed, uid), so independent of file order and threads.
pub fn held_out(seed: u64, uid: u64, fraction: f64) -> bool {
    let u = (mix_seed(mix_seed(seed, HOLDOUT), uid) >> 11) as f64 / (1u64 << 53) as f64;
    u < fraction
}

/// The seed of cluster `cluster`'s fidelity figures (its extra flow draws, subsamples,
/// permutations and bootstraps); `usize::MAX` names the whole run.
pub fn fidelity_seed(seed: u64, cluster: usize) -> u64 {
    mix_seed(mix_seed(seed, FIDELITY), cluster as u64)
}

/// Tag of a mock survey's Gaia noise draws ("gaia").
pub const SURVEY_ERRORS: u64 = 0x6761_6961;

/// The seed of observer `observer`'s survey noise (each observer's errors are independent).
pub fn survey_seed(seed: u64, observer: usize) -> u64 {
    mix_seed(mix_seed(seed, SURVEY_ERRORS), observer as u64)
}

/// The identity of a star for its survey noise draws: its parent particle's unique identity,
/// the cluster it was drawn in and its index `k` among that parent's stars in that cluster,
/// in catalogue order. None depends on batching, threads or shards.
pub fn survey_star_id(parent_uid: u64, cluster: u32, k: u32) -> u64 {
    mix_seed(mix_seed(parent_uid, cluster as u64), k as u64)
}

/// Mixes a seed and a second value into a well-spread 64-bit seed (SplitMix64 finaliser), so
/// that every (seed, particle), (seed, cluster, chunk) … gets its own random stream.
pub fn mix_seed(seed: u64, value: u64) -> u64 {
    let mut z = seed ^ value.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The random stream `tag` (a particle ID, or one of the tags above) under `seed`.
pub fn stream(seed: u64, tag: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(mix_seed(seed, tag))
}

/// A random stream for one parent particle, independent of processing order and threads.
pub fn particle_rng(seed: u64, particle_id: u64) -> Xoshiro256PlusPlus {
    stream(seed, particle_id)
}

/// The seed of cluster `cluster`'s star sampling.
pub fn cluster_seed(seed: u64, cluster: usize) -> u64 {
    mix_seed(mix_seed(seed, STAR_SAMPLING), cluster as u64)
}

/// The seed of ensemble member `member`'s draws for chunk `chunk` of a cluster's stars.
pub fn chunk_seed(cluster_seed: u64, chunk: usize, member: usize) -> u64 {
    mix_seed(mix_seed(cluster_seed, chunk as u64), member as u64)
}

/// What a flow models: the role enters its seed so that the two flows are independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// p_c(x).
    Position,
    /// p_c(v | x).
    Velocity,
}

/// Seed of one flow of one cluster's ensemble member, from the job seed.
pub fn flow_seed(seed: u64, cluster: usize, member: usize, role: Role) -> u64 {
    let r = match role {
        Role::Position => 1,
        Role::Velocity => 2,
    };
    mix_seed(
        mix_seed(mix_seed(seed, FLOW_TRAINING), cluster as u64),
        (member as u64) << 2 | r,
    )
}

/// The stream choosing the training subset of cluster `cluster`.
pub fn subset_rng(seed: u64, cluster: usize) -> Xoshiro256PlusPlus {
    stream(mix_seed(seed, cluster as u64), TRAINING_SUBSET)
}

/// The seed of query point `index` of an acceleration run with `seed`.
pub fn point_seed(seed: u64, index: usize) -> u64 {
    mix_seed(seed, index as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn streams_are_distinct_and_reproducible() {
        // Known value of the SplitMix64 finaliser chain: a change here changes every catalogue.
        assert_eq!(mix_seed(0, 0), 0);
        assert_ne!(mix_seed(1, 2), mix_seed(2, 1));
        let a = stream(7, 1).next_u64();
        assert_eq!(a, stream(7, 1).next_u64());
        assert_ne!(a, stream(7, 2).next_u64());
        assert_ne!(
            flow_seed(1, 0, 0, Role::Position),
            flow_seed(1, 0, 0, Role::Velocity)
        );
        assert_ne!(cluster_seed(1, 0), cluster_seed(1, 1));
        assert_ne!(chunk_seed(9, 0, 1), chunk_seed(9, 1, 0));
    }

    #[test]
    fn holdout_takes_the_asked_fraction_and_depends_on_the_seed() {
        let n = 200_000u64;
        let held = (0..n).filter(|&u| held_out(3, u, 0.1)).count() as f64;
        // Binomial: sd = sqrt(n f (1-f)) = 134; 5 sd.
        assert!((held - 0.1 * n as f64).abs() < 670.0, "{held}");
        assert_eq!((0..n).filter(|&u| held_out(3, u, 0.0)).count(), 0);
        let moved = (0..n)
            .filter(|&u| held_out(3, u, 0.1) != held_out(4, u, 0.1))
            .count() as f64;
        // Independent choices under two seeds differ for 2 f (1 - f) = 18% of particles.
        assert!((moved / n as f64 - 0.18).abs() < 0.01, "{moved}");
    }
}
