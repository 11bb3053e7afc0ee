//! Exact Jacobian of the vector field by forward-mode tangent propagation.
//!
//! Beside each hidden activation `h_k` (shape `[B, W]`) the tangents `∂h_k/∂y_j`, j = 0..dim,
//! are carried as one `[dim·B, W]` block, so that each layer costs two matmuls (primal and all
//! tangents): `z = h W + b`, `h' = σ(z)`, `T' = σ'(z) ⊙ (T W)` (no bias on tangents).
//! Time and context enter the first layer with zero tangent, so the first tangent is just the
//! rows of `W_0` belonging to `y`. The output layer yields `F` and `J_ij = ∂F_i/∂y_j`, whose
//! diagonal sums to the exact trace. burn's first-order autodiff then differentiates all of it.

use crate::field::{input_layer, Activation, VectorField};
use burn::tensor::{Tensor, TensorData};
use std::sync::atomic::{AtomicBool, Ordering};

static STACKED: AtomicBool = AtomicBool::new(false);

/// Benchmarking knob: `true` stacks primal and tangents into one `[(dim+1)·B, W]` matmul per
/// layer (one concatenation per layer), `false` (default) runs two matmuls without the copy.
pub fn set_stacked_matmul(stacked: bool) {
    STACKED.store(stacked, Ordering::Relaxed);
}

/// Runs the network with tangents; returns `(F [B, dim], T_out [dim, B, dim])` where
/// `T_out[j, b, i] = ∂F_i/∂y_j` at sample b.
fn propagate(
    field: &VectorField,
    y: Tensor<2>,
    t: f64,
    ctx: Option<&Tensor<2>>,
    act: Activation,
) -> (Tensor<2>, Tensor<3>) {
    let [b, dim] = y.dims();
    let n = field.n_layers();
    let u = input_layer(y, t, ctx);
    let w0 = field.weights[0].val();
    let z = u.matmul(w0.clone()) + field.biases[0].val().unsqueeze_dim(0);
    if n == 1 {
        let width = z.dims()[1];
        let tan = w0
            .narrow(0, 0, dim)
            .unsqueeze_dim::<3>(1)
            .expand([dim, b, width]);
        return (z, tan);
    }
    // Tangents are linear in σ', so a negated σ' (one pass cheaper for tanh) only flips their
    // sign: `negated` tracks the parity and the output layer undoes it.
    let (mut h, d, mut negated) = act.value_and_signed_derivative(z);
    let width = h.dims()[1];
    // T[j, b, :] = σ'(z_b) ⊙ W0[j, :]
    let w_y = w0.narrow(0, 0, dim).unsqueeze_dim::<3>(1); // [dim, 1, W]
    let mut tan: Tensor<2> = (d.unsqueeze_dim::<3>(0) * w_y).reshape([dim * b, width]);
    for k in 1..n {
        let w = field.weights[k].val();
        let out = w.dims()[1];
        // Primal and tangents through the same weights; two matmuls instead of a concatenation
        // saves a copy of the [(dim+1)·B, W] block forward and its split backward.
        let (z, tz) = if STACKED.load(Ordering::Relaxed) {
            let p = Tensor::cat(vec![h, tan], 0).matmul(w);
            (p.clone().narrow(0, 0, b), p.narrow(0, b, dim * b))
        } else {
            (h.matmul(w.clone()), tan.matmul(w))
        };
        let z = z + field.biases[k].val().unsqueeze_dim(0);
        if k + 1 == n {
            let tz = if negated { tz.neg() } else { tz };
            return (z, tz.reshape([dim, b, out]));
        }
        let (a, d, flip) = act.value_and_signed_derivative(z);
        negated ^= flip;
        tan = (tz.reshape([dim, b, out]) * d.unsqueeze_dim::<3>(0)).reshape([dim * b, out]);
        h = a;
    }
    unreachable!("the loop returns at the output layer")
}

/// F(y, t; c) and its exact Jacobian `J [B, dim, dim]` with `J[b, i, j] = ∂F_i/∂y_j`.
pub fn field_and_jacobian(
    field: &VectorField,
    y: Tensor<2>,
    t: f64,
    ctx: Option<&Tensor<2>>,
    act: Activation,
) -> (Tensor<2>, Tensor<3>) {
    let (f, tan) = propagate(field, y, t, ctx, act);
    (f, tan.permute([1, 2, 0]))
}

/// F(y, t; c) `[B, dim]` and the exact trace of ∂F/∂y as `[B, 1]`.
pub fn field_and_trace(
    field: &VectorField,
    y: Tensor<2>,
    t: f64,
    ctx: Option<&Tensor<2>>,
    act: Activation,
) -> (Tensor<2>, Tensor<2>) {
    let dim = y.dims()[1];
    let device = y.device();
    let (f, tan) = propagate(field, y, t, ctx, act);
    let mut eye = vec![0f32; dim * dim];
    for j in 0..dim {
        eye[j * dim + j] = 1.0;
    }
    let eye = Tensor::<3>::from_data(TensorData::new(eye, [dim, 1, dim]), (&device, f.dtype()));
    // Σ_j T[j, b, j]
    let tr = (tan * eye).sum_dim(2).sum_dim(0); // [1, B, 1]
    let b = f.dims()[0];
    (f, tr.reshape([b, 1]))
}
