//! The flow: log-density, sampling, forward/inverse maps, gradients, and affine whitening.
//!
//! Conventions: the ODE runs data → base from `t = 0` to `t = t_end`. [`Flow::inverse`] maps data
//! `x` to base `z` (density direction), [`Flow::forward`] maps `z` to `x` (generative direction).
//! Data are whitened inside the model, `x_w = L⁻¹ (x − μ)` with `Σ = L Lᵀ` the Cholesky factor of
//! the training covariance, so
//! `log p(x) = log N(z) + ∫₀ᵀ tr(∂F/∂y) dt − Σᵢ log Lᵢᵢ`.
//! Context vectors are standardised per component (no Jacobian term: they are not modelled).

use crate::compress::RadialCompression;
use crate::error::CnfError;
use crate::field::{layer_sizes, Activation, VectorField};
use crate::ode::{dopri5, rk4, OdeTolerance};
use crate::trace::{field_and_jacobian, field_and_trace};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

/// Architecture and integration settings of a flow.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowConfig {
    /// Dimension of the modelled variable (the plain-data API needs 3).
    pub dim: usize,
    /// Dimension of the conditioning context (0 for an unconditional flow).
    pub context_dim: usize,
    /// Hidden units per layer.
    pub width: usize,
    /// Number of hidden layers.
    pub depth: usize,
    /// Smooth activation of the hidden layers.
    pub activation: Activation,
    /// RK4 steps used for training (and for `Solver::Rk4` evaluation).
    pub rk4_steps: usize,
    /// Relative tolerance of the adaptive solver.
    pub rtol: f64,
    /// Absolute tolerance of the adaptive solver.
    pub atol: f64,
    /// Maximum number of adaptive steps per solve.
    pub max_solver_steps: usize,
    /// Integration time of the flow.
    pub t_end: f64,
    /// Scale of the output layer at initialisation (0 gives an exact identity flow).
    pub final_init_scale: f64,
    /// Batch size used by the plain-data evaluation API.
    pub eval_batch: usize,
    /// Radially compress the data before whitening (for power-law tails; see [`compress`]).
    ///
    /// [`compress`]: crate::compress
    #[serde(default)]
    pub compress_data: bool,
    /// Radially compress the context before standardising it.
    #[serde(default)]
    pub compress_context: bool,
    /// Fit the data's affine whitening (mean and covariance) in training; `false` keeps it the
    /// identity, for data already standardised so that N(0, I) is the right starting model
    /// (the context is standardised either way).
    #[serde(default = "default_true")]
    pub whiten_data: bool,
    /// With `whiten_data`: subtract the data mean on every axis but divide only these axes by
    /// their standard deviation, with no rotation (a thin axis standardised, the others' tails
    /// left as they are); empty: the full affine whitening.
    #[serde(default)]
    pub scale_only_axes: Vec<usize>,
}

/// Serde default of flags that were always on before they were configurable.
fn default_true() -> bool {
    true
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            dim: 3,
            context_dim: 0,
            width: 64,
            depth: 3,
            activation: Activation::Tanh,
            rk4_steps: 10,
            rtol: 1e-5,
            atol: 1e-5,
            max_solver_steps: 2000,
            t_end: 1.0,
            final_init_scale: 0.01,
            eval_batch: 8192,
            compress_data: false,
            compress_context: false,
            whiten_data: true,
            scale_only_axes: Vec::new(),
        }
    }
}

impl FlowConfig {
    /// Checks the values are usable.
    pub fn validate(&self) -> Result<(), CnfError> {
        let bad = |m: &str| Err(CnfError::InvalidConfig(m.to_string()));
        if self.dim == 0 {
            return bad("dim must be > 0");
        }
        if self.width == 0 || self.depth == 0 {
            return bad("width and depth must be > 0");
        }
        if self.rk4_steps == 0 {
            return bad("rk4_steps must be > 0");
        }
        if !(self.t_end > 0.0 && self.t_end.is_finite()) {
            return bad("t_end must be positive and finite");
        }
        if !(self.rtol > 0.0 && self.atol > 0.0) {
            return bad("rtol and atol must be positive");
        }
        if self.eval_batch == 0 {
            return bad("eval_batch must be > 0");
        }
        if self.scale_only_axes.iter().any(|&a| a >= self.dim) {
            return bad("scale_only_axes must name axes below dim");
        }
        Ok(())
    }

