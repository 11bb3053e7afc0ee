//! Maximum-likelihood training: Adam, mini-batches, learning-rate schedule, validation split,
//! early stopping with best-weight restore, and recovery from non-finite losses.
//!
//! # Weighted maximum likelihood
//!
//! [`fit_weighted`] takes one weight `w_i ≥ 0` per row and fits the density of the *weighted*
//! sample, `p ∝ Σ w_i δ(x − x_i)` (e.g. the mass density of particles of unequal mass, where
//! plain training would learn their number density). Everything that sees the data is
//! weighted the same way: the whitening (weighted mean and covariance, weighted medians of the
//! radial compression), each mini-batch's loss `Σ w_i NLL_i / Σ w_i`, the held-out NLL that
//! early stopping watches and every reported NLL (weighted means). Weights are normalised to
//! mean 1 over the training rows (their scale never matters); rows of weight 0 are ignored.
//!
//! Why a weighted loss and not mini-batches drawn with probability ∝ w: the weighted loss is
//! the same objective for every epoch ordering, uses every row exactly once per epoch (so its
//! unweighted limit is today's training, bit for bit, which resampling would not be), and
//! keeps light rows, which resampling would mostly leave out. Its price is gradient noise: a
//! batch of B rows carries the information of Kish's effective size `B_eff = (Σw)² / Σw²` of
//! them, and normalising by the batch's own `Σ w` (rather than by B) keeps the step size
//! independent of how heavy a batch happens to be, at a bias of order 1/B_eff. For weights
//! within a factor of a few of each other (star particles' initial masses) `B_eff` is close to
//! B and nothing changes; for very unequal weights, larger batches (and more patience) are the
//! remedy. [`TrainReport::effective_n_train`] reports the effective training size, and a
//! warning is logged when it is under a tenth of the rows.

use crate::compress::RadialCompression;
use crate::error::CnfError;
use crate::field::VectorField;
use crate::flow::{download, log_prob_whitened, Flow, FlowConfig, Solver, Whitening};
use crate::parallel::{ParallelStep, Penalties};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Learning-rate schedule over epochs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum LrSchedule {
    /// Constant rate.
    Constant,
    /// `lr · gamma^epoch`.
    Exponential {
        /// Decay factor per epoch.
        gamma: f64,
    },
    /// Cosine annealing from `lr` to `lr · min_factor` over all epochs.
    Cosine {
        /// Final rate as a fraction of the initial one.
        min_factor: f64,
    },
}

impl LrSchedule {
    /// Multiplier of the base rate at `epoch` of `epochs`.
    pub fn factor(&self, epoch: usize, epochs: usize) -> f64 {
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::Exponential { gamma } => gamma.powi(epoch as i32),
            LrSchedule::Cosine { min_factor } => {
                let p = epoch as f64 / epochs.max(1) as f64;
                min_factor + (1.0 - min_factor) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos())
            }
        }
    }
}

fn one() -> usize {
    1
}

/// Training hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    pub epochs: usize,
    /// Mini-batch size.
    pub batch_size: usize,
    /// Initial learning rate.
    pub learning_rate: f64,
    /// Learning-rate schedule.
    pub schedule: LrSchedule,
    /// Fraction of the data held out for validation (0 < f < 1).
    pub val_fraction: f64,
    /// Epochs without validation improvement before stopping.
    pub patience: usize,
    /// Epochs that always run before patience may stop training: early in a decaying schedule
    /// the learning rate is high and the held-out NLL noisy, so a flow's best score so far says
    /// little about what it would reach (0: patience counts from the first epoch).
    #[serde(default)]
    pub min_epochs: usize,
    /// Seed of weights, split and mini-batch order.
    pub seed: u64,
    /// How many times a non-finite loss may be recovered from.
    pub max_recoveries: usize,
    /// Gradient-norm clipping (None: off).
    pub grad_clip: Option<f64>,
    /// Stop after this many seconds of training (None: no limit).
    pub time_limit_s: Option<f64>,
    /// Weight of the kinetic-energy penalty ∫|F|² dt (whitened units; 0: off).
    #[serde(default)]
    pub kinetic_reg: f64,
    /// Weight of the Jacobian penalty ∫‖∂F/∂y‖²_F dt (whitened units; 0: off).
    #[serde(default)]
    pub jacobian_reg: f64,
    /// Parts per mini-batch: the batch is cut into this many parts whose gradients are computed
    /// on separate threads when there are threads to spare ([`crate::parallel`]). The number of
    /// parts changes the float rounding of the gradient, the thread count never does. 1: the
    /// whole batch at once (on libtorch, with its own intra-op threads). On flex, whose
    /// operations run on one core, 2 parts train about 1.7x faster on 2 cores.
    #[serde(default = "one")]
    pub batch_parts: usize,
    /// CPU threads a training step may use (0: libtorch's intra-op thread count on libtorch,
    /// the machine's cores on flex); only the speed depends on it.
    #[serde(default)]
    pub threads: usize,
    /// New weights replace the starting ones only when their held-out NLL beats the start's
    /// by at least this many standard errors of the paired per-row difference (0: any
    /// improvement counts). For a flow whose start is already a fitted model (data standardised
    /// by one, so that the near-identity flow is it): a gain within the held-out noise is the
    /// optimiser's noise, not structure, and keeping it would draw that noise.
    #[serde(default)]
    pub min_gain_z: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 1024,
            learning_rate: 3e-3,
            schedule: LrSchedule::Cosine { min_factor: 0.05 },
            val_fraction: 0.1,
            patience: 10,
            min_epochs: 0,
            seed: 0,
            max_recoveries: 5,
            grad_clip: Some(10.0),
            time_limit_s: None,
            kinetic_reg: 0.0,
            jacobian_reg: 0.0,
            batch_parts: 1,
            threads: 0,
            min_gain_z: 0.0,
        }
    }
}

