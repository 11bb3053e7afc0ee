//! Data-parallel loss and gradient of one mini-batch over CPU threads.
//!
//! The batch's rows are cut into a fixed number of contiguous parts; each runs forward and
//! backward with its own replica of the field (the same parameter ids, its own autodiff graph),
//! its loss weighted by its share of the rows, and the parts' gradients are summed in part
//! order. The sum is the whole batch's gradient up to float rounding. With per-row weights
//! (weighted maximum likelihood, [`crate::train::fit_weighted`]) the batch loss is
//! `Σ w_i NLL_i / Σ w_i`, each part contributing its rows' share of that sum. Parts run on separate
//! threads when the step has them and one after another when not: the part count, never the
//! thread count, decides the numbers, so a seed gives the same flows on one core or many.
//!
//! Why: a training step is thousands of small operations, each a pass over a `[B, 64]` block.
//! flex runs every one on a single core; libtorch splits each across its OpenMP team and makes
//! the team wait at a barrier after each (and spin while burn's autodiff bookkeeping runs on the
//! calling thread). Whole parts on separate threads, with libtorch held to one intra-op thread
//! in each, keep every core busy on its own work. A GPU gets one thread (its parts, if more than
//! one, run one after another).

use crate::backend::DeviceKind;
use crate::error::CnfError;
use crate::field::VectorField;
use crate::flow::{download, log_prob_regularised, log_prob_whitened, FlowConfig, Solver};
use burn::module::{Module, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::{Device, Tensor, TensorData};

/// Weights of the RNODE penalties added to the NLL (whitened units; 0 turns one off).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Penalties {
    /// Weight of ∫|F|² dt.
    pub kinetic: f64,
    /// Weight of ∫‖∂F/∂y‖²_F dt.
    pub jacobian: f64,
}

/// Loss and gradient of one mini-batch.
#[derive(Debug)]
pub struct BatchGradient {
    /// Mean NLL of the batch in whitened space (nats; penalties not included), weighted by the
    /// rows' weights when there are any; NaN when any part's was not finite.
    pub nll: f64,
    /// Gradient of the mean loss (NLL plus penalties) by parameter.
    pub grads: GradientsParams,
}

/// The threads that compute mini-batch gradients; build one per training run.
pub struct ParallelStep {
    pool: Option<rayon::ThreadPool>,
    parts: usize,
    threads: usize,
    /// libtorch intra-op threads of each part thread (0: not libtorch CPU).
    torch_threads: usize,
}

impl std::fmt::Debug for ParallelStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelStep")
            .field("parts", &self.parts)
            .field("threads", &self.threads)
            .finish()
    }
}

/// libtorch's intra-op thread count as the calling thread sees it (`None` without `tch`).
fn torch_threads() -> Option<usize> {
    #[cfg(feature = "tch")]
    {
        // SAFETY: a plain getter of libtorch's thread setting.
        Some(unsafe { torch_sys::at_get_num_threads() }.max(1) as usize)
    }
    #[cfg(not(feature = "tch"))]
    None
}

/// Sets libtorch's intra-op thread count for the calling thread (and as the default of threads
/// that have not run a parallel libtorch operation yet); no-op without `tch`.
pub fn set_torch_threads(n: usize) {
    #[cfg(feature = "tch")]
    // SAFETY: a plain setter of libtorch's thread setting.
    unsafe {
        torch_sys::at_set_num_threads(n.max(1) as std::os::raw::c_int)
    };
    #[cfg(not(feature = "tch"))]
    let _ = n;
}

