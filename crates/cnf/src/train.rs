//! Maximum-likelihood training: Adam, mini-batches, learning-rate schedule, validation split,
//! early stopping with best-weight restore, and recovery from non-finite losses.

use crate::compress::RadialCompression;
use crate::error::CnfError;
use crate::field::VectorField;
use crate::flow::{download, log_prob_whitened, Flow, FlowConfig, Solver, Whitening};
use crate::parallel::{ParallelStep, Penalties};
use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::optim::AdamConfig;
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
    /// Testing aid: treat the loss of this global optimisation step as NaN (once), to exercise
    /// the recovery path. None in normal use.
    pub inject_nan_at_step: Option<usize>,
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
            seed: 0,
            max_recoveries: 5,
            grad_clip: Some(10.0),
            time_limit_s: None,
            kinetic_reg: 0.0,
            jacobian_reg: 0.0,
            batch_parts: 1,
            threads: 0,
            inject_nan_at_step: None,
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
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
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

/// Mean NLL (whitened space) of the rows `idx` with `solver`, in chunks without autodiff.
fn mean_nll(
    field: &VectorField,
    cfg: &FlowConfig,
    xw: &[f32],
    cw: Option<&[f32]>,
    idx: &[usize],
    device: &Device,
    solver: Solver,
) -> Result<f64, CnfError> {
    let mut total = 0.0;
    for chunk in idx.chunks(cfg.eval_batch) {
        let x = gather(xw, cfg.dim, chunk, device);
        let c = cw.map(|c| gather(c, cfg.context_dim, chunk, device));
        let lp = log_prob_whitened(field, cfg, x, c.as_ref(), solver)?;
        total -= download(lp.sum())?.first().copied().unwrap_or(f64::NAN);
    }
    Ok(total / idx.len() as f64)
}