/// What one epoch did (passed to the progress callback and logged with `tracing`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    /// Epoch index (0-based).
    pub epoch: usize,
    /// Total epochs planned.
    pub epochs: usize,
    /// Mean training NLL of the epoch (nats, data space).
    pub train_nll: f64,
    /// Validation NLL after the epoch (nats, data space).
    pub val_nll: f64,
    /// Best validation NLL so far.
    pub best_val_nll: f64,
    /// Learning rate used.
    pub learning_rate: f64,
    /// Seconds the epoch took.
    pub seconds: f64,
    /// Training throughput of the epoch.
    pub samples_per_s: f64,
    /// Recoveries from non-finite losses so far.
    pub recoveries: usize,
}

/// Summary of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs_run: usize,
    /// Epoch whose weights were kept (0 also when the starting weights were: see `kept_start`).
    pub best_epoch: usize,
    /// Whether the starting weights were kept: no epoch beat them (by `min_gain_z` standard
    /// errors, when set).
    #[serde(default)]
    pub kept_start: bool,
    /// The kept weights' held-out gain over the starting weights in standard errors of the
    /// paired per-row NLL difference (None: `min_gain_z` off, or the start kept).
    #[serde(default)]
    pub gain_z: Option<f64>,
    /// Validation NLL of the kept weights (nats), with the fixed-step training solver.
    pub best_val_nll: f64,
    /// Validation NLL of the kept weights (nats) with the adaptive solver: the faithful value.
    #[serde(default)]
    pub best_val_nll_adaptive: f64,
    /// Whether early stopping (or the time limit) ended training.
    pub stopped_early: bool,
    /// Recoveries from non-finite losses.
    pub recoveries: usize,
    /// Number of training samples.
    pub n_train: usize,
    /// Number of validation samples.
    pub n_val: usize,
    /// Kish effective size `(Σw)² / Σw²` of the training rows when the fit was weighted (None:
    /// unweighted, equivalent to `n_train`).
    #[serde(default)]
    pub effective_n_train: Option<f64>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Per-epoch history.
    pub history: Vec<EpochReport>,
}

fn validate(train: &TrainConfig) -> Result<(), CnfError> {
    let bad = |m: &str| Err(CnfError::InvalidConfig(m.to_string()));
    if train.epochs == 0 || train.batch_size == 0 {
        return bad("epochs and batch_size must be > 0");
    }
    if !(train.learning_rate > 0.0 && train.learning_rate.is_finite()) {
        return bad("learning_rate must be positive");
    }
    if !(train.val_fraction > 0.0 && train.val_fraction < 1.0) {
        return bad("val_fraction must be in (0, 1)");
    }
    if !(train.min_gain_z >= 0.0 && train.min_gain_z.is_finite()) {
        return bad("min_gain_z must be finite and >= 0");
    }
    Ok(())
}

/// The rows `idx` of a row-major `cols`-column array.
fn gather_rows(src: &[f32], cols: usize, idx: &[usize]) -> Vec<f32> {
    let mut v = Vec::with_capacity(idx.len() * cols);
    for &i in idx {
        v.extend_from_slice(&src[i * cols..(i + 1) * cols]);
    }
    v
}

fn gather(src: &[f32], cols: usize, idx: &[usize], device: &Device) -> Tensor<2> {
    let v = gather_rows(src, cols, idx);
    Tensor::from_data(TensorData::new(v, [idx.len(), cols]), device)
}

