//! Survey selection: apparent-magnitude cuts.

/// Gaia's nominal faint limit (G, mag), the default cut.
pub const DEFAULT_G_MAX: f64 = 21.0;

/// A magnitude-limited selection: keep stars with `bright <= mag <= faint` (NaN never kept).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MagnitudeCut {
    /// Brightest magnitude kept (mag); `-inf` for none.
    pub bright: f64,
    /// Faintest magnitude kept (mag).
    pub faint: f64,
}

impl Default for MagnitudeCut {
    /// G ≤ 21, no bright limit.
    fn default() -> Self {
        MagnitudeCut {
            bright: f64::NEG_INFINITY,
            faint: DEFAULT_G_MAX,
        }
    }
}

impl MagnitudeCut {
    /// Whether a star of apparent magnitude `mag` is selected.
    #[inline]
    pub fn keep(&self, mag: f64) -> bool {
        mag >= self.bright && mag <= self.faint
    }

    /// Selection mask of a batch of apparent magnitudes.
    pub fn mask(&self, mags: &[f64]) -> Vec<bool> {
        mags.iter().map(|&m| self.keep(m)).collect()
    }

    /// Indices of the selected stars of a batch.
    pub fn indices(&self, mags: &[f64]) -> Vec<usize> {
        (0..mags.len()).filter(|&i| self.keep(mags[i])).collect()
    }
}

/// Keep the entries of `v` where `mask` is true (a column filter for selected stars).
pub fn filter<T: Copy>(v: &[T], mask: &[bool]) -> Vec<T> {
    v.iter()
        .zip(mask)
        .filter(|(_, &k)| k)
        .map(|(x, _)| *x)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_cut_is_g_21() {
        let c = MagnitudeCut::default();
        let m = [20.99, 21.0, 21.01, f64::NAN, -1.0];
        assert_eq!(c.mask(&m), [true, true, false, false, true]);
        assert_eq!(c.indices(&m), [0, 1, 4]);
        assert_eq!(filter(&[1, 2, 3, 4, 5], &c.mask(&m)), [1, 2, 5]);
        let bright = MagnitudeCut {
            bright: 3.0,
            faint: 17.0,
        };
        assert_eq!(
            bright.mask(&[2.9, 3.0, 17.0, 17.1]),
            [false, true, true, false]
        );
    }
}
