//! The phase-space density of a run's trained flows, for the EOM solver (`eom.rs`).
//!
//! One ensemble member of cluster c stands for `f_cm(x, v) = p_cm(x) p_cm(v | x)` (position
//! flow times velocity flow conditioned on position), restricted to the core cell when the
//! clusters are cells. The run's density is the [`Mixture`] `f = Σ_c Σ_m (W_c / E_c) f_cm`: W_c
//! the cluster's weight (Msun), E_c its ensemble size. So ensembles are averaged in f (not
//! log f), overlapping populations (fof groups, dataset-named groups) are summed, and with cells
//! only the cell holding x answers. Gradients come from autodiff through the flows
//! ([`cnf::Flow::grad_log_prob`]):
//! `∂ log f_cm/∂x = ∇ log p_cm(x) + ∇_context log p_cm(v | x)`, `∂ log f_cm/∂v = ∇_v log p_cm(v | x)`.
//! Every batch goes through the flows at once (N positions, N·K velocities), which is what a GPU
//! wants.

use anyhow::{bail, Context, Result};
use rand_distr::{Distribution, StandardNormal};

use super::density::{velocities_per_point, LogFGrad, Mixture, PhaseSpaceDensity};
use crate::decompose::CellBox;
use crate::models::{Member, ModelSet};
use crate::seed::{stream, FLOW_BASE};

/// One ensemble member's density `p(x) p(v | x)` (kpc, km/s), zero outside `core` if given.
pub(crate) struct FlowDensity<'a> {
    /// The member's flows: p(x) (kpc) and p(v | x) (km/s, context x in kpc).
    pub member: &'a Member,
    /// Cells: the core cell outside which this density is zero.
    pub core: Option<CellBox>,
}

impl FlowDensity<'_> {
    /// Indices of the positions inside the core (all without one).
    fn inside(&self, x: &[[f64; 3]]) -> Vec<usize> {
        (0..x.len())
            .filter(|&i| self.core.as_ref().is_none_or(|b| b.contains(&x[i])))
            .collect()
    }
}

impl PhaseSpaceDensity for FlowDensity<'_> {
    fn log_density(&self, x: &[[f64; 3]]) -> Result<Vec<f64>> {
        let idx = self.inside(x);
        let mut out = vec![f64::NEG_INFINITY; x.len()];
        if idx.is_empty() {
            return Ok(out);
        }
        let pts: Vec<[f64; 3]> = idx.iter().map(|&i| x[i]).collect();
        let lp = self
            .member
            .position_log_prob(&pts)
            .context("log-density of the position flow")?;
        for (&i, l) in idx.iter().zip(lp) {
            out[i] = l;
        }
        Ok(out)
    }

    fn sample_velocities(&self, x: &[[f64; 3]], k: usize, seeds: &[u64]) -> Result<Vec<[f64; 3]>> {
        if seeds.len() != x.len() {
            bail!("{} seeds for {} positions", seeds.len(), x.len());
        }
        let idx = self.inside(x);
        let mut out = vec![[f64::NAN; 3]; x.len() * k];
        if idx.is_empty() || k == 0 {
            return Ok(out);
        }
        // Base draws from each point's own stream: independent of batching and of the flow.
        let mut z = Vec::with_capacity(idx.len() * k);
        let pts: Vec<[f64; 3]> = idx.iter().map(|&i| x[i]).collect();
        for &i in &idx {
            let mut rng = stream(seeds[i], FLOW_BASE);
            for _ in 0..k {
                z.push([
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                ]);
            }
        }
        let v = self
            .member
            .velocities_from_base(&z, &pts, k)
            .context("sampling the velocity flow")?;
        for (n, &i) in idx.iter().enumerate() {
            out[i * k..(i + 1) * k].copy_from_slice(&v[n * k..(n + 1) * k]);
        }
        Ok(out)
    }

    fn grad_log_f(&self, x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<Vec<LogFGrad>> {
        let k = velocities_per_point(x, v)?;
        let idx = self.inside(x);
        let mut out = vec![LogFGrad::EMPTY; v.len()];
        if idx.is_empty() || k == 0 {
            return Ok(out);
        }
        let pts: Vec<[f64; 3]> = idx.iter().map(|&i| x[i]).collect();
        let (lp, gx) = self
            .member
            .position_grad(&pts)
            .context("gradient of the position flow")?;
        let mut vs = Vec::with_capacity(idx.len() * k);
        for &i in &idx {
            vs.extend_from_slice(&v[i * k..(i + 1) * k]);
        }
        let (lv, gv, gc) = self
            .member
            .velocity_grad(&vs, &pts, k)
            .context("gradient of the velocity flow")?;
        for (n, &i) in idx.iter().enumerate() {
            for j in 0..k {
                let r = n * k + j;
                let c = &gc[r];
                out[i * k + j] = LogFGrad {
                    log_f: lp[n] + lv[r],
                    d_dx: [gx[n][0] + c[0], gx[n][1] + c[1], gx[n][2] + c[2]],
                    d_dv: gv[r],
                };
            }
        }
        Ok(out)
    }
}