/// Mean NLL (whitened space) of the rows `idx` with `solver`, in chunks without autodiff;
/// the weighted mean `Σ w_i NLL_i / Σ w_i` when `weights` (one per row of the data) are given.
#[allow(clippy::too_many_arguments)]
fn mean_nll(
    field: &VectorField,
    cfg: &FlowConfig,
    xw: &[f32],
    cw: Option<&[f32]>,
    weights: Option<&[f64]>,
    idx: &[usize],
    device: &Device,
    solver: Solver,
) -> Result<f64, CnfError> {
    let Some(w) = weights else {
        let mut total = 0.0;
        for chunk in idx.chunks(cfg.eval_batch) {
            let x = gather(xw, cfg.dim, chunk, device);
            let c = cw.map(|c| gather(c, cfg.context_dim, chunk, device));
            let lp = log_prob_whitened(field, cfg, x, c.as_ref(), solver)?;
            total -= download(lp.sum())?.first().copied().unwrap_or(f64::NAN);
        }
        return Ok(total / idx.len() as f64);
    };
    let rows = row_nll(field, cfg, xw, cw, idx, device, solver)?;
    Ok(weighted_mean(&rows, Some(&gather_weights(w, idx))))
}

/// NLL (whitened space, nats) of each of the rows `idx` with `solver`, without autodiff.
fn row_nll(
    field: &VectorField,
    cfg: &FlowConfig,
    xw: &[f32],
    cw: Option<&[f32]>,
    idx: &[usize],
    device: &Device,
    solver: Solver,
) -> Result<Vec<f64>, CnfError> {
    let mut out = Vec::with_capacity(idx.len());
    for chunk in idx.chunks(cfg.eval_batch) {
        let x = gather(xw, cfg.dim, chunk, device);
        let c = cw.map(|c| gather(c, cfg.context_dim, chunk, device));
        let lp = log_prob_whitened(field, cfg, x, c.as_ref(), solver)?;
        out.extend(download(lp)?.into_iter().map(|v| -v));
    }
    Ok(out)
}

/// The weights of the rows `idx`.
fn gather_weights(w: &[f64], idx: &[usize]) -> Vec<f64> {
    idx.iter().map(|&i| w[i]).collect()
}

/// `Σ w v / Σ w` (the plain mean without weights).
fn weighted_mean(v: &[f64], w: Option<&[f64]>) -> f64 {
    match w {
        None => v.iter().sum::<f64>() / v.len() as f64,
        Some(w) => {
            let (s, t) = v
                .iter()
                .zip(w)
                .fold((0.0, 0.0), |(s, t), (x, wi)| (s + wi * x, t + wi));
            s / t
        }
    }
}

/// The held-out gain of `now` over `start` (per-row NLLs of the same rows, with their weights)
/// in standard errors: the (weighted) mean of the paired differences `start − now` over its
/// standard error `√(Σ w² (d − d̄)²) / Σ w`. Pairing cancels what both score alike (the rows'
/// own spread), so gains far below the NLL's own noise are resolved. +∞ for a gain with no
/// spread, 0 for none.
pub fn paired_gain_z(start: &[f64], now: &[f64], w: Option<&[f64]>) -> f64 {
    let d: Vec<f64> = start.iter().zip(now).map(|(a, b)| a - b).collect();
    let mean = weighted_mean(&d, w);
    let weight = |i: usize| w.map_or(1.0, |w| w[i]);
    let total: f64 = (0..d.len()).map(weight).sum();
    let var: f64 = d
        .iter()
        .enumerate()
        .map(|(i, x)| (weight(i) * (x - mean)).powi(2))
        .sum();
    let se = var.sqrt() / total;
    if mean <= 0.0 {
        0.0
    } else if se > 0.0 {
        mean / se
    } else {
        f64::INFINITY
    }
}

/// Kish's effective sample size `(Σ w)² / Σ w²` of weights (n for equal weights; 0 when they
/// are all zero): how many equal-weight rows carry the same statistical information.
pub fn effective_sample_size(weights: &[f64]) -> f64 {
    let (s1, s2) = weights
        .iter()
        .fold((0.0, 0.0), |(a, b), &w| (a + w, b + w * w));
    if s2 > 0.0 {
        s1 * s1 / s2
    } else {
        0.0
    }
}

/// Checks per-row weights: one per row, finite, ≥ 0, not all zero. Returns None when all are
/// equal (the weighted likelihood is then the unweighted one, and training takes exactly the
/// unweighted path), else the weights.
fn check_weights(weights: Option<&[f64]>, n: usize) -> Result<Option<&[f64]>, CnfError> {
    let Some(w) = weights else {
        return Ok(None);
    };
    if w.len() != n {
        return Err(CnfError::InvalidInput(format!(
            "weights: {} values for {n} rows (need one weight per row)",
            w.len()
        )));
    }
    if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(CnfError::InvalidInput(format!(
            "weights: row {i} has the non-finite weight {v}"
        )));
    }
    if let Some((i, v)) = w.iter().enumerate().find(|(_, v)| **v < 0.0) {
        return Err(CnfError::InvalidInput(format!(
            "weights: row {i} has the negative weight {v}"
        )));
    }
    if w.iter().all(|&v| v == 0.0) {
        return Err(CnfError::InvalidInput(format!(
            "weights: all {n} weights are zero"
        )));
    }
    Ok(if w.iter().all(|&v| v == w[0]) {
        None
    } else {
        Some(w)
    })
}