    /// Tolerances of the adaptive solver.
    pub fn tolerance(&self) -> OdeTolerance {
        OdeTolerance {
            rtol: self.rtol,
            atol: self.atol,
            max_steps: self.max_solver_steps,
        }
    }

    /// Layer sizes of the vector field.
    pub fn layer_sizes(&self) -> Vec<usize> {
        layer_sizes(self.dim, self.context_dim, self.width, self.depth)
    }
}

/// Which integrator to use for an evaluation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Solver {
    /// Fixed-step RK4 with this many steps.
    Rk4(usize),
    /// Adaptive Dormand–Prince 5(4).
    Dopri5(OdeTolerance),
}

/// Affine whitening of the data (full Cholesky) and standardisation of the context.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Whitening {
    /// Data mean μ.
    pub mean: Vec<f64>,
    /// Lower Cholesky factor L of the data covariance, row-major `dim × dim`.
    pub chol: Vec<f64>,
    /// Context mean.
    pub context_mean: Vec<f64>,
    /// Context standard deviation (per component).
    pub context_std: Vec<f64>,
    /// Radial compression of the data, applied before the affine map (None: off).
    #[serde(default)]
    pub compress: Option<RadialCompression>,
    /// Radial compression of the context, applied before standardisation (None: off).
    #[serde(default)]
    pub context_compress: Option<RadialCompression>,
}

impl Whitening {
    /// The identity transform.
    pub fn identity(dim: usize, context_dim: usize) -> Self {
        let mut chol = vec![0.0; dim * dim];
        for i in 0..dim {
            chol[i * dim + i] = 1.0;
        }
        Self {
            mean: vec![0.0; dim],
            chol,
            context_mean: vec![0.0; context_dim],
            context_std: vec![1.0; context_dim],
            compress: None,
            context_compress: None,
        }
    }

    /// Estimates mean, covariance Cholesky factor and context scales from row-major samples.
    pub fn fit(
        x: &[f64],
        dim: usize,
        context: Option<&[f64]>,
        context_dim: usize,
    ) -> Result<Self, CnfError> {
        Self::fit_weighted(x, dim, context, context_dim, None)
    }