impl ParallelStep {
    /// `parts` gradient parts per mini-batch (at least 1) computed by up to `threads` CPU
    /// threads; `threads = 0` takes libtorch's intra-op thread count on libtorch CPU and the
    /// machine's available parallelism on flex. On libtorch CPU the threads are shared out:
    /// each part thread gets `threads / part threads` intra-op threads. A GPU gets one thread
    /// (its parts run one after another on the device).
    pub fn new(parts: usize, threads: usize, device: &Device) -> Result<Self, CnfError> {
        let parts = parts.max(1);
        let kind = DeviceKind::of(device);
        let (gpu, libtorch_cpu) = (kind.is_gpu(), kind.is_libtorch_cpu());
        let budget = if gpu {
            1
        } else if threads > 0 {
            threads
        } else if libtorch_cpu {
            torch_threads().unwrap_or(1)
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        };
        let workers = budget.min(parts);
        let pool = if workers > 1 {
            Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .thread_name(|i| format!("cnf-part-{i}"))
                    .build()
                    .map_err(|e| CnfError::Training(format!("cannot start threads: {e}")))?,
            )
        } else {
            None
        };
        Ok(Self {
            pool,
            parts,
            threads: workers,
            torch_threads: if libtorch_cpu {
                (budget / workers).max(1)
            } else {
                0
            },
        })
    }

    /// Gradient parts per mini-batch.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Threads that compute the parts.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// NLL and gradient of the batch `x` (`n × cfg.dim`, whitened, row-major) with context `ctx`
    /// (`n × cfg.context_dim`), RK4 with `cfg.rk4_steps`; `device` is the autodiff device.
    pub fn loss_and_grads(
        &self,
        field: &VectorField,
        cfg: &FlowConfig,
        x: &[f32],
        ctx: Option<&[f32]>,
        penalties: Penalties,
        device: &Device,
    ) -> Result<BatchGradient, CnfError> {
        self.loss_and_grads_weighted(field, cfg, x, ctx, None, penalties, device)
    }

    /// [`ParallelStep::loss_and_grads`] with one weight per row (`weights`: n values ≥ 0 whose
    /// sum is positive, any scale): the loss is the weighted mean `Σ w_i (NLL_i + penalties_i)
    /// / Σ w_i` over the batch. `None` is the unweighted mean, number for number.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grads_weighted(
        &self,
        field: &VectorField,
        cfg: &FlowConfig,
        x: &[f32],
        ctx: Option<&[f32]>,
        weights: Option<&[f64]>,
        penalties: Penalties,
        device: &Device,
    ) -> Result<BatchGradient, CnfError> {
        let n = x.len() / cfg.dim;
        // Each row's share of the batch loss, w_i / Σ w (None: 1/n through the parts' means).
        let shares: Option<Vec<f64>> = match weights {
            None => None,
            Some(w) => {
                let total: f64 = w.iter().sum();
                if w.len() != n || !(total > 0.0 && total.is_finite()) {
                    return Err(CnfError::InvalidInput(format!(
                        "batch weights: {} values for {n} rows with sum {total} (need a \
                         positive, finite sum)",
                        w.len()
                    )));
                }
                Some(w.iter().map(|v| v / total).collect())
            }
        };
        let parts = self.parts.min(n).max(1);
        let bounds: Vec<(usize, usize)> = (0..parts)
            .map(|s| (s * n / parts, (s + 1) * n / parts))
            .collect();
        let run = |(lo, hi): (usize, usize)| {
            let xs = &x[lo * cfg.dim..hi * cfg.dim];
            let cs = ctx.map(|c| &c[lo * cfg.context_dim..hi * cfg.context_dim]);
            let scale = match &shares {
                None => PartScale::Share((hi - lo) as f64 / n as f64),
                Some(s) => PartScale::Rows(&s[lo..hi]),
            };
            if parts == 1 {
                part(field, cfg, xs, cs, scale, penalties, device)
            } else {
                let replica = field.clone().fork(device);
                part(&replica, cfg, xs, cs, scale, penalties, device)
            }
        };
        let results: Vec<Result<(f64, GradientsParams), CnfError>> = match &self.pool {
            None => {
                // Parts one after another on this thread, with the intra-op threads a part
                // gets (libtorch's rounding depends on them; so the numbers match a pool's).
                let own = torch_threads().filter(|_| self.torch_threads > 0);
                let change = own.is_some_and(|t| t != self.torch_threads);
                if change {
                    set_torch_threads(self.torch_threads);
                }
                let r = bounds.iter().map(|&b| run(b)).collect();
                if let (true, Some(t)) = (change, own) {
                    set_torch_threads(t);
                }
                r
            }
            Some(pool) => {
                let mut slots: Vec<Option<Result<(f64, GradientsParams), CnfError>>> =
                    (0..parts).map(|_| None).collect();
                let per_part = self.torch_threads;
                pool.scope(|scope| {
                    for (slot, &b) in slots.iter_mut().zip(&bounds) {
                        let run = &run;
                        scope.spawn(move |_| {
                            if per_part > 0 {
                                set_torch_threads(per_part);
                            }
                            *slot = Some(run(b));
                        });
                    }
                });
                if per_part > 0 {
                    // The part threads changed libtorch's default for threads that start
                    // later; the calling thread's own setting is unchanged.
                    if let Some(own) = torch_threads() {
                        set_torch_threads(own);
                    }
                }
                slots
                    .into_iter()
                    .map(|r| {
                        r.unwrap_or_else(|| {
                            Err(CnfError::Training("a gradient part did not run".into()))
                        })
                    })
                    .collect()
            }
        };
        let mut nll = 0.0;
        let mut total: Option<GradientsParams> = None;
        for (r, &(lo, hi)) in results.into_iter().zip(&bounds) {
            let (v, g) = r?;
            nll += match shares {
                // A part's mean NLL times its share of the rows.
                None => v * (hi - lo) as f64 / n as f64,
                // Already the part's term of the batch's weighted mean.
                Some(_) => v,
            };
            total = Some(match total {
                None => g,
                Some(acc) => add_grads(acc, g, field),
            });
        }
        Ok(BatchGradient {
            nll,
            grads: total.unwrap_or_default(),
        })
    }
}