/// The weights divided by their mean over the training rows, after checking that neither the
/// training rows nor the held-out rows weigh nothing in total.
fn normalise_weights(w: &[f64], split: &HeldOutSplit) -> Result<Vec<f64>, CnfError> {
    let sum = |idx: &[usize]| idx.iter().map(|&i| w[i]).sum::<f64>();
    let (train_sum, val_sum) = (sum(&split.train), sum(&split.val));
    for (what, total, rows) in [
        ("training", train_sum, split.train.len()),
        ("held-out", val_sum, split.val.len()),
    ] {
        if !(total > 0.0 && total.is_finite()) {
            return Err(CnfError::InvalidInput(format!(
                "weights: the {rows} {what} rows of the random split have total weight \
                 {total} (too few rows of non-zero weight)"
            )));
        }
    }
    let mean = train_sum / split.train.len() as f64;
    Ok(w.iter().map(|v| v / mean).collect())
}

/// Fits a flow by maximum likelihood. `x`: samples; `context`: row-major `n × context_dim`
/// (None when unconditional). `progress` is called after every epoch. Same as
/// [`fit_weighted`] without weights.
pub fn fit(
    x: &[[f64; 3]],
    context: Option<&[f64]>,
    cfg: &FlowConfig,
    train: &TrainConfig,
    device: &Device,
    progress: impl FnMut(&EpochReport),
) -> Result<(Flow, TrainReport), CnfError> {
    fit_weighted(x, context, None, cfg, train, device, progress)
}

/// Fits a flow by weighted maximum likelihood: row `i` counts `weights[i]` times (one weight
/// per row, finite, ≥ 0, not all zero; their scale does not matter). The flow learns the
/// density of the weighted sample; see the module documentation for what is weighted and why.
/// `None` (or all weights equal) is plain maximum likelihood, bit for bit the result of
/// [`fit`].
///
/// The steps: check the inputs, split off the held-out rows, fit the whitening on the training
/// rows, then epochs of Adam steps scored on the held-out rows, keeping the best weights until
/// the epochs, the patience or the time limit run out; a non-finite loss restores the best
/// weights and halves the learning rate (at most `max_recoveries` times).
pub fn fit_weighted(
    x: &[[f64; 3]],
    context: Option<&[f64]>,
    weights: Option<&[f64]>,
    cfg: &FlowConfig,
    train: &TrainConfig,
    device: &Device,
    progress: impl FnMut(&EpochReport),
) -> Result<(Flow, TrainReport), CnfError> {
    fit_inner(
        x,
        context,
        weights,
        cfg,
        train,
        device,
        progress,
        &mut NanInjection::default(),
    )
}

/// Fault injection of the training loop, for tests of the recovery path; the crate's own tests
/// enable it through the `test-hooks` feature. Not part of the stable API.
#[cfg(feature = "test-hooks")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrainHooks {
    /// Treat the loss of this global optimisation step (0-based, counted over epochs and
    /// retries) as NaN, once.
    pub nan_at_step: Option<usize>,
}

/// [`fit`] with fault injection (`test-hooks` feature only).
#[cfg(feature = "test-hooks")]
pub fn fit_with_hooks(
    x: &[[f64; 3]],
    context: Option<&[f64]>,
    cfg: &FlowConfig,
    train: &TrainConfig,
    device: &Device,
    progress: impl FnMut(&EpochReport),
    hooks: TrainHooks,
) -> Result<(Flow, TrainReport), CnfError> {
    let mut nan = NanInjection {
        at_step: hooks.nan_at_step,
    };
    fit_inner(x, context, None, cfg, train, device, progress, &mut nan)
}

/// A NaN loss to inject at one global step (once); none in normal use.
#[derive(Debug, Default)]
struct NanInjection {
    at_step: Option<usize>,
}

impl NanInjection {
    /// `value`, or NaN when `step` is the injection step (which is then used up).
    fn apply(&mut self, step: usize, value: f64) -> f64 {
        if self.at_step == Some(step) {
            self.at_step = None;
            f64::NAN
        } else {
            value
        }
    }
}