    /// [`Whitening::fit`] with one weight `w_i` per row (≥ 0, finite): weighted moments,
    /// `μ = Σ w x / V₁` and `Σ = Σ w (x − μ)(x − μ)ᵀ / (V₁ − V₂/V₁)` with `V₁ = Σ w`,
    /// `V₂ = Σ w²` (the unbiased estimator for weights that measure importance; `n − 1` when
    /// the weights are equal), and the same for the context's mean and standard deviation.
    /// `None` gives exactly the numbers of the unweighted fit (unit weights change no rounding).
    pub fn fit_weighted(
        x: &[f64],
        dim: usize,
        context: Option<&[f64]>,
        context_dim: usize,
        weights: Option<&[f64]>,
    ) -> Result<Self, CnfError> {
        let n = x.len() / dim.max(1);
        if n < 2 || x.len() != n * dim {
            return Err(CnfError::InvalidInput(format!(
                "whitening needs at least 2 samples of dimension {dim}, got {} values",
                x.len()
            )));
        }
        if let Some(w) = weights {
            if w.len() != n {
                return Err(CnfError::InvalidInput(format!(
                    "whitening: {} weights for {n} samples",
                    w.len()
                )));
            }
        }
        // Unit weights when there are none: 1·v, Σ 1 = n and n − n/n = n − 1 are exact, so the
        // weighted formulas below reproduce the unweighted estimates bit for bit.
        let weight = |i: usize| weights.map_or(1.0, |w| w[i]);
        let v1: f64 = (0..n).map(weight).sum();
        let v2: f64 = (0..n).map(|i| weight(i) * weight(i)).sum();
        let dof = v1 - v2 / v1;
        if !(v1 > 0.0 && dof > 0.0 && dof.is_finite()) {
            return Err(CnfError::InvalidInput(
                "whitening needs at least 2 samples of non-zero weight".into(),
            ));
        }
        let mut mean = vec![0.0; dim];
        for (i, row) in x.chunks_exact(dim).enumerate() {
            let w = weight(i);
            for (m, v) in mean.iter_mut().zip(row) {
                *m += w * v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= v1);
        let mut cov = vec![0.0; dim * dim];
        for (r, row) in x.chunks_exact(dim).enumerate() {
            let w = weight(r);
            for i in 0..dim {
                for j in 0..=i {
                    cov[i * dim + j] += w * ((row[i] - mean[i]) * (row[j] - mean[j]));
                }
            }
        }
        for i in 0..dim {
            for j in 0..=i {
                cov[i * dim + j] /= dof;
                cov[j * dim + i] = cov[i * dim + j];
            }
        }
        let chol = cholesky(&cov, dim).ok_or_else(|| {
            CnfError::InvalidInput("data covariance is not positive definite".into())
        })?;
        let (context_mean, context_std) = match context {
            None => (vec![0.0; context_dim], vec![1.0; context_dim]),
            Some(c) => {
                let mut m = vec![0.0; context_dim];
                let mut s = vec![0.0; context_dim];
                for (i, row) in c.chunks_exact(context_dim).enumerate() {
                    let w = weight(i);
                    for k in 0..context_dim {
                        m[k] += w * row[k];
                    }
                }
                m.iter_mut().for_each(|v| *v /= v1);
                for (i, row) in c.chunks_exact(context_dim).enumerate() {
                    let w = weight(i);
                    for k in 0..context_dim {
                        s[k] += w * (row[k] - m[k]).powi(2);
                    }
                }
                let s = s
                    .into_iter()
                    .map(|v| {
                        let sd = (v / dof).sqrt();
                        if sd > 0.0 && sd.is_finite() {
                            sd
                        } else {
                            1.0
                        }
                    })
                    .collect();
                (m, s)
            }
        };
        Ok(Self {
            mean,
            chol,
            context_mean,
            context_std,
            compress: None,
            context_compress: None,
        })
    }

    /// Keeps the mean and replaces the covariance's Cholesky factor by the diagonal matrix
    /// that scales `axes` by their standard deviation (√Σ_aa) and leaves the others unscaled.
    pub fn scale_only(&mut self, axes: &[usize]) {
        let d = self.dim();
        let mut chol = Self::identity(d, 0).chol;
        for &a in axes {
            let var: f64 = (0..d).map(|j| self.chol[a * d + j].powi(2)).sum();
            chol[a * d + a] = var.sqrt();
        }
        self.chol = chol;
    }

    /// Dimension of the data.
    pub fn dim(&self) -> usize {
        self.mean.len()
    }

    /// log |det| of the whitening map x → x_w, i.e. −Σ log Lᵢᵢ.
    pub fn log_det(&self) -> f64 {
        let d = self.dim();
        -(0..d).map(|i| self.chol[i * d + i].ln()).sum::<f64>()
    }

    /// Whitens row-major data on the host: `L⁻¹ (x − μ)` (x already compressed when
    /// compression is on).
    pub fn whiten_host(&self, x: &[f64]) -> Vec<f64> {
        let d = self.dim();
        let mut out = vec![0.0; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            // forward substitution L w = x − μ
            for i in 0..d {
                let mut s = row[i] - self.mean[i];
                for j in 0..i {
                    s -= self.chol[i * d + j] * o[j];
                }
                o[i] = s / self.chol[i * d + i];
            }
        }
        out
    }

    /// Standardises row-major context on the host (already compressed when compression is on).
    pub fn whiten_context_host(&self, c: &[f64]) -> Vec<f64> {
        let k = self.context_mean.len();
        if k == 0 {
            return Vec::new();
        }
        c.chunks_exact(k)
            .flat_map(|row| {
                row.iter()
                    .zip(&self.context_mean)
                    .zip(&self.context_std)
                    .map(|((v, m), s)| (v - m) / s)
            })
            .collect()
    }

    /// Device constants: `(μ [1,d], L⁻ᵀ [d,d], Lᵀ [d,d])` for row-vector maps.
    pub fn tensors(&self, device: &Device) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        let d = self.dim();
        let linv = invert_lower(&self.chol, d);
        let mut linv_t = vec![0f32; d * d];
        let mut l_t = vec![0f32; d * d];
        for i in 0..d {
            for j in 0..d {
                linv_t[i * d + j] = linv[j * d + i] as f32;
                l_t[i * d + j] = self.chol[j * d + i] as f32;
            }
        }
        let mean: Vec<f32> = self.mean.iter().map(|&v| v as f32).collect();
        (
            Tensor::from_data(TensorData::new(mean, [1, d]), device),
            Tensor::from_data(TensorData::new(linv_t, [d, d]), device),
            Tensor::from_data(TensorData::new(l_t, [d, d]), device),
        )
    }

