//! Survey figures, binned while a `survey_obsN.hdf5` streams: the colour–magnitude diagram as a
//! Hess diagram (star counts per bin of observed BP−RP and G, log stretch) and the sky density
//! in Galactic coordinates (l, b) on a Mollweide (equal-area) projection, stars per square
//! degree.

use anyhow::Result;
use plotters::prelude::*;

use super::canvas::{colour, colour_bar, fill_pixels, pe, render, Figure, LogStretch, FONT_FAMILY};
use super::profiles::short;

/// Counts on a regular grid over x ∈ [x0, x1), y ∈ [y0, y1).
#[derive(Debug, Clone, PartialEq)]
pub struct CountGrid {
    /// x range.
    pub x: (f64, f64),
    /// y range.
    pub y: (f64, f64),
    /// Bins along x and y.
    pub n: (usize, usize),
    /// Counts, row-major (row = y bin).
    pub counts: Vec<u64>,
}

impl CountGrid {
    /// An empty grid.
    pub fn new(x: (f64, f64), y: (f64, f64), n: (usize, usize)) -> Self {
        CountGrid {
            x,
            y,
            n,
            counts: vec![0; n.0 * n.1],
        }
    }

    /// Bin of (x, y); None outside or non-finite.
    pub fn bin(&self, x: f64, y: f64) -> Option<usize> {
        let f = |v: f64, (a, b): (f64, f64), n: usize| {
            let u = (v - a) / (b - a) * n as f64;
            (u >= 0.0 && u < n as f64).then_some(u as usize)
        };
        Some(f(y, self.y, self.n.1)? * self.n.0 + f(x, self.x, self.n.0)?)
    }

    /// Counts one point (ignored outside).
    pub fn add(&mut self, x: f64, y: f64) {
        if let Some(i) = self.bin(x, y) {
            self.counts[i] += 1;
        }
    }

    /// Points counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// The sky grid: Galactic longitude l ∈ [−180°, 180°) by sin b ∈ [−1, 1) (equal-area bins).
pub fn sky_grid() -> CountGrid {
    CountGrid::new((-180.0, 180.0), (-1.0, 1.0), (360, 180))
}

/// Adds stars at Galactic (l, b), degrees, to a [`sky_grid`].
pub fn add_sky(grid: &mut CountGrid, l: &[f64], b: &[f64]) {
    for (&l, &b) in l.iter().zip(b) {
        let l = (l + 180.0).rem_euclid(360.0) - 180.0;
        grid.add(l, b.to_radians().sin());
    }
}

/// Inverse Mollweide projection: plane (x, y) with x ∈ [−2√2, 2√2], y ∈ [−√2, √2] → (l, b)
/// radians, l measured from the centre; None outside the ellipse.
pub fn mollweide_inverse(x: f64, y: f64) -> Option<(f64, f64)> {
    let s2 = std::f64::consts::SQRT_2;
    let st = y / s2;
    if st.abs() > 1.0 {
        return None;
    }
    let t = st.asin();
    let ct = t.cos();
    let l = if ct > 0.0 {
        std::f64::consts::PI * x / (2.0 * s2 * ct)
    } else {
        0.0
    };
    if l.abs() > std::f64::consts::PI {
        return None;
    }
    let sb = (2.0 * t + (2.0 * t).sin()) / std::f64::consts::PI;
    Some((l, sb.clamp(-1.0, 1.0).asin()))
}

/// Mollweide projection of (l, b) radians to the plane (Newton iteration for the auxiliary
/// angle θ: 2θ + sin 2θ = π sin b).
pub fn mollweide(l: f64, b: f64) -> (f64, f64) {
    let s2 = std::f64::consts::SQRT_2;
    let target = std::f64::consts::PI * b.sin();
    let mut t = b;
    for _ in 0..50 {
        let f = 2.0 * t + (2.0 * t).sin() - target;
        let d = 2.0 + 2.0 * (2.0 * t).cos();
        if d.abs() < 1e-12 {
            break;
        }
        let step = f / d;
        t -= step;
        if step.abs() < 1e-12 {
            break;
        }
    }
    (2.0 * s2 / std::f64::consts::PI * l * t.cos(), s2 * t.sin())
}

/// The sky density figure of a [`sky_grid`]: stars per square degree, log stretch, l = 0 at the
/// centre increasing to the left (the astronomers' convention).
pub fn sky_figure(name: &str, title: &str, grid: &CountGrid) -> Result<Figure> {
    // Each bin spans Δl × Δ(sin b) steradians.
    let sr = (2.0 * std::f64::consts::PI / grid.n.0 as f64) * (2.0 / grid.n.1 as f64);
    let deg2 = sr * (180.0 / std::f64::consts::PI).powi(2);
    let dens: Vec<f64> = grid.counts.iter().map(|&c| c as f64 / deg2).collect();
    let stretch = LogStretch::fitted(dens.iter(), 4.0).unwrap_or(LogStretch { lo: 0.0, hi: 1.0 });
    let s2 = std::f64::consts::SQRT_2;
    render(name, title, 1100, 560, |root| {
        root.draw(&Text::new(title.to_string(), (10, 8), (FONT_FAMILY, 20)))
            .map_err(pe)?;
        let (map, bar) = root.margin(34, 0, 0, 0).split_horizontally(980);
        let mut chart = ChartBuilder::on(&map)
            .margin(15)
            .build_cartesian_2d(-2.0 * s2..2.0 * s2, -s2..s2)
            .map_err(pe)?;
        let pixels = chart.plotting_area().get_pixel_range();
        fill_pixels(&map, pixels, (-2.0 * s2, 2.0 * s2), (-s2, s2), |x, y| {
            // x grows to the right; longitude grows to the left.
            let (l, b) = mollweide_inverse(-x, y)?;
            let i = grid.bin(l.to_degrees(), b.sin())?;
            Some(colour(stretch.t(dens[i])))
        })?;
        let grey = RGBColor(200, 200, 200);
        let line = |pts: Vec<(f64, f64)>| PathElement::new(pts, grey.stroke_width(1));
        for bdeg in [-60.0f64, -30.0, 0.0, 30.0, 60.0] {
            let pts = (-180..=180)
                .map(|l| {
                    let (x, y) = mollweide((l as f64).to_radians(), bdeg.to_radians());
                    (-x, y)
                })
                .collect();
            chart.draw_series(std::iter::once(line(pts))).map_err(pe)?;
        }
        for ldeg in [-180.0f64, -120.0, -60.0, 0.0, 60.0, 120.0, 180.0] {
            let pts = (-90..=90)
                .map(|b| {
                    let (x, y) = mollweide(ldeg.to_radians(), (b as f64).to_radians());
                    (-x, y)
                })
                .collect();
            chart.draw_series(std::iter::once(line(pts))).map_err(pe)?;
        }
        for ldeg in [-120.0f64, -60.0, 0.0, 60.0, 120.0] {
            let (x, y) = mollweide(ldeg.to_radians(), 0.0);
            let shown = (ldeg + 360.0) % 360.0;
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("l={shown:.0}°"),
                    (-x, y),
                    (FONT_FAMILY, 12).into_font().color(&WHITE),
                )))
                .map_err(pe)?;
        }
        for bdeg in [-60.0f64, -30.0, 30.0, 60.0] {
            let (x, y) = mollweide(std::f64::consts::PI, bdeg.to_radians());
            chart
                .draw_series(std::iter::once(Text::new(
                    format!("b={bdeg:.0}°"),
                    (-x - 0.35, y),
                    (FONT_FAMILY, 12),
                )))
                .map_err(pe)?;
        }
        colour_bar(&bar, stretch, "log10 stars per deg²")
    })
}