/// [`fit_weighted`], with a NaN loss injected where `nan` says.
#[allow(clippy::too_many_arguments)]
fn fit_inner(
    x: &[[f64; 3]],
    context: Option<&[f64]>,
    weights: Option<&[f64]>,
    cfg: &FlowConfig,
    train: &TrainConfig,
    device: &Device,
    mut progress: impl FnMut(&EpochReport),
    nan: &mut NanInjection,
) -> Result<(Flow, TrainReport), CnfError> {
    check_inputs(x, context, cfg, train)?;
    let weights = check_weights(weights, x.len())?;
    let start_time = Instant::now();
    // One RNG, in this order: the held-out split, then each epoch's mini-batch order.
    let mut rng = StdRng::seed_from_u64(train.seed);
    let mut split = split_held_out(x.len(), train.val_fraction, &mut rng)?;
    let weights = weights.map(|w| normalise_weights(w, &split)).transpose()?;
    let effective_n_train = weights.as_ref().map(|w| {
        let train_w: Vec<f64> = split.train.iter().map(|&i| w[i]).collect();
        let ess = effective_sample_size(&train_w);
        let n = split.train.len();
        tracing::debug!(n_train = n, effective_n_train = ess, "cnf weighted fit");
        if ess < 0.1 * n as f64 {
            tracing::warn!(
                n_train = n,
                effective_n_train = ess,
                "very unequal weights: the training rows carry the information of {ess:.0} \
                 equal ones; expect noisy gradients (larger batches help)"
            );
        }
        ess
    });
    let data = whiten_training_data(x, context, weights, cfg, &split)?;

    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    let mut field = VectorField::new(&cfg.layer_sizes(), cfg.final_init_scale, train.seed, &ad);
    let mut optim = adam(train);
    let trainer = Trainer {
        cfg,
        data: &data,
        val_idx: &split.val,
        plain: &plain,
        ad: &ad,
        parallel: ParallelStep::new(train.batch_parts, train.threads, &ad)?,
        penalties: Penalties {
            kinetic: train.kinetic_reg,
            jacobian: train.jacobian_reg,
        },
        batch_size: train.batch_size.min(split.train.len()),
    };
    let rk4 = Solver::Rk4(cfg.rk4_steps);
    let gated = train.min_gain_z > 0.0;
    // With a gain threshold, the held-out rows are scored one by one (the same numbers the mean
    // is made of) so that each epoch's gain over the start can be paired row by row.
    let start_rows = if gated {
        Some(trainer.held_out_rows(&field.valid(), rk4)?)
    } else {
        None
    };
    // The held-out rows' weights, gathered once (None: unweighted).
    let val_w = trainer.val_weights();
    let start_val = match &start_rows {
        Some(rows) => trainer.mean_of_rows(rows, val_w.as_deref()),
        None => trainer.held_out_nll(&field.valid(), rk4)?,
    };
    let mut best = BestState::new(field.clone(), start_val);
    let mut recoveries = 0;
    let mut lr_scale = 1.0;
    let mut history = Vec::new();
    let mut stopped_early = false;
    let mut epoch = 0;
    let mut global_step = 0usize;
    // The last epoch's gain over the start, in standard errors (None: not gated).
    let mut gain_z: Option<f64> = None;
    while epoch < train.epochs {
        let t0 = Instant::now();
        let lr = train.learning_rate * train.schedule.factor(epoch, train.epochs) * lr_scale;
        split.train.shuffle(&mut rng);
        let pass;
        (field, pass) =
            trainer.train_epoch(field, &mut optim, lr, &split.train, &mut global_step, nan)?;
        let (sum_loss, n_seen, weight_seen, val) = match pass {
            EpochPass::Diverged => (0.0, 0, 0.0, f64::NAN),
            EpochPass::Finished {
                sum_loss,
                n_seen,
                weight_seen,
            } => {
                let (val, gain) = match &start_rows {
                    Some(start) => {
                        let rows = trainer.held_out_rows(&field.valid(), rk4)?;
                        let gain = paired_gain_z(start, &rows, val_w.as_deref());
                        (trainer.mean_of_rows(&rows, val_w.as_deref()), Some(gain))
                    }
                    None => (trainer.held_out_nll(&field.valid(), rk4)?, None),
                };
                gain_z = gain;
                (sum_loss, n_seen, weight_seen, val)
            }
        };
        if !val.is_finite() {
            recoveries += 1;
            tracing::warn!(
                epoch,
                recoveries,
                "non-finite loss: restoring best weights, halving lr"
            );
            if recoveries > train.max_recoveries {
                return Err(CnfError::Training(format!(
                    "loss became non-finite {recoveries} times (last at epoch {epoch})"
                )));
            }
            field = best.field.clone();
            optim = adam(train);
            lr_scale *= 0.5;
            continue; // retry the epoch
        }
        let secs = t0.elapsed().as_secs_f64();
        best.update(val, &field, epoch, gain_z, train.min_gain_z);
        let report = EpochReport {
            epoch,
            epochs: train.epochs,
            train_nll: if weight_seen > 0.0 {
                sum_loss / weight_seen
            } else {
                sum_loss
            } - data.train_log_det,
            val_nll: val,
            best_val_nll: best.val,
            learning_rate: lr,
            seconds: secs,
            samples_per_s: n_seen as f64 / secs.max(1e-9),
            recoveries,
        };
        // Debug level: callers log the epoch with their own context through `progress`.
        tracing::debug!(
            epoch,
            train_nll = report.train_nll,
            val_nll = val,
            best_val_nll = best.val,
            lr,
            samples_per_s = report.samples_per_s,
            "cnf epoch"
        );
        progress(&report);
        history.push(report);
        epoch += 1;
        let impatient = best.since >= train.patience && epoch >= train.min_epochs;
        let out_of_time = train
            .time_limit_s
            .is_some_and(|limit| start_time.elapsed().as_secs_f64() > limit);
        if epoch < train.epochs && (impatient || out_of_time) {
            stopped_early = true;
            break;
        }
    }
    let best_field = best.field.valid();
    // The kept weights scored again with the adaptive solver: the honest held-out NLL (the
    // fixed-step one can flatter a flow whose dynamics outgrew the step size).
    let adaptive = Solver::Dopri5(cfg.tolerance());
    let best_val_adaptive = trainer
        .held_out_nll(&best_field, adaptive)
        .unwrap_or(f64::NAN);
    let report = TrainReport {
        epochs_run: epoch,
        best_epoch: best.epoch,
        kept_start: best.kept_start,
        gain_z: best.gain_z,
        best_val_nll: best.val,
        best_val_nll_adaptive: best_val_adaptive,
        stopped_early,
        recoveries,
        n_train: split.train.len(),
        n_val: split.val.len(),
        effective_n_train,
        seconds: start_time.elapsed().as_secs_f64(),
        history,
    };
    let flow = Flow::from_parts(cfg.clone(), data.whitening, best_field, &plain);
    Ok((flow, report))
}