/// The run's phase-space density: every member of every cluster, weighted W_c / E_c (Msun), so
/// f is in Msun kpc⁻³ (km/s)⁻³.
pub(crate) fn model_density(models: &ModelSet) -> Mixture<FlowDensity<'_>> {
    Mixture {
        components: models
            .clusters
            .iter()
            .flat_map(|c| {
                let w = c.weight_msun / c.members.len().max(1) as f64;
                c.members.iter().map(move |m| {
                    (
                        w,
                        FlowDensity {
                            member: m,
                            core: c.core,
                        },
                    )
                })
            })
            .collect(),
    }
}

impl PhaseSpaceDensity for ModelSet {
    fn log_density(&self, x: &[[f64; 3]]) -> Result<Vec<f64>> {
        model_density(self).log_density(x)
    }

    fn sample_velocities(&self, x: &[[f64; 3]], k: usize, seeds: &[u64]) -> Result<Vec<[f64; 3]>> {
        model_density(self).sample_velocities(x, k, seeds)
    }

    fn grad_log_f(&self, x: &[[f64; 3]], v: &[[f64; 3]]) -> Result<Vec<LogFGrad>> {
        model_density(self).grad_log_f(x, v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamics::harmonic::*;
    use crate::dynamics::{accelerations, EomOptions, Form, Status};
    use cnf::{Flow, FlowConfig};

    fn device() -> cnf::Device {
        let name = std::env::var("CNF_TEST_DEVICE").unwrap_or_else(|_| "flex".into());
        cnf::parse_device(&name).unwrap()
    }

    fn opts(form: Form) -> EomOptions {
        EomOptions {
            k: 32,
            bootstrap: 10,
            form,
            ..EomOptions::default()
        }
    }

    fn rel(a: &[f64; 3], b: &[f64; 3]) -> f64 {
        let d: f64 = (0..3).map(|j| (a[j] - b[j]).powi(2)).sum::<f64>().sqrt();
        d / b.iter().map(|c| c * c).sum::<f64>().sqrt()
    }

    /// The whole flow-backed chain (sampling through the velocity flow, autodiff gradients,
    /// ensemble mixture, solver) recovers the harmonic acceleration of exact-Gaussian flows.
    #[test]
    fn gaussian_flows_give_the_harmonic_acceleration() {
        let dev = device();
        let (s, sigma) = (2.0, 50.0);
        let models = model_set(vec![cluster(
            0,
            1e9,
            None,
            vec![
                member(s, sigma, &dev).unwrap(),
                member(s, sigma, &dev).unwrap(),
            ],
        )]);
        let x = vec![[1.0, 0.0, 0.0], [0.3, -2.0, 1.5], [-4.0, 1.0, 0.2]];
        for form in [Form::Log, Form::Linear] {
            let acc = accelerations(&models, &x, &opts(form), &mut |_, _| {}).unwrap();
            for (p, a) in x.iter().zip(&acc) {
                assert_eq!(a.status, Status::Ok);
                let e = rel(&a.a, &acceleration(s, sigma, p));
                eprintln!(
                    "{form:?} {p:?}: a = {:?}, rel error {e:.2e}, cond {:.1}",
                    a.a, a.condition
                );
                assert!(e < 1e-4, "{form:?} at {p:?}: {:?} rel {e}", a.a);
            }
        }
    }

    /// A member trained in its own frame (a satellite's centre and mean velocity) is the same
    /// member moved: its draws are the unmoved one's shifted, its densities the unmoved one's
    /// at the shifted points, and, at rest, the harmonic acceleration points at its own centre
    /// (moving, it is no steady state of the galaxy frame: the solver must not be asked).
    #[test]
    fn a_member_in_its_own_frame_is_the_member_moved() {
        let dev = device();
        let (s, sigma) = (1.5, 20.0);
        let o = crate::models::Origin {
            position: [8.0, -3.0, 1.0],
            velocity: [150.0, 40.0, -20.0],
        };
        let still = member(s, sigma, &dev).unwrap();
        let moved = Member {
            origin: Some(o),
            ..member(s, sigma, &dev).unwrap()
        };
        let close = |a: &[[f64; 3]], b: &[[f64; 3]]| {
            a.iter()
                .zip(b)
                .all(|(p, q)| (0..3).all(|k| (p[k] - q[k]).abs() < 1e-9 * (1.0 + q[k].abs())))
        };
        let shift = |x: &[[f64; 3]], d: [f64; 3]| -> Vec<[f64; 3]> {
            x.iter()
                .map(|p| std::array::from_fn(|k| p[k] + d[k]))
                .collect()
        };
        let x0 = still.sample_positions(64, 5).unwrap();
        let x1 = moved.sample_positions(64, 5).unwrap();
        assert!(close(&x1, &shift(&x0, o.position)));
        let v0 = still.sample_velocities(&x0, 6).unwrap();
        let v1 = moved.sample_velocities(&x1, 6).unwrap();
        assert!(close(&v1, &shift(&v0, o.velocity)));
        let (l0, l1) = (
            still.position_log_prob(&x0).unwrap(),
            moved.position_log_prob(&x1).unwrap(),
        );
        assert!(l0.iter().zip(&l1).all(|(a, b)| (a - b).abs() < 1e-6));
        let at_rest = Member {
            origin: Some(crate::models::Origin {
                velocity: [0.0; 3],
                ..o
            }),
            ..moved
        };
        let models = model_set(vec![cluster(0, 1e9, None, vec![at_rest])]);
        let x = vec![[9.0, -3.0, 1.0], [8.3, -5.0, 2.5], [4.0, -2.0, 1.2]];
        let acc = accelerations(&models, &x, &opts(Form::Log), &mut |_, _| {}).unwrap();
        for (p, a) in x.iter().zip(&acc) {
            let want = acceleration(s, sigma, &o.to_local(*p));
            assert!(rel(&a.a, &want) < 1e-4, "at {p:?}: {:?} want {want:?}", a.a);
        }
    }

    /// A member's own frame (and its radial profile) survives saving and loading, and a member
    /// saved over it without one leaves no stale file behind.
    #[test]
    fn a_members_origin_is_saved_and_loaded() {
        let device = device();
        let dir = tempfile::tempdir().unwrap();
        let cluster = crate::decompose::Cluster {
            label: "satellite".into(),
            members: vec![0, 1],
            ghosts: Vec::new(),
            core: None,
            component: None,
            own_frame: true,
        };
        let record = crate::models::ClusterRecord::new(0, &cluster, &[1.0; 2], &[1.0; 2]);
        let training = crate::models::TrainingRecord {
            index: 0,
            position: Vec::new(),
            velocity: Vec::new(),
            seconds: 0.0,
        };
        let origin = crate::models::Origin {
            position: [8.0, -3.0, 1.0],
            velocity: [150.0, 40.0, -20.0],
        };
        let moved = Member {
            origin: Some(origin),
            ..member(1.0, 10.0, &device).unwrap()
        };
        crate::models::save_cluster(dir.path(), &[moved], &training).unwrap();
        let loaded = crate::models::load_cluster(dir.path(), &record, 1, &device)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.members[0].origin, Some(origin));
        let x = [[8.5, -3.0, 1.0]];
        let (a, b) = (
            loaded.members[0].position_log_prob(&x).unwrap()[0],
            member(1.0, 10.0, &device)
                .unwrap()
                .position_log_prob(&[[0.5, 0.0, 0.0]])
                .unwrap()[0],
        );
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        crate::models::save_cluster(
            dir.path(),
            &[member(1.0, 10.0, &device).unwrap()],
            &training,
        )
        .unwrap();
        assert!(!dir.path().join("m0").join("origin.json").exists());
        let reloaded = crate::models::load_cluster(dir.path(), &record, 1, &device)
            .unwrap()
            .unwrap();
        assert_eq!(reloaded.members[0].origin, None);
        // The same for a radial profile: saved, then gone with a member saved without one.
        let radial = crate::models::RadialProfile {
            scale: 0.8,
            gamma: 0.7,
            eta: 1.3,
            extent: 40.0,
            correction: None,
        };
        let profiled = Member {
            radial: Some(radial.clone()),
            ..member(1.0, 10.0, &device).unwrap()
        };
        let profile = dir.path().join("m0").join("radial_profile.json");
        crate::models::save_cluster(dir.path(), &[profiled], &training).unwrap();
        assert!(profile.exists());
        let loaded = crate::models::load_cluster(dir.path(), &record, 1, &device)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.members[0].radial, Some(radial));
        crate::models::save_cluster(
            dir.path(),
            &[member(1.0, 10.0, &device).unwrap()],
            &training,
        )
        .unwrap();
        assert!(!profile.exists());
    }

