//! Exact Jacobian of the vector field by forward-mode tangent propagation.
//!
//! Beside each hidden activation `h_k` (shape `[B, W]`) the tangents `∂h_k/∂y_j`, j = 0..dim,
//! are carried as one `[B, dim, W]` block, so that each layer costs two matmuls (primal and all
//! tangents, the latter as `[B·dim, W]`): `z = h W + b`, `h' = σ(z)`, `T' = σ'(z) ⊙ (T W)` (no
//! bias on tangents). Time and context enter the first layer with zero tangent, so the first
//! tangent is σ' times the rows of `W_0` belonging to `y`, and its product with `W_1` is folded
//! into one matmul of σ' with a `[W, dim·W']` weight product. The output layer yields `F` and
//! either the whole Jacobian or only its diagonal's sum, the exact trace, as one
//! matrix–vector product. burn's first-order autodiff then differentiates all of it.

use crate::field::{input_layer, Activation, VectorField};
use burn::tensor::Tensor;

/// The last hidden layer's activations `h [B, W]` and tangents `T [B, dim, W]`
/// (`T[b, j, :] = ∂h_b/∂y_j`, negated when `negated`).
struct Hidden {
    h: Tensor<2>,
    tan: Tensor<3>,
    negated: bool,
}

/// What [`propagate`] returns: `F` itself for a network without hidden layer (whose Jacobian is
/// the constant `W_0[..dim, :]ᵀ`), else the last hidden layer. Short-lived, on the stack once
/// per evaluation: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Propagated {
    Linear(Tensor<2>),
    Deep(Hidden),
}

fn propagate(
    field: &VectorField,
    y: Tensor<2>,
    t: f64,
    ctx: Option<&Tensor<2>>,
    act: Activation,
) -> Propagated {
    let [b, dim] = y.dims();
    let n = field.n_layers();
    let u = input_layer(y, t, ctx);
    let w0 = field.weights[0].val();
    let z = u.matmul(w0.clone()) + field.biases[0].val().unsqueeze_dim(0);
    if n == 1 {
        return Propagated::Linear(z);
    }
    // Tangents are linear in σ', so a negated σ' (one pass cheaper for tanh) only flips their
    // sign: `negated` tracks the parity and the output layer undoes it.
    let (mut h, d, mut negated) = act.value_and_signed_derivative(z, field.kernels);
    let width = h.dims()[1];
    let w_y = w0.narrow(0, 0, dim); // [dim, W]: the rows of W_0 that multiply y
    if n == 2 {
        // T[b, j, :] = σ'(z_b) ⊙ W0[j, :]
        let tan = d.unsqueeze_dim::<3>(1) * w_y.unsqueeze_dim::<3>(0);
        return Propagated::Deep(Hidden { h, tan, negated });
    }
    // First tangent times the next weights without forming it: (σ' ⊙ W0[j, :]) W1 = σ' M_j
    // with M_j = diag(W0[j, :]) W1, so all dim of them are one [B, W] × [W, dim·W'] matmul.
    let w1 = field.weights[1].val();
    let out = w1.dims()[1];
    let m = (w_y.transpose().unsqueeze_dim::<3>(2) * w1.clone().unsqueeze_dim::<3>(1))
        .reshape([width, dim * out]);
    let mut tz = d.matmul(m).reshape([b, dim, out]);
    let mut z = h.matmul(w1) + field.biases[1].val().unsqueeze_dim(0);
    for k in 2..n {
        let (a, d, flip) = act.value_and_signed_derivative(z, field.kernels);
        negated ^= flip;
        let width = a.dims()[1];
        let tan = tz * d.unsqueeze_dim::<3>(1); // [B, dim, W]
        h = a;
        if k + 1 == n {
            return Propagated::Deep(Hidden { h, tan, negated });
        }
        let w = field.weights[k].val();
        let out = w.dims()[1];
        // Primal and tangents through the same weights: two matmuls, no concatenation.
        tz = tan
            .reshape([b * dim, width])
            .matmul(w.clone())
            .reshape([b, dim, out]);
        z = h.matmul(w) + field.biases[k].val().unsqueeze_dim(0);
    }
    unreachable!("the loop returns at the last hidden layer")
}

/// The output layer's primal `F = h W_L + b_L` `[B, dim]`.
fn output(field: &VectorField, h: Tensor<2>) -> Tensor<2> {
    let last = field.n_layers() - 1;
    h.matmul(field.weights[last].val()) + field.biases[last].val().unsqueeze_dim(0)
}

fn signed<const D: usize>(x: Tensor<D>, negated: bool) -> Tensor<D> {
    if negated {
        x.neg()
    } else {
        x
    }
}

/// F(y, t; c) and its exact Jacobian `J [B, dim, dim]` with `J[b, i, j] = ∂F_i/∂y_j`.
pub fn field_and_jacobian(
    field: &VectorField,
    y: Tensor<2>,
    t: f64,
    ctx: Option<&Tensor<2>>,
    act: Activation,
) -> (Tensor<2>, Tensor<3>) {
    let [b, dim] = y.dims();
    let w_last = field.weights[field.n_layers() - 1].val();
    match propagate(field, y, t, ctx, act) {
        Propagated::Linear(f) => {
            let jac = w_last
                .narrow(0, 0, dim)
                .transpose()
                .unsqueeze_dim::<3>(0)
                .expand([b, dim, dim]);
            (f, jac)
        }
        Propagated::Deep(Hidden { h, tan, negated }) => {
            let width = tan.dims()[2];
            // T W_L gives [b, j, i] = ∂F_i/∂y_j.
            let tj = tan.reshape([b * dim, width]).matmul(w_last);
            let jac = signed(tj.reshape([b, dim, dim]).swap_dims(1, 2), negated);
            (output(field, h), jac)
        }
    }
}

/// F(y, t; c) `[B, dim]` and the exact trace of ∂F/∂y as `[B, 1]`.
pub fn field_and_trace(
    field: &VectorField,
    y: Tensor<2>,
    t: f64,
    ctx: Option<&Tensor<2>>,
    act: Activation,
) -> (Tensor<2>, Tensor<2>) {
    let [b, dim] = y.dims();
    let w_last = field.weights[field.n_layers() - 1].val();
    match propagate(field, y, t, ctx, act) {
        Propagated::Linear(f) => {
            let diag = w_last.narrow(0, 0, dim) * eye(dim, &f);
            (f, diag.sum().reshape([1, 1]).expand([b, 1]))
        }
        Propagated::Deep(Hidden { h, tan, negated }) => {
            // tr = Σ_j T[b, j, :] · W_L[:, j]: only the diagonal of T W_L, as one product of
            // the [B, dim·W] tangents with W_Lᵀ flattened (a matrix–vector product, where the
            // full [B·dim, W] × [W, dim] matmul is a slow skinny shape for BLAS).
            let width = tan.dims()[2];
            let v = w_last.transpose().reshape([dim * width, 1]);
            let tr = signed(tan.reshape([b, dim * width]).matmul(v), negated);
            (output(field, h), tr)
        }
    }
}

/// The `dim × dim` identity on `like`'s device and dtype.
fn eye(dim: usize, like: &Tensor<2>) -> Tensor<2> {
    let mut e = vec![0f32; dim * dim];
    for j in 0..dim {
        e[j * dim + j] = 1.0;
    }
    Tensor::<2>::from_data(
        burn::tensor::TensorData::new(e, [dim, dim]),
        (&like.device(), like.dtype()),
    )
}