    /// Device constants `(mean [1,k], 1/std [1,k])` of the context standardisation.
    pub fn context_tensors(&self, device: &Device) -> (Tensor<2>, Tensor<2>) {
        let k = self.context_mean.len();
        let m: Vec<f32> = self.context_mean.iter().map(|&v| v as f32).collect();
        let s: Vec<f32> = self.context_std.iter().map(|&v| (1.0 / v) as f32).collect();
        (
            Tensor::from_data(TensorData::new(m, [1, k]), device),
            Tensor::from_data(TensorData::new(s, [1, k]), device),
        )
    }
}

fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if !(s > 0.0 && s.is_finite()) {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

fn invert_lower(l: &[f64], d: usize) -> Vec<f64> {
    let mut inv = vec![0.0; d * d];
    for col in 0..d {
        for i in 0..d {
            let mut s = if i == col { 1.0 } else { 0.0 };
            for k in 0..i {
                s -= l[i * d + k] * inv[k * d + col];
            }
            inv[i * d + col] = s / l[i * d + i];
        }
    }
    inv
}

/// log N(z; 0, I) per row, `[B, 1]`.
pub fn base_log_prob(z: Tensor<2>) -> Tensor<2> {
    let d = z.dims()[1] as f64;
    z.square()
        .sum_dim(1)
        .mul_scalar(-0.5)
        .add_scalar(-0.5 * d * (2.0 * std::f64::consts::PI).ln())
}

/// Augmented dynamics d/dt [y, ℓ] = [F(y, t; c), tr ∂F/∂y] on a `[B, dim + 1]` state.
fn augmented(
    field: &VectorField,
    act: Activation,
    dim: usize,
    ctx: Option<&Tensor<2>>,
    t: f64,
    s: Tensor<2>,
) -> Tensor<2> {
    let y = s.narrow(1, 0, dim);
    let (f, tr) = field_and_trace(field, y, t, ctx, act);
    Tensor::cat(vec![f, tr], 1)
}

/// Right-hand side of the regularised training state `[y, ℓ, E, J]`: F, tr ∂F/∂y, |F|² and
/// ‖∂F/∂y‖²_F (the last two integrate to the kinetic energy and Jacobian penalties).
fn augmented_regularised(
    field: &VectorField,
    act: Activation,
    dim: usize,
    ctx: Option<&Tensor<2>>,
    t: f64,
    s: Tensor<2>,
) -> Tensor<2> {
    let y = s.narrow(1, 0, dim);
    let b = y.dims()[0];
    let (f, jac) = field_and_jacobian(field, y, t, ctx, act);
    let mut eye = vec![0f32; dim * dim];
    for j in 0..dim {
        eye[j * dim + j] = 1.0;
    }
    let eye = Tensor::<3>::from_data(
        TensorData::new(eye, [1, dim, dim]),
        (&f.device(), f.dtype()),
    );
    let tr = (jac.clone() * eye).sum_dim(2).sum_dim(1).reshape([b, 1]);
    let kinetic = f.clone().square().sum_dim(1);
    let frob = jac.square().sum_dim(2).sum_dim(1).reshape([b, 1]);
    Tensor::cat(vec![f, tr, kinetic, frob], 1)
}

/// Training objective pieces with fixed-step RK4 (RNODE regularisation, Finlay et al. 2020,
/// "How to train your neural ODE"): returns `(log p [B,1], ∫|F|² dt [B,1], ∫‖∂F/∂y‖²_F dt [B,1])`
/// in whitened space. Penalising the last two keeps the dynamics straight and smooth, so that
/// the fixed-step log-determinant stays faithful to the exact one.
pub fn log_prob_regularised(
    field: &VectorField,
    cfg: &FlowConfig,
    y: Tensor<2>,
    ctx: Option<&Tensor<2>>,
    steps: usize,
) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
    let dim = y.dims()[1];
    let zeros = y.zeros_like().narrow(1, 0, 1);
    let s0 = Tensor::cat(vec![y, zeros.clone(), zeros.clone(), zeros], 1);
    let act = cfg.activation;
    let rhs = |t: f64, s: Tensor<2>| augmented_regularised(field, act, dim, ctx, t, s);
    let s1 = rk4(rhs, s0, 0.0, cfg.t_end, steps);
    let z = s1.clone().narrow(1, 0, dim);
    let ell = s1.clone().narrow(1, dim, 1);
    let kinetic = s1.clone().narrow(1, dim + 1, 1);
    let frob = s1.narrow(1, dim + 2, 1);
    (base_log_prob(z) + ell, kinetic, frob)
}