    /// With cells, the cell holding x answers; outside every cell the point is flagged.
    #[test]
    fn cells_answer_for_their_positions() {
        let dev = device();
        let inf = f64::INFINITY;
        let left = CellBox {
            lo: [-inf, -inf, -inf],
            hi: [0.0, inf, inf],
        };
        let right = CellBox {
            lo: [0.0, -inf, -inf],
            hi: [3.0, inf, inf],
        };
        let models = model_set(vec![
            cluster(0, 1e9, Some(left), vec![member(2.0, 50.0, &dev).unwrap()]),
            cluster(1, 1e6, Some(right), vec![member(1.0, 30.0, &dev).unwrap()]),
        ]);
        let x = vec![[-1.0, 0.5, 0.0], [1.0, 0.5, 0.0], [5.0, 0.0, 0.0]];
        let acc = accelerations(&models, &x, &opts(Form::Log), &mut |_, _| {}).unwrap();
        assert!(
            rel(&acc[0].a, &acceleration(2.0, 50.0, &x[0])) < 1e-4,
            "{:?}",
            acc[0]
        );
        assert!(
            rel(&acc[1].a, &acceleration(1.0, 30.0, &x[1])) < 1e-4,
            "{:?}",
            acc[1]
        );
        assert_eq!(acc[2].status, Status::NoDensity);
        assert!(acc[2].a[0].is_nan());
    }

