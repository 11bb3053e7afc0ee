//! The vector-field network F(y, t; c): an MLP with smooth activations.

use crate::backend::DeviceKind;
use burn::module::{Module, Param};
use burn::tensor::activation;
use burn::tensor::{DType, Device, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// How the field evaluates its activation: kernel choices that change speed, not the model,
/// fixed once per device ([`Kernels::for_device`]) and carried by the [`VectorField`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kernels {
    /// Evaluate tanh as `2σ(2z) − 1` ([`Kernels::tanh`]) instead of the backend's tanh.
    pub tanh_via_sigmoid: bool,
    /// On autodiff devices, give tanh a backward pass that reuses its forward output instead
    /// of burn's, which recomputes tanh ([`Activation::value_and_signed_derivative`]).
    pub tanh_reuse: bool,
}

impl Kernels {
    /// The fastest measured choice for a kind of device: both tricks on CPUs, neither on GPUs
    /// (where each extra elementwise pass is a kernel launch).
    pub fn for_device(kind: DeviceKind) -> Self {
        let cpu = !kind.is_gpu();
        Self {
            tanh_via_sigmoid: cpu,
            tanh_reuse: cpu,
        }
    }

    /// The backend's own tanh and burn's own backward everywhere (the benchmark's reference).
    pub fn backend_default() -> Self {
        Self {
            tanh_via_sigmoid: false,
            tanh_reuse: false,
        }
    }

    /// tanh(z), as `2σ(2z) − 1` when [`Kernels::tanh_via_sigmoid`]. libtorch's CPU tanh is
    /// MKL's high-accuracy vsTanh, 8x slower than its sigmoid on a `[4096, 64]` block (286 µs
    /// against 35 µs, 2 threads), and it was 15 % of a training step's profile; the identity
    /// costs three cheap in-place passes and an absolute error of about one f32 ulp of 1
    /// (≈1e-7), harmless for an activation. GPUs keep the backend's tanh (one kernel launch
    /// instead of four).
    pub fn tanh<const D: usize>(&self, z: Tensor<D>) -> Tensor<D> {
        if self.tanh_via_sigmoid {
            activation::sigmoid(z.mul_scalar(2.0))
                .mul_scalar(2.0)
                .sub_scalar(1.0)
        } else {
            z.tanh()
        }
    }
}

/// Smooth activation functions (the trace must be differentiable, so no ReLU).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Hyperbolic tangent.
    #[default]
    Tanh,
    /// softplus(x) = log(1 + e^x).
    Softplus,
    /// SiLU / swish: x · sigmoid(x).
    Silu,
}

impl Activation {
    /// Returns σ(z) and σ'(z) for a pre-activation tensor, evaluated with `kernels`.
    pub fn value_and_derivative<const D: usize>(
        &self,
        z: Tensor<D>,
        kernels: Kernels,
    ) -> (Tensor<D>, Tensor<D>) {
        match self {
            Activation::Tanh => {
                let a = kernels.tanh(z);
                let d = a.clone().square().neg().add_scalar(1.0);
                (a, d)
            }
            Activation::Softplus => {
                let s = activation::sigmoid(z.clone());
                (activation::softplus(z, 1.0), s)
            }
            Activation::Silu => {
                let s = activation::sigmoid(z.clone());
                let a = z.clone() * s.clone();
                // σ' = s + z s (1 - s) = s + a (1 - s)
                let d = s.clone() + a.clone() * s.neg().add_scalar(1.0);
                (a, d)
            }
        }
    }

    /// Returns σ(z) and ±σ'(z), with `true` when the derivative is returned negated. For tanh,
    /// `a² − 1` is one elementwise pass fewer than `1 − a²`; tangents are linear in σ', so the
    /// caller carries the sign instead (see `trace::propagate`).
    pub fn value_and_signed_derivative<const D: usize>(
        &self,
        z: Tensor<D>,
        kernels: Kernels,
    ) -> (Tensor<D>, Tensor<D>, bool) {
        match self {
            Activation::Tanh if kernels.tanh_reuse && z.is_autodiff() => {
                // burn's tanh backward recomputes tanh of the input. Evaluate tanh off the graph
                // and re-attach it linearly: a = (a₀ + n₀) − n with n = z ⊙ (a₀² − 1), whose
                // value is a₀ (to one rounding) and whose derivative is 1 − a₀², from a₀.
                // On CPUs training is 12–16 % faster; on an H200 it was slower in 6 of 6
                // interleaved pairs (the extra kernel launches), so GPUs keep burn's tanh.
                let a0 = kernels.tanh(z.clone().detach());
                let d0 = a0.clone().square().sub_scalar(1.0);
                let n = z * d0;
                let a = (a0 + n.clone().detach()) - n;
                let d = a.clone().square().sub_scalar(1.0);
                (a, d, true)
            }
            Activation::Tanh => {
                let a = kernels.tanh(z);
                let d = a.clone().square().sub_scalar(1.0);
                (a, d, true)
            }
            _ => {
                let (a, d) = self.value_and_derivative(z, kernels);
                (a, d, false)
            }
        }
    }