/// The Hess diagram figure: counts per bin of colour (x) and magnitude (y, bright at the top).
pub fn hess_figure(
    name: &str,
    title: &str,
    grid: &CountGrid,
    x_desc: &str,
    y_desc: &str,
) -> Result<Figure> {
    let counts: Vec<f64> = grid.counts.iter().map(|&c| c as f64).collect();
    let stretch = LogStretch::fitted(counts.iter(), 4.0).unwrap_or(LogStretch { lo: 0.0, hi: 1.0 });
    render(name, title, 760, 760, |root| {
        root.draw(&Text::new(title.to_string(), (10, 8), (FONT_FAMILY, 20)))
            .map_err(pe)?;
        let (plot, bar) = root.margin(34, 0, 0, 0).split_horizontally(650);
        let (x0, x1) = grid.x;
        let (y0, y1) = grid.y;
        // Magnitudes grow downwards: the axis runs from faint (bottom) to bright (top).
        let mut chart = ChartBuilder::on(&plot)
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(x0..x1, -y1..-y0)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .label_style((FONT_FAMILY, 13))
            .y_label_formatter(&|v| short(-*v))
            .draw()
            .map_err(pe)?;
        let pixels = chart.plotting_area().get_pixel_range();
        fill_pixels(&plot, pixels, (x0, x1), (-y1, -y0), |x, y| {
            let i = grid.bin(x, -y)?;
            (grid.counts[i] > 0).then(|| colour(stretch.t(counts[i])))
        })?;
        colour_bar(&bar, stretch, "log10 stars per bin")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mollweide_round_trips_and_sky_bins_are_equal_area() {
        for &(l, b) in &[(0.3, 0.2), (-2.5, -1.2), (3.0, 0.0), (0.0, 1.5)] {
            let (x, y) = mollweide(l, b);
            let (l2, b2) = mollweide_inverse(x, y).unwrap();
            assert!(
                (l - l2).abs() < 1e-6 && (b - b2).abs() < 1e-6,
                "{l} {b} -> {l2} {b2}"
            );
        }
        assert!(mollweide_inverse(2.9, 0.0).is_none());
        let mut g = sky_grid();
        add_sky(&mut g, &[10.0, 350.0, 180.0], &[0.0, -89.9, 45.0]);
        assert_eq!(g.total(), 3);
        // l = 350 wraps to -10.
        assert!(g.bin(-10.0, (-89.9f64).to_radians().sin()).is_some());
    }
}