    /// Gradients of a member's log f (position flow plus velocity flow with its context
    /// gradient) agree with finite differences of the flows' log-densities, for random weights.
    #[test]
    fn member_gradients_match_finite_differences() {
        let dev = device();
        let cfg = |context_dim| FlowConfig {
            context_dim,
            width: 16,
            depth: 2,
            final_init_scale: 1.0,
            rtol: 1e-7,
            atol: 1e-7,
            ..FlowConfig::default()
        };
        // Plain velocities, and velocities standardised by a rotating, anisotropic local
        // dispersion (the chain rule through the transform is part of the gradient).
        let dispersion = crate::models::LocalDispersion {
            ln_r: vec![0.3f64.ln(), 0.0, 3.0f64.ln()],
            omega: vec![2.0, 1.0, 0.3],
            ln_sigma_r: vec![1.2f64.ln(), 0.8f64.ln(), 0.5f64.ln()],
            ln_sigma_t: vec![0.9f64.ln(), 0.7f64.ln(), 0.6f64.ln()],
            ln_sigma_phi: Some(vec![1.1f64.ln(), 0.8f64.ln(), 0.5f64.ln()]),
            width: 0.7,
            inner_core: Some(0.25),
            outer_edge: Some(5.0f64.ln()),
            smooth_circular_speed: true,
            quadratic_dispersions: true,
            parabola_width: Some(1.5),
            bin_weights: Some(vec![1.0, 3.0, 2.0]),
        };
        // Positions as they are, and Gaussianised by a cuspy radial profile.
        let radial = crate::models::RadialProfile {
            scale: 0.8,
            gamma: 0.7,
            eta: 1.3,
            extent: 40.0,
            correction: None,
        };
        // The velocity flow conditioned on x, or on the Gaussianised y(x).
        use crate::models::VelocityContext::{Gaussianised, Position};
        // Last, all of it in a cluster's own frame (a satellite's centre and mean velocity).
        let origin = crate::models::Origin {
            position: [0.2, -0.1, 0.3],
            velocity: [0.3, -0.2, 0.1],
        };
        let cases = [
            (None, None, Position, None),
            (Some(dispersion.clone()), None, Position, None),
            (
                Some(dispersion.clone()),
                Some(radial.clone()),
                Position,
                None,
            ),
            (
                Some(dispersion.clone()),
                Some(radial.clone()),
                Gaussianised,
                None,
            ),
            (Some(dispersion), Some(radial), Gaussianised, Some(origin)),
        ];
        for (dispersion, radial, context, origin) in cases {
            let m = Member {
                position: Flow::new(&cfg(0), &dev, 3).unwrap(),
                velocity: Flow::new(&cfg(3), &dev, 4).unwrap(),
                dispersion,
                radial,
                context,
                origin,
            };
            let d = FlowDensity {
                member: &m,
                core: None,
            };
            let x = [0.3, -0.2, 0.5];
            let v = [0.4, 0.1, -0.3];
            let g = d.grad_log_f(&[x], &[v]).unwrap()[0];
            let logf = |xg: [f64; 3], vg: [f64; 3]| {
                // The member's frame by hand; position_log_prob takes the galaxy's.
                let (x, v) = match &m.origin {
                    None => (xg, vg),
                    Some(o) => (o.to_local(xg), o.to_local_velocity(vg)),
                };
                let (s, logdet) = match &m.dispersion {
                    Some(t) => t.standardise(x, v),
                    None => (v, 0.0),
                };
                let c = m.context.at(m.radial.as_ref(), x);
                m.position_log_prob(&[xg]).unwrap()[0]
                    + m.velocity.log_prob(&[s], Some(&c[..])).unwrap()[0]
                    + logdet
            };
            assert!((g.log_f - logf(x, v)).abs() < 1e-4);
            let h = 1e-2;
            for j in 0..3 {
                let (mut xp, mut xm, mut vp, mut vm) = (x, x, v, v);
                xp[j] += h;
                xm[j] -= h;
                vp[j] += h;
                vm[j] -= h;
                let dx = (logf(xp, v) - logf(xm, v)) / (2.0 * h);
                let dv = (logf(x, vp) - logf(x, vm)) / (2.0 * h);
                eprintln!(
                    "{j}: d/dx {} vs {dx}, d/dv {} vs {dv}",
                    g.d_dx[j], g.d_dv[j]
                );
                assert!((g.d_dx[j] - dx).abs() < 2e-2 * (1.0 + dx.abs()));
                assert!((g.d_dv[j] - dv).abs() < 2e-2 * (1.0 + dv.abs()));
            }
            // The context gradient matters here: the x-gradient differs from the position flow's.
            let (_, gx) = m.position_grad(&[x]).unwrap();
            let diff: f64 = (0..3).map(|j| (gx[0][j] - g.d_dx[j]).abs()).sum();
            assert!(diff > 1e-3, "context gradient not included? {diff}");
        }
    }
}