/// log-density in whitened space, `[B, 1]`: integrates data → base with the trace.
/// `y` and `ctx` are already whitened; works on autodiff devices (training, gradients).
pub fn log_prob_whitened(
    field: &VectorField,
    cfg: &FlowConfig,
    y: Tensor<2>,
    ctx: Option<&Tensor<2>>,
    solver: Solver,
) -> Result<Tensor<2>, CnfError> {
    let [b, dim] = y.dims();
    let s0 = Tensor::cat(vec![y.clone(), y.zeros_like().narrow(1, 0, 1)], 1);
    let _ = b;
    let act = cfg.activation;
    let rhs = |t: f64, s: Tensor<2>| augmented(field, act, dim, ctx, t, s);
    let s1 = match solver {
        Solver::Rk4(n) => rk4(rhs, s0, 0.0, cfg.t_end, n),
        Solver::Dopri5(tol) => dopri5(rhs, s0, 0.0, cfg.t_end, &tol)?.0,
    };
    let z = s1.clone().narrow(1, 0, dim);
    let ell = s1.narrow(1, dim, 1);
    Ok(base_log_prob(z) + ell)
}

/// Integrates the field alone (no trace) between `t0` and `t1` in whitened space.
pub fn transport_whitened(
    field: &VectorField,
    cfg: &FlowConfig,
    y: Tensor<2>,
    ctx: Option<&Tensor<2>>,
    t0: f64,
    t1: f64,
    solver: Solver,
) -> Result<Tensor<2>, CnfError> {
    let act = cfg.activation;
    let rhs = |t: f64, s: Tensor<2>| field.forward(s, t, ctx, act);
    Ok(match solver {
        Solver::Rk4(n) => rk4(rhs, y, t0, t1, n),
        Solver::Dopri5(tol) => dopri5(rhs, y, t0, t1, &tol)?.0,
    })
}

