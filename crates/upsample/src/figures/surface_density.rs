//! Surface density maps Σ (Msun/kpc²) face-on (x–y) and edge-on (x–z) in the galaxy frame,
//! binned while points stream (a catalogue of any size is read in chunks, never held whole):
//! particles beside stars on one log colour scale, for the whole galaxy and its centre; the
//! clusters' core cells and labels drawn on the face-on stars map.

use anyhow::Result;
use plotters::prelude::*;
use std::collections::BTreeMap;

use super::canvas::{colour, colour_bar, fill_pixels, pe, render, Figure, LogStretch, FONT_FAMILY};

/// A square 2D histogram of mass on [-half, half]² (kpc), `n` × `n` bins.
#[derive(Debug, Clone, PartialEq)]
pub struct MassGrid {
    /// Half-width of the map, kpc.
    pub half: f64,
    /// Bins per side.
    pub n: usize,
    /// Mass per bin, Msun, row-major (row = second coordinate).
    pub mass: Vec<f64>,
}

impl MassGrid {
    /// An empty grid.
    pub fn new(half: f64, n: usize) -> Self {
        MassGrid {
            half,
            n,
            mass: vec![0.0; n * n],
        }
    }

    /// Bin of (a, b) kpc, None outside.
    pub fn bin(&self, a: f64, b: f64) -> Option<usize> {
        let f = |v: f64| {
            let u = (v + self.half) / (2.0 * self.half) * self.n as f64;
            (u >= 0.0 && u < self.n as f64).then_some(u as usize)
        };
        Some(f(b)? * self.n + f(a)?)
    }

    /// Adds `m` Msun at (a, b) kpc (ignored outside the map or non-finite).
    pub fn add(&mut self, a: f64, b: f64, m: f64) {
        if let Some(i) = self.bin(a, b) {
            if m.is_finite() {
                self.mass[i] += m;
            }
        }
    }

    /// Area of one bin, kpc².
    pub fn bin_area(&self) -> f64 {
        (2.0 * self.half / self.n as f64).powi(2)
    }

    /// Surface density of bin `i` scaled by `scale`, Msun/kpc².
    pub fn sigma(&self, i: usize, scale: f64) -> f64 {
        self.mass[i] * scale / self.bin_area()
    }

    /// Total mass on the map, Msun.
    pub fn total(&self) -> f64 {
        self.mass.iter().sum()
    }
}

/// Face-on and edge-on maps of one point set at two zooms.
#[derive(Debug, Clone, PartialEq)]
pub struct MapSet {
    /// Whole galaxy: face-on (x, y), edge-on (x, z).
    pub galaxy: [MassGrid; 2],
    /// Centre: face-on, edge-on.
    pub centre: [MassGrid; 2],
    /// Total mass of every point added (also outside the maps), Msun.
    pub total_mass: f64,
    /// Points added.
    pub points: u64,
}

impl MapSet {
    /// Empty maps: the galaxy's of half-width `galaxy.0` kpc with `galaxy.1` bins per side,
    /// the centre's likewise.
    pub fn new(galaxy: (f64, usize), centre: (f64, usize)) -> Self {
        let pair = |(h, n): (f64, usize)| [MassGrid::new(h, n), MassGrid::new(h, n)];
        MapSet {
            galaxy: pair(galaxy),
            centre: pair(centre),
            total_mass: 0.0,
            points: 0,
        }
    }

    /// Adds points (kpc, galaxy frame) with masses (Msun).
    pub fn add(&mut self, position: &[[f64; 3]], mass: &[f64]) {
        for (p, &m) in position.iter().zip(mass) {
            for maps in [&mut self.galaxy, &mut self.centre] {
                maps[0].add(p[0], p[1], m);
                maps[1].add(p[0], p[2], m);
            }
            if m.is_finite() {
                self.total_mass += m;
            }
            self.points += 1;
        }
    }
}

/// Mean star position per cluster (kpc), accumulated while the catalogue streams.
#[derive(Debug, Clone, Default)]
pub struct ClusterCentres {
    sums: BTreeMap<u32, ([f64; 3], u64)>,
}

impl ClusterCentres {
    /// Adds stars of clusters `cluster` at `position` kpc.
    pub fn add(&mut self, position: &[[f64; 3]], cluster: &[u32]) {
        for (p, &c) in position.iter().zip(cluster) {
            let e = self.sums.entry(c).or_insert(([0.0; 3], 0));
            for (sum, x) in e.0.iter_mut().zip(p) {
                *sum += x;
            }
            e.1 += 1;
        }
    }

