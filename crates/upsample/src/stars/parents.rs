//! Nearest parent particle in standardised phase space: each coordinate of (x, v) divided by
//! its standard deviation over the candidate particles, then a 6D k-d tree (kiddo) finds the
//! closest particle in that metric. Stars inherit age, metallicity and ID from it.

use anyhow::{bail, Result};
use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;

/// A 6D search structure over candidate parents (positions kpc, velocities km/s).
pub(crate) struct ParentFinder {
    tree: ImmutableKdTree<f64, 6>,
    /// Row of each tree item in the caller's indexing.
    rows: Vec<usize>,
    /// Per-coordinate scale (standard deviation) of the 6 coordinates.
    scale: [f64; 6],
}

impl ParentFinder {
    /// Builds the finder over the particles `rows` of (`position`, `velocity`).
    pub(crate) fn new(
        position: &[[f64; 3]],
        velocity: &[[f64; 3]],
        rows: &[usize],
    ) -> Result<Self> {
        if rows.is_empty() {
            bail!("no candidate parent particles");
        }
        let n = rows.len() as f64;
        let coord = |i: usize, d: usize| {
            if d < 3 {
                position[i][d]
            } else {
                velocity[i][d - 3]
            }
        };
        let mut scale = [1.0; 6];
        for (d, s) in scale.iter_mut().enumerate() {
            let mean = rows.iter().map(|&i| coord(i, d)).sum::<f64>() / n;
            let var = rows
                .iter()
                .map(|&i| (coord(i, d) - mean).powi(2))
                .sum::<f64>()
                / n;
            // A degenerate coordinate (a single particle, a flat set) keeps unit scale.
            if var.is_finite() && var > 0.0 {
                *s = var.sqrt();
            }
        }
        let points: Vec<[f64; 6]> = rows
            .iter()
            .map(|&i| std::array::from_fn(|d| coord(i, d) / scale[d]))
            .collect();
        let tree = ImmutableKdTree::<f64, 6>::new_from_slice(&points).map_err(|e| {
            anyhow::anyhow!(
                "cannot build a 6D k-d tree of {} particles: {e:?}",
                rows.len()
            )
        })?;
        Ok(ParentFinder {
            tree,
            rows: rows.to_vec(),
            scale,
        })
    }

    /// Row (caller's indexing) of the nearest parent of each star.
    pub(crate) fn nearest(&self, position: &[[f64; 3]], velocity: &[[f64; 3]]) -> Vec<usize> {
        position
            .par_iter()
            .zip(velocity.par_iter())
            .map(|(x, v)| {
                let q: [f64; 6] = std::array::from_fn(|d| {
                    if d < 3 {
                        x[d] / self.scale[d]
                    } else {
                        v[d - 3] / self.scale[d]
                    }
                });
                let nn = self
                    .tree
                    .query(&q)
                    .nearest_one::<SquaredEuclidean<f64>>()
                    .execute();
                self.rows[nn.item as usize]
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_parent_uses_standardised_coordinates() {
        // Positions spread 100 kpc, velocities 1 km/s: raw Euclidean distances are all
        // position, standardised ones weigh both alike.
        let x = vec![
            [0.0, 0.0, 0.0],
            [100.0, 0.0, 0.0],
            [0.0, 100.0, 0.0],
            [100.0, 100.0, 0.0],
        ];
        let v = vec![
            [0.0, 0.0, 0.0],
            [1.0, 0.0, 0.0],
            [0.0, 1.0, 0.0],
            [1.0, 1.0, 0.0],
        ];
        let f = ParentFinder::new(&x, &v, &[0, 1, 2, 3]).unwrap();
        // Star at x = (30, 0, 0), v = (1, 0, 0): raw distance picks parent 0 (30.0 vs 70.0);
        // standardised (σ_x = 50, σ_v = 0.5) parent 1 is nearer (1.96 vs 4.36 in σ²).
        assert_eq!(f.nearest(&[[30.0, 0.0, 0.0]], &[[1.0, 0.0, 0.0]]), vec![1]);
        // Candidates are a subset: rows keep the caller's indexing.
        let f = ParentFinder::new(&x, &v, &[2, 3]).unwrap();
        assert_eq!(
            f.nearest(&[[90.0, 100.0, 0.0]], &[[0.95, 1.0, 0.0]]),
            vec![3]
        );
        assert!(ParentFinder::new(&x, &v, &[]).is_err());
    }
}
