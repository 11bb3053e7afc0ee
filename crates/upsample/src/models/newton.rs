//! Newton's method for the root of an increasing function, kept inside a shrinking bracket: the
//! quantiles of the radial profile (`chi3_quantile`) and of its correction
//! (`Bernstein::quantile`) invert distribution functions this way.

/// The root of an increasing function of s from `start` inside [`lo`, `hi`]: `eval(s)` gives
/// (f(s), f'(s)); a Newton step that leaves the bracket (or is not finite) is replaced by the
/// bisection. Stops at f = 0, after `iterations` steps, or when `converged(s, next, lo, hi)`
/// says the step from s to next is small enough (next is then the answer).
pub(super) fn bracketed_newton(
    eval: impl Fn(f64) -> (f64, f64),
    mut lo: f64,
    mut hi: f64,
    start: f64,
    iterations: usize,
    converged: impl Fn(f64, f64, f64, f64) -> bool,
) -> f64 {
    let mut s = start;
    for _ in 0..iterations {
        let (f, df) = eval(s);
        if f == 0.0 {
            break;
        }
        if f < 0.0 {
            lo = s;
        } else {
            hi = s;
        }
        let mut next = s - f / df;
        if !(next > lo && next < hi && next.is_finite()) {
            next = 0.5 * (lo + hi);
        }
        if converged(s, next, lo, hi) {
            return next;
        }
        s = next;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Finds the root of x³ − 2 (from a start whose first Newton step leaves the bracket).
    #[test]
    fn finds_a_cube_root() {
        let r = bracketed_newton(
            |x| (x * x * x - 2.0, 3.0 * x * x),
            0.0,
            10.0,
            0.01,
            100,
            |s, next, _, _| (next - s).abs() <= 1e-15,
        );
        assert!((r - 2f64.cbrt()).abs() < 1e-14, "{r}");
    }
}