    /// Mean position of each cluster's stars, kpc.
    pub fn centres(&self) -> BTreeMap<u32, [f64; 3]> {
        self.sums
            .iter()
            .map(|(&c, (s, n))| (c, s.map(|v| v / *n as f64)))
            .collect()
    }
}

/// Half-widths (kpc) of the whole-galaxy and centre maps from a sample of radii: 1.1 × the
/// 95th percentile, and the median radius (at most half the galaxy's).
pub fn map_extent(radii: &mut Vec<f64>) -> (f64, f64) {
    radii.retain(|r| r.is_finite());
    if radii.is_empty() {
        return (10.0, 2.0);
    }
    radii.sort_by(f64::total_cmp);
    let q = |f: f64| radii[((radii.len() - 1) as f64 * f).round() as usize];
    let galaxy = (1.1 * q(0.95)).max(1e-3);
    let centre = q(0.5).clamp(1e-4, 0.5 * galaxy);
    (galaxy, centre)
}

/// Bins per side of a map of half-width `half` kpc: about 8 sample points per bin on average
/// over the face-on square (shot noise below ~35 % where the sample is average), within
/// [24, `max`]. `sample` is the sparser of the point sets drawn (the particles, when read).
pub fn map_bins(sample: &[[f64; 3]], half: f64, max: usize) -> usize {
    let inside = sample
        .iter()
        .filter(|p| p[0].abs() < half && p[1].abs() < half)
        .count();
    ((inside as f64 / 8.0).sqrt().round() as usize).clamp(24, max.max(24))
}

/// A cluster drawn on the face-on stars map: its label at its stars' mean position and its
/// core cell (x and y bounds, kpc; None for unbounded sides or no cell).
#[derive(Debug, Clone)]
pub struct ClusterMark {
    /// Label shown.
    pub label: String,
    /// Mean star position, kpc.
    pub centre: [f64; 3],
    /// Core cell in x: (lo, hi), kpc.
    pub x: (Option<f64>, Option<f64>),
    /// Core cell in y: (lo, hi), kpc.
    pub y: (Option<f64>, Option<f64>),
}

/// The map figure of one zoom: rows face-on and edge-on, columns particles and stars (stars
/// scaled to the particles' total mass), one log colour scale; `marks` drawn on the face-on
/// stars panel. `particles` None: stars only.
pub fn map_figure(
    name: &str,
    title: &str,
    particles: Option<&[MassGrid; 2]>,
    stars: &[MassGrid; 2],
    star_scale: f64,
    marks: &[ClusterMark],
) -> Result<Figure> {
    let cols = if particles.is_some() { 2 } else { 1 };
    let panel = 420u32;
    let width = panel * cols as u32 + 110;
    let height = 2 * panel + 40;
    let mut all: Vec<f64> = Vec::new();
    if let Some(p) = particles {
        for g in p {
            all.extend((0..g.mass.len()).map(|i| g.sigma(i, 1.0)));
        }
    }
    for g in stars {
        all.extend((0..g.mass.len()).map(|i| g.sigma(i, star_scale)));
    }
    let stretch = LogStretch::fitted(all.iter(), 4.0).unwrap_or(LogStretch { lo: 0.0, hi: 1.0 });
    render(name, title, width, height, |root| {
        root.draw(&Text::new(
            title.to_string(),
            (10, 8),
            (FONT_FAMILY, 20).into_font(),
        ))
        .map_err(pe)?;
        let body = root.margin(34, 0, 0, 0);
        let (maps, bar) = body.split_horizontally(panel * cols as u32);
        let cells = maps.split_evenly((2, cols));
        for (row, view) in ["face-on", "edge-on"].iter().enumerate() {
            for col in 0..cols {
                let (grid, scale, who) = match (particles, col) {
                    (Some(p), 0) => (&p[row], 1.0, "particles"),
                    _ => (&stars[row], star_scale, "stars"),
                };
                let area = &cells[row * cols + col];
                let h = grid.half;
                let ylabel = if row == 0 { "y [kpc]" } else { "z [kpc]" };
                let mut chart = ChartBuilder::on(area)
                    .caption(format!("{who}, {view}"), (FONT_FAMILY, 16))
                    .margin(8)
                    .x_label_area_size(38)
                    .y_label_area_size(48)
                    .build_cartesian_2d(-h..h, -h..h)
                    .map_err(pe)?;
                chart
                    .configure_mesh()
                    .disable_mesh()
                    .x_desc("x [kpc]")
                    .y_desc(ylabel)
                    .label_style((FONT_FAMILY, 12))
                    .x_labels(5)
                    .y_labels(5)
                    .draw()
                    .map_err(pe)?;
                let pixels = chart.plotting_area().get_pixel_range();
                fill_pixels(area, pixels, (-h, h), (-h, h), |a, b| {
                    grid.bin(a, b)
                        .map(|i| colour(stretch.t(grid.sigma(i, scale))))
                })?;
                if row == 0 && who == "stars" {
                    draw_marks(&mut chart, marks, h)?;
                }
            }
        }
        colour_bar(&bar, stretch, "log10 Σ [Msun/kpc²]")
    })
}