/// Checks the settings, the data's shape against `cfg`, and that all values are finite.
fn check_inputs(
    x: &[[f64; 3]],
    context: Option<&[f64]>,
    cfg: &FlowConfig,
    train: &TrainConfig,
) -> Result<(), CnfError> {
    cfg.validate()?;
    validate(train)?;
    if cfg.dim != 3 {
        return Err(CnfError::InvalidConfig("fit needs dim = 3".into()));
    }
    let n = x.len();
    let k = cfg.context_dim;
    match context {
        None if k > 0 => {
            return Err(CnfError::InvalidInput(format!(
                "context of dimension {k} required"
            )))
        }
        Some(c) if c.len() != n * k => {
            return Err(CnfError::InvalidInput(format!(
                "context has {} values, expected {n} x {k}",
                c.len()
            )))
        }
        _ => {}
    }
    if x.iter().flatten().any(|v| !v.is_finite())
        || context.is_some_and(|c| c.iter().any(|v| !v.is_finite()))
    {
        return Err(CnfError::InvalidInput("non-finite values in data".into()));
    }
    Ok(())
}

/// The rows used for training and the rows held out to score it.
#[derive(Debug)]
struct HeldOutSplit {
    /// Training rows (reshuffled every epoch).
    train: Vec<usize>,
    /// Held-out rows.
    val: Vec<usize>,
}

/// How many of `n` rows a fit holds out for validation: `round(n · val_fraction)`.
pub fn held_out_count(n: usize, val_fraction: f64) -> usize {
    ((n as f64) * val_fraction).round() as usize
}