/// How a part's rows enter the batch loss.
#[derive(Debug, Clone, Copy)]
enum PartScale<'a> {
    /// Unweighted: the part's mean loss times this share of the batch's rows.
    Share(f64),
    /// Weighted: each row's loss times its share `w_i / Σ w` of the batch's weight.
    Rows(&'a [f64]),
}

/// Forward and backward of one part, its loss scaled as `scale` says. Returns the part's term
/// of the batch NLL (its mean NLL when unweighted, `Σ share_i NLL_i` when weighted) and its
/// gradients.
fn part(
    field: &VectorField,
    cfg: &FlowConfig,
    x: &[f32],
    ctx: Option<&[f32]>,
    scale: PartScale<'_>,
    penalties: Penalties,
    device: &Device,
) -> Result<(f64, GradientsParams), CnfError> {
    let rows = x.len() / cfg.dim;
    let xb = Tensor::<2>::from_data(TensorData::new(x.to_vec(), [rows, cfg.dim]), device);
    let cb = ctx.map(|c| {
        Tensor::<2>::from_data(TensorData::new(c.to_vec(), [rows, cfg.context_dim]), device)
    });
    let regularised = penalties.kinetic > 0.0 || penalties.jacobian > 0.0;
    let (nll, loss) = match scale {
        PartScale::Share(weight) => {
            let (nll, loss) = if regularised {
                let (lp, kinetic, frob) =
                    log_prob_regularised(field, cfg, xb, cb.as_ref(), cfg.rk4_steps);
                let nll = lp.mean().neg();
                let loss = nll.clone()
                    + kinetic.mean().mul_scalar(penalties.kinetic)
                    + frob.mean().mul_scalar(penalties.jacobian);
                (nll, loss)
            } else {
                let lp =
                    log_prob_whitened(field, cfg, xb, cb.as_ref(), Solver::Rk4(cfg.rk4_steps))?;
                let nll = lp.mean().neg();
                (nll.clone(), nll)
            };
            let loss = if weight == 1.0 {
                loss
            } else {
                loss.mul_scalar(weight)
            };
            (nll, loss)
        }
        PartScale::Rows(shares) => {
            let w: Vec<f32> = shares.iter().map(|&v| v as f32).collect();
            let w = Tensor::<2>::from_data(TensorData::new(w, [rows, 1]), device);
            if regularised {
                let (lp, kinetic, frob) =
                    log_prob_regularised(field, cfg, xb, cb.as_ref(), cfg.rk4_steps);
                let nll = (lp * w.clone()).sum().neg();
                let loss = nll.clone()
                    + (kinetic * w.clone()).sum().mul_scalar(penalties.kinetic)
                    + (frob * w).sum().mul_scalar(penalties.jacobian);
                (nll, loss)
            } else {
                let lp =
                    log_prob_whitened(field, cfg, xb, cb.as_ref(), Solver::Rk4(cfg.rk4_steps))?;
                let nll = (lp * w).sum().neg();
                (nll.clone(), nll)
            }
        }
    };
    let value = download(nll.inner())?.first().copied().unwrap_or(f64::NAN);
    let grads = GradientsParams::from_grads(loss.backward(), field);
    Ok((value, grads))
}

/// `a + b` parameter by parameter (the field's weights and biases).
fn add_grads(
    mut a: GradientsParams,
    mut b: GradientsParams,
    field: &VectorField,
) -> GradientsParams {
    fn merge<const D: usize>(a: &mut GradientsParams, b: &mut GradientsParams, id: ParamId) {
        let sum = match (a.remove::<D>(id), b.remove::<D>(id)) {
            (Some(x), Some(y)) => x + y,
            (Some(x), None) | (None, Some(x)) => x,
            (None, None) => return,
        };
        a.register(id, sum);
    }
    for w in &field.weights {
        merge::<2>(&mut a, &mut b, w.id);
    }
    for p in &field.biases {
        merge::<1>(&mut a, &mut b, p.id);
    }
    a
}