/// A trained (or fresh) continuous normalizing flow with its whitening, on one device.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Architecture and solver settings.
    pub config: FlowConfig,
    /// Affine whitening of data and context.
    pub whitening: Whitening,
    /// Vector-field weights (on the plain, non-autodiff device).
    pub field: VectorField,
    device: Device,
}

/// Converts rows of 3-vectors to a flat f64 vector.
fn flatten3(x: &[[f64; 3]]) -> Vec<f64> {
    x.iter().flat_map(|r| r.iter().copied()).collect()
}

fn upload(v: &[f64], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    let data: Vec<f32> = v.iter().map(|&a| a as f32).collect();
    Tensor::from_data(TensorData::new(data, [rows, cols]), device)
}

/// Reads a tensor back to the host as f64.
pub fn download<const D: usize>(t: Tensor<D>) -> Result<Vec<f64>, CnfError> {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .map_err(|e| CnfError::Readback(format!("{e:?}")))
}

impl Flow {
    /// A fresh flow with identity whitening and seeded near-identity weights.
    pub fn new(cfg: &FlowConfig, device: &Device, seed: u64) -> Result<Self, CnfError> {
        cfg.validate()?;
        let device = device.clone().without_autodiff();
        let field = VectorField::new(&cfg.layer_sizes(), cfg.final_init_scale, seed, &device);
        Ok(Self {
            config: cfg.clone(),
            whitening: Whitening::identity(cfg.dim, cfg.context_dim),
            field,
            device,
        })
    }

    /// Assembles a flow from parts (used by training and checkpoint loading).
    pub fn from_parts(
        config: FlowConfig,
        whitening: Whitening,
        field: VectorField,
        device: &Device,
    ) -> Self {
        Self {
            config,
            whitening,
            field,
            device: device.clone().without_autodiff(),
        }
    }

    /// The device the flow evaluates on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Data → whitened space, with log |det| of the compression per row when it is on.
    fn whiten_x(&self, x: Tensor<2>) -> (Tensor<2>, Option<Tensor<2>>) {
        let (mean, linv_t, _) = self.whitening.tensors(&x.device());
        let (x, logdet) = match &self.whitening.compress {
            Some(c) => {
                let (y, ld) = c.apply(x);
                (y, Some(ld))
            }
            None => (x, None),
        };
        ((x - mean).matmul(linv_t), logdet)
    }

    fn unwhiten_x(&self, y: Tensor<2>) -> Tensor<2> {
        let (mean, _, l_t) = self.whitening.tensors(&y.device());
        let x = y.matmul(l_t) + mean;
        match &self.whitening.compress {
            Some(c) => c.invert(x),
            None => x,
        }
    }

    fn whiten_c(&self, c: Option<Tensor<2>>) -> Option<Tensor<2>> {
        c.map(|c| {
            let c = match &self.whitening.context_compress {
                Some(k) => k.apply(c).0,
                None => c,
            };
            let (m, inv_s) = self.whitening.context_tensors(&c.device());
            (c - m) * inv_s
        })
    }

    fn check_context(&self, c: Option<&Tensor<2>>, b: usize) -> Result<(), CnfError> {
        match (self.config.context_dim, c) {
            (0, None) => Ok(()),
            (0, Some(_)) => Err(CnfError::InvalidInput(
                "context given to an unconditional flow".into(),
            )),
            (k, None) => Err(CnfError::InvalidInput(format!(
                "this flow needs a context of dimension {k}"
            ))),
            (k, Some(c)) => {
                if c.dims() != [b, k] {
                    Err(CnfError::InvalidInput(format!(
                        "context shape {:?}, expected [{b}, {k}]",
                        c.dims()
                    )))
                } else {
                    Ok(())
                }
            }
        }
    }