/// A seeded random split of `n` rows: [`held_out_count`] held out, the rest trained on.
fn split_held_out(n: usize, val_fraction: f64, rng: &mut StdRng) -> Result<HeldOutSplit, CnfError> {
    let n_val = held_out_count(n, val_fraction);
    if n_val < 1 || n - n_val < 2 {
        return Err(CnfError::InvalidInput(format!(
            "{n} samples are too few for a validation split of {val_fraction}"
        )));
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let (val, train) = order.split_at(n_val);
    Ok(HeldOutSplit {
        train: train.to_vec(),
        val: val.to_vec(),
    })
}

/// The data as the network sees it: compressed (optionally) and whitened, f32, row-major.
struct WhitenedData {
    /// Per-row weights normalised to mean 1 over the training rows (None: unweighted).
    weights: Option<Vec<f64>>,
    /// The fitted transform (with its compressions), stored in the flow.
    whitening: Whitening,
    /// All rows of `x`, whitened.
    xw: Vec<f32>,
    /// All rows of the context, standardised.
    cw: Option<Vec<f32>>,
    /// log |det| of data → whitened space averaged (weighted) over the training rows (nats).
    train_log_det: f64,
    /// The same averaged (weighted) over the held-out rows (nats).
    val_log_det: f64,
}

/// Fits the compression (optional) and the whitening on the training rows only (weighted
/// when `weights` are given), and applies them to all rows.
fn whiten_training_data(
    x: &[[f64; 3]],
    context: Option<&[f64]>,
    weights: Option<Vec<f64>>,
    cfg: &FlowConfig,
    split: &HeldOutSplit,
) -> Result<WhitenedData, CnfError> {
    let n = x.len();
    let k = cfg.context_dim;
    let train_idx = &split.train;
    let flat: Vec<f64> = x.iter().flat_map(|r| r.iter().copied()).collect();
    let rows_of = |v: &[f64], cols: usize, idx: &[usize]| -> Vec<f64> {
        idx.iter()
            .flat_map(|&i| v[i * cols..(i + 1) * cols].iter().copied())
            .collect()
    };
    let tr_w: Option<Vec<f64>> = weights.as_deref().map(|w| rows_of(w, 1, train_idx));
    let tr_w = tr_w.as_deref();
    let compress = if cfg.compress_data {
        Some(RadialCompression::fit_weighted(
            &rows_of(&flat, 3, train_idx),
            3,
            tr_w,
        )?)
    } else {
        None
    };
    let context_compress = match context {
        Some(c) if cfg.compress_context => Some(RadialCompression::fit_weighted(
            &rows_of(c, k, train_idx),
            k,
            tr_w,
        )?),
        _ => None,
    };
    // Per-row log |det| of the compression: constant in the weights, part of the data-space NLL.
    let (flat, compress_logdet) = match &compress {
        Some(c) => c.apply_host(&flat),
        None => (flat, vec![0.0; n]),
    };
    let context: Option<Vec<f64>> = context.map(|c| match &context_compress {
        Some(k) => k.apply_host(c).0,
        None => c.to_vec(),
    });
    let context = context.as_deref();
    let tr_flat = rows_of(&flat, 3, train_idx);
    let tr_ctx: Option<Vec<f64>> = context.map(|c| rows_of(c, k, train_idx));
    let mut whitening = Whitening::fit_weighted(&tr_flat, 3, tr_ctx.as_deref(), k, tr_w)?;
    if !cfg.whiten_data {
        let identity = Whitening::identity(3, k);
        whitening.mean = identity.mean;
        whitening.chol = identity.chol;
    } else if !cfg.scale_only_axes.is_empty() {
        whitening.scale_only(&cfg.scale_only_axes);
    }
    whitening.compress = compress;
    whitening.context_compress = context_compress;
    let mean_logdet = |idx: &[usize]| match weights.as_deref() {
        None => idx.iter().map(|&i| compress_logdet[i]).sum::<f64>() / idx.len().max(1) as f64,
        Some(w) => {
            let total: f64 = idx.iter().map(|&i| w[i]).sum();
            idx.iter().map(|&i| w[i] * compress_logdet[i]).sum::<f64>() / total
        }
    };
    let log_det = whitening.log_det();
    let val_log_det = log_det + mean_logdet(&split.val);
    let train_log_det = log_det + mean_logdet(train_idx);
    let xw: Vec<f32> = whitening
        .whiten_host(&flat)
        .iter()
        .map(|&v| v as f32)
        .collect();
    let cw: Option<Vec<f32>> = context.map(|c| {
        whitening
            .whiten_context_host(c)
            .iter()
            .map(|&v| v as f32)
            .collect()
    });
    Ok(WhitenedData {
        weights,
        whitening,
        xw,
        cw,
        train_log_det,
        val_log_det,
    })
}

/// A fresh Adam optimiser with the configured gradient clipping (also after a recovery).
fn adam(train: &TrainConfig) -> ModuleOptimizer {
    let mut c = AdamConfig::new();
    if let Some(g) = train.grad_clip {
        c = c.with_grad_clipping(Some(GradientClippingConfig::Norm(g as f32)));
    }
    c.init()
}

/// How one pass over the training rows ended.
enum EpochPass {
    /// A mini-batch loss was not finite: the pass stopped there.
    Diverged,
    /// All mini-batches were used.
    Finished {
        /// Sum over mini-batches of the (weighted) mean NLL (whitened space) times the batch's
        /// rows (its total weight when weighted).
        sum_loss: f64,
        /// Rows trained on.
        n_seen: usize,
        /// Their total weight (their number when unweighted).
        weight_seen: f64,
    },
}

/// What the epochs of one fit share: the data, the devices and the gradient step.
struct Trainer<'a> {
    cfg: &'a FlowConfig,
    data: &'a WhitenedData,
    val_idx: &'a [usize],
    plain: &'a Device,
    ad: &'a Device,
    parallel: ParallelStep,
    penalties: Penalties,
    batch_size: usize,
}