/// Core cells as white rectangles and labels at the clusters' centres, clipped to ±h kpc.
fn draw_marks<DB: DrawingBackend>(
    chart: &mut ChartContext<
        '_,
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    marks: &[ClusterMark],
    h: f64,
) -> Result<()> {
    let clip = |v: Option<f64>, d: f64| v.unwrap_or(d).clamp(-h, h);
    // Only the bounded sides of each core cell (an unbounded side is no border).
    let line = WHITE.mix(0.8).stroke_width(1);
    for m in marks {
        let (x0, x1) = (clip(m.x.0, -h), clip(m.x.1, h));
        let (y0, y1) = (clip(m.y.0, -h), clip(m.y.1, h));
        let mut sides = Vec::new();
        if let Some(x) = m.x.0.filter(|x| x.abs() < h) {
            sides.push(vec![(x, y0), (x, y1)]);
        }
        if let Some(x) = m.x.1.filter(|x| x.abs() < h) {
            sides.push(vec![(x, y0), (x, y1)]);
        }
        if let Some(y) = m.y.0.filter(|y| y.abs() < h) {
            sides.push(vec![(x0, y), (x1, y)]);
        }
        if let Some(y) = m.y.1.filter(|y| y.abs() < h) {
            sides.push(vec![(x0, y), (x1, y)]);
        }
        chart
            .draw_series(sides.into_iter().map(|s| PathElement::new(s, line)))
            .map_err(pe)?;
    }
    // Labels of clusters whose centres fall within 4% of the map of each other are joined
    // ("0, 2": cells stacked along z share a face-on centre).
    let mut spots: Vec<(f64, f64, String)> = Vec::new();
    for m in marks {
        let (cx, cy) = (m.centre[0], m.centre[1]);
        if !(cx.abs() < h && cy.abs() < h) {
            continue;
        }
        match spots
            .iter_mut()
            .find(|s| (s.0 - cx).abs() < 0.08 * h && (s.1 - cy).abs() < 0.08 * h)
        {
            Some(s) => s.2 = format!("{}, {}", s.2, m.label),
            None => spots.push((cx, cy, m.label.clone())),
        }
    }
    for (cx, cy, label) in spots {
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (cx, cy),
                (FONT_FAMILY, 14).into_font().color(&WHITE),
            )))
            .map_err(pe)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_bins_conserve_mass_inside_and_scale_to_density() {
        let mut g = MassGrid::new(1.0, 4);
        g.add(0.1, 0.1, 2.0);
        g.add(-0.99, 0.99, 1.0);
        g.add(1.5, 0.0, 7.0); // outside
        g.add(0.0, 0.0, f64::NAN);
        assert_eq!(g.total(), 3.0);
        assert_eq!(g.bin(0.1, 0.1), Some(2 * 4 + 2));
        assert_eq!(g.bin(-0.99, 0.99), Some(3 * 4));
        assert!((g.bin_area() - 0.25).abs() < 1e-15);
        assert!((g.sigma(10, 1.0) - 8.0).abs() < 1e-12);
        let (gal, cen) = map_extent(&mut (1..=100).map(f64::from).collect::<Vec<_>>());
        assert!((gal - 1.1 * 95.0).abs() < 1.2 && (cen - 50.0).abs() < 1.1);
        let sample: Vec<[f64; 3]> = (0..80_000)
            .map(|i| [(i % 100) as f64 / 100.0, 0.0, 0.0])
            .collect();
        assert_eq!(map_bins(&sample, 2.0, 200), 100);
        assert_eq!(map_bins(&sample, 2.0, 50), 50);
        assert_eq!(map_bins(&sample[..10], 2.0, 200), 24);
    }
}