    /// log p(x | c) for `x [B, dim]`, returns `[B, 1]`. Differentiable when `x`/`c` are on an
    /// autodiff device.
    pub fn log_prob_tensor(
        &self,
        x: Tensor<2>,
        c: Option<Tensor<2>>,
        solver: Solver,
    ) -> Result<Tensor<2>, CnfError> {
        let b = x.dims()[0];
        self.check_context(c.as_ref(), b)?;
        let (y, compress_logdet) = self.whiten_x(x);
        let cw = self.whiten_c(c);
        let lp = log_prob_whitened(&self.field, &self.config, y, cw.as_ref(), solver)?
            .add_scalar(self.whitening.log_det());
        Ok(match compress_logdet {
            Some(ld) => lp + ld,
            None => lp,
        })
    }

    /// Maps base samples `z` to data `x` (generative direction), `[B, dim]`.
    pub fn forward_tensor(
        &self,
        z: Tensor<2>,
        c: Option<Tensor<2>>,
        solver: Solver,
    ) -> Result<Tensor<2>, CnfError> {
        self.check_context(c.as_ref(), z.dims()[0])?;
        let cw = self.whiten_c(c);
        let y = transport_whitened(
            &self.field,
            &self.config,
            z,
            cw.as_ref(),
            self.config.t_end,
            0.0,
            solver,
        )?;
        Ok(self.unwhiten_x(y))
    }

    /// Maps data `x` to base `z` (density direction), `[B, dim]`.
    pub fn inverse_tensor(
        &self,
        x: Tensor<2>,
        c: Option<Tensor<2>>,
        solver: Solver,
    ) -> Result<Tensor<2>, CnfError> {
        self.check_context(c.as_ref(), x.dims()[0])?;
        let cw = self.whiten_c(c);
        let (y, _) = self.whiten_x(x);
        transport_whitened(
            &self.field,
            &self.config,
            y,
            cw.as_ref(),
            0.0,
            self.config.t_end,
            solver,
        )
    }

    /// The adaptive solver with the configured tolerances.
    pub fn adaptive(&self) -> Solver {
        Solver::Dopri5(self.config.tolerance())
    }

    fn check_plain(&self, n: usize, context: Option<&[f64]>) -> Result<(), CnfError> {
        if self.config.dim != 3 {
            return Err(CnfError::InvalidConfig(format!(
                "the plain-data API needs dim = 3, this flow has dim = {}",
                self.config.dim
            )));
        }
        let k = self.config.context_dim;
        match context {
            None if k > 0 => Err(CnfError::InvalidInput(format!(
                "this flow needs a context of dimension {k} per point"
            ))),
            Some(_) if k == 0 => Err(CnfError::InvalidInput(
                "context given to an unconditional flow".into(),
            )),
            Some(c) if c.len() != n * k => Err(CnfError::InvalidInput(format!(
                "context has {} values, expected {n} points x {k}",
                c.len()
            ))),
            _ => Ok(()),
        }
    }