    /// Returns σ(z) only, evaluated with `kernels`.
    pub fn value<const D: usize>(&self, z: Tensor<D>, kernels: Kernels) -> Tensor<D> {
        match self {
            Activation::Tanh => kernels.tanh(z),
            Activation::Softplus => activation::softplus(z, 1.0),
            Activation::Silu => activation::silu(z),
        }
    }
}

/// MLP weights of the vector field: input [y (dim), t, c (context_dim)], `depth` hidden layers of
/// `width` units, output `dim`. Weights are stored `[in, out]` (rows multiply from the right).
/// The field also carries the [`Kernels`] of the device it was built on (not part of a
/// checkpoint).
#[derive(Module, Debug)]
pub struct VectorField {
    /// Layer weight matrices, `[in, out]`.
    pub weights: Vec<Param<Tensor<2>>>,
    /// Layer biases, `[out]`.
    pub biases: Vec<Param<Tensor<1>>>,
    /// How the activation is evaluated; [`Kernels::for_device`] of the construction device.
    #[module(skip)]
    pub kernels: Kernels,
}

/// Layer sizes of the field: `[dim + 1 + context_dim, width × depth, dim]`.
pub fn layer_sizes(dim: usize, context_dim: usize, width: usize, depth: usize) -> Vec<usize> {
    let mut sizes = vec![dim + 1 + context_dim];
    sizes.extend(std::iter::repeat_n(width, depth));
    sizes.push(dim);
    sizes
}

impl VectorField {
    /// Glorot-uniform hidden layers and a last layer scaled by `final_scale`, from a seeded RNG
    /// (so the same seed gives the same weights on every backend). `final_scale = 0` makes the
    /// initial flow the identity.
    pub fn new(sizes: &[usize], final_scale: f64, seed: u64, device: &Device) -> Self {
        Self::new_with_dtype(sizes, final_scale, seed, device, DType::F32)
    }

    /// As [`VectorField::new`] with an explicit float dtype (e.g. `DType::F64` for accuracy
    /// tests on backends that support it).
    pub fn new_with_dtype(
        sizes: &[usize],
        final_scale: f64,
        seed: u64,
        device: &Device,
        dtype: DType,
    ) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let n = sizes.len() - 1;
        let mut weights = Vec::with_capacity(n);
        let mut biases = Vec::with_capacity(n);
        for k in 0..n {
            let (fi, fo) = (sizes[k], sizes[k + 1]);
            let limit = (6.0 / (fi + fo) as f64).sqrt();
            let scale = if k + 1 == n { final_scale } else { 1.0 };
            let w: Vec<f64> = (0..fi * fo)
                .map(|_| rng.random_range(-limit..limit) * scale)
                .collect();
            // Round through f32 so that f32 and f64 fields of one seed hold the same values.
            let w: Vec<f64> = w.into_iter().map(|v| v as f32 as f64).collect();
            let w = Tensor::<2>::from_data(TensorData::new(w, [fi, fo]), (device, dtype));
            let b = Tensor::<1>::zeros([fo], (device, dtype));
            weights.push(Param::from_tensor(w));
            biases.push(Param::from_tensor(b));
        }
        Self {
            weights,
            biases,
            kernels: Kernels::for_device(DeviceKind::of(device)),
        }
    }

    /// An all-zero field of the given sizes (a skeleton to load a checkpoint into).
    pub fn zeros(sizes: &[usize], device: &Device) -> Self {
        let n = sizes.len() - 1;
        let weights = (0..n)
            .map(|k| Param::from_tensor(Tensor::<2>::zeros([sizes[k], sizes[k + 1]], device)))
            .collect();
        let biases = (0..n)
            .map(|k| Param::from_tensor(Tensor::<1>::zeros([sizes[k + 1]], device)))
            .collect();
        Self {
            weights,
            biases,
            kernels: Kernels::for_device(DeviceKind::of(device)),
        }
    }

    /// The same field evaluated with other kernels (e.g. [`Kernels::backend_default`] to
    /// measure what the CPU tricks gain).
    pub fn with_kernels(self, kernels: Kernels) -> Self {
        Self { kernels, ..self }
    }

    /// Number of layers (hidden + output).
    pub fn n_layers(&self) -> usize {
        self.weights.len()
    }

    /// F(y, t; c) without derivatives. `y`: [B, dim], `ctx`: [B, context_dim] or None.
    pub fn forward(
        &self,
        y: Tensor<2>,
        t: f64,
        ctx: Option<&Tensor<2>>,
        act: Activation,
    ) -> Tensor<2> {
        let mut h = input_layer(y, t, ctx);
        let n = self.n_layers();
        for k in 0..n {
            let z = h.matmul(self.weights[k].val()) + self.biases[k].val().unsqueeze_dim(0);
            h = if k + 1 == n {
                z
            } else {
                act.value(z, self.kernels)
            };
        }
        h
    }
}

/// Concatenates [y, t, c] into the network input.
pub(crate) fn input_layer(y: Tensor<2>, t: f64, ctx: Option<&Tensor<2>>) -> Tensor<2> {
    let [b, _] = y.dims();
    let tcol = Tensor::<2>::full([b, 1], t, (&y.device(), y.dtype()));
    match ctx {
        Some(c) => Tensor::cat(vec![y, tcol, c.clone()], 1),
        None => Tensor::cat(vec![y, tcol], 1),
    }
}