/// Fits a flow by maximum likelihood. `x`: samples; `context`: row-major `n × context_dim`
/// (None when unconditional). `progress` is called after every epoch.
pub fn fit(
    x: &[[f64; 3]],
    context: Option<&[f64]>,
    cfg: &FlowConfig,
    train: &TrainConfig,
    device: &Device,
    mut progress: impl FnMut(&EpochReport),
) -> Result<(Flow, TrainReport), CnfError> {
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
    let n_val = ((n as f64) * train.val_fraction).round() as usize;
    if n_val < 1 || n - n_val < 2 {
        return Err(CnfError::InvalidInput(format!(
            "{n} samples are too few for a validation split of {}",
            train.val_fraction
        )));
    }
    let start_time = Instant::now();
    let mut rng = StdRng::seed_from_u64(train.seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    let (val_idx, train_idx) = order.split_at(n_val);
    let mut train_idx = train_idx.to_vec();
    let val_idx = val_idx.to_vec();

    // Compression (optional) and whitening, fitted on the training split only.
    let flat: Vec<f64> = x.iter().flat_map(|r| r.iter().copied()).collect();
    let rows_of = |v: &[f64], cols: usize, idx: &[usize]| -> Vec<f64> {
        idx.iter()
            .flat_map(|&i| v[i * cols..(i + 1) * cols].iter().copied())
            .collect()
    };
    let compress = if cfg.compress_data {
        Some(RadialCompression::fit(&rows_of(&flat, 3, &train_idx), 3)?)
    } else {
        None
    };
    let context_compress = match context {
        Some(c) if cfg.compress_context => {
            Some(RadialCompression::fit(&rows_of(c, k, &train_idx), k)?)
        }
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
    let tr_flat = rows_of(&flat, 3, &train_idx);
    let tr_ctx: Option<Vec<f64>> = context.map(|c| rows_of(c, k, &train_idx));
    let mut whitening = Whitening::fit(&tr_flat, 3, tr_ctx.as_deref(), k)?;
    whitening.compress = compress;
    whitening.context_compress = context_compress;
    let mean_logdet = |idx: &[usize]| {
        idx.iter().map(|&i| compress_logdet[i]).sum::<f64>() / idx.len().max(1) as f64
    };
    let log_det = whitening.log_det();
    let val_log_det = log_det + mean_logdet(&val_idx);
    let train_log_det = log_det + mean_logdet(&train_idx);
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

    let plain = device.clone().without_autodiff();
    let ad = plain.clone().autodiff();
    let sizes = cfg.layer_sizes();
    let mut field = VectorField::new(&sizes, cfg.final_init_scale, train.seed, &ad);
    let make_optim = || {
        let mut c = AdamConfig::new();
        if let Some(g) = train.grad_clip {
            c = c.with_grad_clipping(Some(GradientClippingConfig::Norm(g as f32)));
        }
        c.init()
    };
    let mut optim = make_optim();

    let parallel = ParallelStep::new(train.batch_parts, train.threads, &ad)?;
    let penalties = Penalties {
        kinetic: train.kinetic_reg,
        jacobian: train.jacobian_reg,
    };
    let rk4 = Solver::Rk4(cfg.rk4_steps);
    // Held-out NLL in data space (nats) of a field with a solver.
    let val_nll = |f: &VectorField, solver: Solver| {
        mean_nll(f, cfg, &xw, cw.as_deref(), &val_idx, &plain, solver).map(|v| v - val_log_det)
    };
    let mut best_field = field.clone();
    let mut best_val = val_nll(&field.valid(), rk4)?;
    let mut best_epoch = 0;
    let mut since_best = 0;
    let mut recoveries = 0;
    let mut lr_scale = 1.0;
    let mut history = Vec::new();
    let mut stopped_early = false;
    let bs = train.batch_size.min(train_idx.len());

    let mut epoch = 0;
    let mut global_step = 0usize;
    let mut injected = false;
    while epoch < train.epochs {
        let t0 = Instant::now();
        let lr = train.learning_rate * train.schedule.factor(epoch, train.epochs) * lr_scale;
        train_idx.shuffle(&mut rng);
        let mut sum_loss = 0.0;
        let mut n_seen = 0usize;
        let mut diverged = false;
        for batch in train_idx.chunks(bs) {
            if batch.len() < bs / 2 {
                continue; // drop a small remainder: it adds noise, not information
            }
            let xb = gather_rows(&xw, 3, batch);
            let cb = cw.as_deref().map(|c| gather_rows(c, k, batch));
            let step = parallel.loss_and_grads(&field, cfg, &xb, cb.as_deref(), penalties, &ad)?;
            let mut value = step.nll;
            if !injected && train.inject_nan_at_step == Some(global_step) {
                injected = true;
                value = f64::NAN;
            }
            global_step += 1;
            if !value.is_finite() {
                diverged = true;
                break;
            }
            field = optim.step(lr, field, step.grads);
            sum_loss += value * batch.len() as f64;
            n_seen += batch.len();
        }
        let val = if diverged {
            f64::NAN
        } else {
            val_nll(&field.valid(), rk4)?
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
            field = best_field.clone();
            optim = make_optim();
            lr_scale *= 0.5;
            continue; // retry the epoch
        }
        let secs = t0.elapsed().as_secs_f64();
        let train_nll = sum_loss / n_seen.max(1) as f64 - train_log_det;
        if val < best_val {
            best_val = val;
            best_field = field.clone();
            best_epoch = epoch;
            since_best = 0;
        } else {
            since_best += 1;
        }
        let report = EpochReport {
            epoch,
            epochs: train.epochs,
            train_nll,
            val_nll: val,
            best_val_nll: best_val,
            learning_rate: lr,
            seconds: secs,
            samples_per_s: n_seen as f64 / secs.max(1e-9),
            recoveries,
        };
        // Debug level: callers log the epoch with their own context through `progress`.
        tracing::debug!(
            epoch,
            train_nll,
            val_nll = val,
            best_val_nll = best_val,
            lr,
            samples_per_s = report.samples_per_s,
            "cnf epoch"
        );
        progress(&report);
        history.push(report);
        epoch += 1;
        if since_best >= train.patience {
            stopped_early = true;
            break;
        }
        if let Some(limit) = train.time_limit_s {
            if start_time.elapsed().as_secs_f64() > limit {
                stopped_early = true;
                break;
            }
        }
    }
    let best_field = best_field.valid();
    // The kept weights scored again with the adaptive solver: the honest held-out NLL (the
    // fixed-step one can flatter a flow whose dynamics outgrew the step size).
    let adaptive = Solver::Dopri5(cfg.tolerance());
    let best_val_adaptive = val_nll(&best_field, adaptive).unwrap_or(f64::NAN);
    let flow = Flow::from_parts(cfg.clone(), whitening, best_field, &plain);
    let report = TrainReport {
        epochs_run: epoch,
        best_epoch,
        best_val_nll: best_val,
        best_val_nll_adaptive: best_val_adaptive,
        stopped_early,
        recoveries,
        n_train: train_idx.len(),
        n_val: val_idx.len(),
        seconds: start_time.elapsed().as_secs_f64(),
        history,
    };
    Ok((flow, report))
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
}