    /// Splits `n` points into evaluation chunks; calls `f(start, len)`.
    fn chunks<T>(
        &self,
        n: usize,
        mut f: impl FnMut(usize, usize) -> Result<Vec<T>, CnfError>,
    ) -> Result<Vec<T>, CnfError> {
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let len = self.config.eval_batch.min(n - start);
            out.extend(f(start, len)?);
            start += len;
        }
        Ok(out)
    }

    fn ctx_chunk(&self, context: Option<&[f64]>, start: usize, len: usize) -> Option<Tensor<2>> {
        let k = self.config.context_dim;
        context.map(|c| upload(&c[start * k..(start + len) * k], len, k, &self.device))
    }

    /// log p(x | c) at each point (adaptive solver). `context`: row-major `n × context_dim`.
    pub fn log_prob(&self, x: &[[f64; 3]], context: Option<&[f64]>) -> Result<Vec<f64>, CnfError> {
        self.check_plain(x.len(), context)?;
        let flat = flatten3(x);
        self.chunks(x.len(), |s, l| {
            let xt = upload(&flat[s * 3..(s + l) * 3], l, 3, &self.device);
            let lp = self.log_prob_tensor(xt, self.ctx_chunk(context, s, l), self.adaptive())?;
            download(lp)
        })
    }

    /// Draws `n` samples (one per context row when conditional), seeded.
    pub fn sample(
        &self,
        n: usize,
        context: Option<&[f64]>,
        seed: u64,
    ) -> Result<Vec<[f64; 3]>, CnfError> {
        self.check_plain(n, context)?;
        let mut rng = StdRng::seed_from_u64(seed);
        let z: Vec<[f64; 3]> = (0..n)
            .map(|_| {
                [
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                    StandardNormal.sample(&mut rng),
                ]
            })
            .collect();
        self.forward(&z, context)
    }

    /// Maps base points z to data points x (adaptive solver).
    pub fn forward(
        &self,
        z: &[[f64; 3]],
        context: Option<&[f64]>,
    ) -> Result<Vec<[f64; 3]>, CnfError> {
        self.check_plain(z.len(), context)?;
        let flat = flatten3(z);
        let v = self.chunks(z.len(), |s, l| {
            let zt = upload(&flat[s * 3..(s + l) * 3], l, 3, &self.device);
            download(self.forward_tensor(zt, self.ctx_chunk(context, s, l), self.adaptive())?)
        })?;
        Ok(rows3(&v))
    }

    /// Maps data points x to base points z (adaptive solver).
    pub fn inverse(
        &self,
        x: &[[f64; 3]],
        context: Option<&[f64]>,
    ) -> Result<Vec<[f64; 3]>, CnfError> {
        self.check_plain(x.len(), context)?;
        let flat = flatten3(x);
        let v = self.chunks(x.len(), |s, l| {
            let xt = upload(&flat[s * 3..(s + l) * 3], l, 3, &self.device);
            download(self.inverse_tensor(xt, self.ctx_chunk(context, s, l), self.adaptive())?)
        })?;
        Ok(rows3(&v))
    }

    /// log p(x | c), its gradient with respect to x and with respect to c (empty rows when
    /// unconditional), by backpropagation through the adaptive solver.
    #[allow(clippy::type_complexity)]
    pub fn grad_log_prob(
        &self,
        x: &[[f64; 3]],
        context: Option<&[f64]>,
    ) -> Result<(Vec<f64>, Vec<[f64; 3]>, Vec<Vec<f64>>), CnfError> {
        self.check_plain(x.len(), context)?;
        let k = self.config.context_dim;
        let flat = flatten3(x);
        let ad = self.device.clone().autodiff();
        let mut logp = Vec::with_capacity(x.len());
        let mut gx = Vec::with_capacity(x.len() * 3);
        let mut gc = Vec::with_capacity(x.len() * k);
        let mut start = 0;
        while start < x.len() {
            let l = self.config.eval_batch.min(x.len() - start);
            let xt = upload(&flat[start * 3..(start + l) * 3], l, 3, &ad).require_grad();
            let ct =
                context.map(|c| upload(&c[start * k..(start + l) * k], l, k, &ad).require_grad());
            let lp = self.log_prob_tensor(xt.clone(), ct.clone(), self.adaptive())?;
            let grads = lp.clone().sum().backward();
            logp.extend(download(lp.inner())?);
            let g = xt
                .grad(&grads)
                .ok_or_else(|| CnfError::Readback("no gradient for x".into()))?;
            gx.extend(download(g)?);
            if let Some(ct) = ct {
                let g = ct
                    .grad(&grads)
                    .ok_or_else(|| CnfError::Readback("no gradient for context".into()))?;
                gc.extend(download(g)?);
            }
            start += l;
        }
        let gc_rows = if k == 0 {
            vec![Vec::new(); x.len()]
        } else {
            gc.chunks_exact(k).map(|r| r.to_vec()).collect()
        };
        Ok((logp, rows3(&gx), gc_rows))
    }
}

fn rows3(v: &[f64]) -> Vec<[f64; 3]> {
    v.chunks_exact(3).map(|r| [r[0], r[1], r[2]]).collect()
}