impl Trainer<'_> {
    /// One pass of Adam steps with rate `lr` over `train_idx` in mini-batches (a remainder
    /// smaller than half a batch is dropped: it adds noise, not information; so is a batch
    /// whose rows all weigh zero). `global_step` counts the steps over all epochs. Returns the
    /// updated field.
    fn train_epoch(
        &self,
        mut field: VectorField,
        optim: &mut ModuleOptimizer,
        lr: f64,
        train_idx: &[usize],
        global_step: &mut usize,
        nan: &mut NanInjection,
    ) -> Result<(VectorField, EpochPass), CnfError> {
        let (k, bs) = (self.cfg.context_dim, self.batch_size);
        let mut sum_loss = 0.0;
        let mut n_seen = 0usize;
        let mut weight_seen = 0.0;
        for batch in train_idx.chunks(bs) {
            if batch.len() < bs / 2 {
                continue;
            }
            let wb: Option<Vec<f64>> = self
                .data
                .weights
                .as_deref()
                .map(|w| batch.iter().map(|&i| w[i]).collect());
            let batch_weight = match &wb {
                None => batch.len() as f64,
                Some(w) => w.iter().sum(),
            };
            if batch_weight <= 0.0 {
                continue;
            }
            let xb = gather_rows(&self.data.xw, 3, batch);
            let cb = self.data.cw.as_deref().map(|c| gather_rows(c, k, batch));
            let step = self.parallel.loss_and_grads_weighted(
                &field,
                self.cfg,
                &xb,
                cb.as_deref(),
                wb.as_deref(),
                self.penalties,
                self.ad,
            )?;
            let value = nan.apply(*global_step, step.nll);
            *global_step += 1;
            if !value.is_finite() {
                return Ok((field, EpochPass::Diverged));
            }
            field = optim.step(lr, field, step.grads);
            sum_loss += value * batch_weight;
            n_seen += batch.len();
            weight_seen += batch_weight;
        }
        Ok((
            field,
            EpochPass::Finished {
                sum_loss,
                n_seen,
                weight_seen,
            },
        ))
    }

    /// NLL of each held-out row (whitened space, nats) of a (non-autodiff) field with
    /// `solver`: paired between fields, the log-det of whitening cancels.
    fn held_out_rows(&self, field: &VectorField, solver: Solver) -> Result<Vec<f64>, CnfError> {
        let d = self.data;
        row_nll(
            field,
            self.cfg,
            &d.xw,
            d.cw.as_deref(),
            self.val_idx,
            self.plain,
            solver,
        )
    }

    /// The held-out rows' weights (None: unweighted).
    fn val_weights(&self) -> Option<Vec<f64>> {
        self.data
            .weights
            .as_deref()
            .map(|w| gather_weights(w, self.val_idx))
    }

    /// The held-out NLL in data space (nats) from [`Self::held_out_rows`]'s numbers and the
    /// held-out rows' weights `w` ([`Self::val_weights`]).
    fn mean_of_rows(&self, rows: &[f64], w: Option<&[f64]>) -> f64 {
        weighted_mean(rows, w) - self.data.val_log_det
    }

    /// Held-out NLL in data space (nats, weighted mean when weighted) of a (non-autodiff)
    /// field with `solver`.
    fn held_out_nll(&self, field: &VectorField, solver: Solver) -> Result<f64, CnfError> {
        let d = self.data;
        mean_nll(
            field,
            self.cfg,
            &d.xw,
            d.cw.as_deref(),
            d.weights.as_deref(),
            self.val_idx,
            self.plain,
            solver,
        )
        .map(|v| v - d.val_log_det)
    }
}

/// The weights with the lowest held-out NLL so far, and the epochs since they improved.
struct BestState {
    field: VectorField,
    val: f64,
    epoch: usize,
    since: usize,
    /// Whether `field` is still the starting weights.
    kept_start: bool,
    /// `field`'s gain over the start in standard errors (None: not gated, or the start).
    gain_z: Option<f64>,
}

impl BestState {
    /// The initial weights with their held-out NLL (epoch 0).
    fn new(field: VectorField, val: f64) -> Self {
        Self {
            field,
            val,
            epoch: 0,
            since: 0,
            kept_start: true,
            gain_z: None,
        }
    }

    /// Keeps `field` when `val` beats the best and, where its gain over the start is measured
    /// (`gain_z`), that gain is at least `min_gain_z` standard errors; else counts an epoch
    /// without improvement.
    fn update(
        &mut self,
        val: f64,
        field: &VectorField,
        epoch: usize,
        gain_z: Option<f64>,
        min_gain_z: f64,
    ) {
        if val < self.val && gain_z.is_none_or(|z| z >= min_gain_z) {
            self.val = val;
            self.field = field.clone();
            self.epoch = epoch;
            self.since = 0;
            self.kept_start = false;
            self.gain_z = gain_z;
        } else {
            self.since += 1;
        }
    }
}

impl Flow {
    /// Fits a flow to samples; see [`fit`].
    pub fn fit(
        x: &[[f64; 3]],
        context: Option<&[f64]>,
        cfg: &FlowConfig,
        train: &TrainConfig,
        device: &Device,
        progress: impl FnMut(&EpochReport),
    ) -> Result<(Flow, TrainReport), CnfError> {
        fit(x, context, cfg, train, device, progress)
    }

    /// Fits a flow to weighted samples (weighted maximum likelihood); see [`fit_weighted`].
    pub fn fit_weighted(
        x: &[[f64; 3]],
        context: Option<&[f64]>,
        weights: Option<&[f64]>,
        cfg: &FlowConfig,
        train: &TrainConfig,
        device: &Device,
        progress: impl FnMut(&EpochReport),
    ) -> Result<(Flow, TrainReport), CnfError> {
        fit_weighted(x, context, weights, cfg, train, device, progress)
    }
}
