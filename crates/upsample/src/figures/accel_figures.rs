//! Figures of an `upsample accel` output (CSV or HDF5): the acceleration's magnitude |a| and
//! its radial component −a_r against radius, and histograms of the solver's diagnostics (the
//! condition number of M and the relative residual), log10.

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use std::path::Path;

use super::canvas::{pe, render, Figure, FONT_FAMILY};
use super::profiles::{panel, short, Axes, Curve, Scale, REFERENCE, STARS};

/// The columns of an accelerations file the figures use.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccelRows {
    /// Positions, kpc (galaxy frame).
    pub position: Vec<[f64; 3]>,
    /// Accelerations, (km/s)²/kpc.
    pub acceleration: Vec<[f64; 3]>,
    /// Condition number of M per row.
    pub condition: Vec<f64>,
    /// Relative residual per row.
    pub residual: Vec<f64>,
}

/// Reads an accelerations file written by `upsample accel` (.csv or .h5/.hdf5).
pub fn read_accel(path: &Path) -> Result<AccelRows> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("csv") => read_accel_csv(path),
        Some("h5" | "hdf5" | "hdf") => {
            let cols = snapio::read_table(path)
                .with_context(|| format!("reading accelerations from {}", path.display()))?;
            let mut rows = AccelRows::default();
            for c in cols {
                match (c.name.as_str(), c.values) {
                    ("position", snapio::TableValues::Float3(v)) => rows.position = v,
                    ("acceleration", snapio::TableValues::Float3(v)) => rows.acceleration = v,
                    ("condition", snapio::TableValues::Float(v)) => rows.condition = v,
                    ("residual", snapio::TableValues::Float(v)) => rows.residual = v,
                    _ => {}
                }
            }
            let n = rows.position.len();
            if n == 0 || rows.acceleration.len() != n {
                bail!(
                    "{}: expected `position` and `acceleration` (N, 3) datasets of equal length (an upsample accel output)",
                    path.display()
                );
            }
            Ok(rows)
        }
        _ => bail!(
            "{}: not an accelerations file (expected .csv, .h5 or .hdf5)",
            path.display()
        ),
    }
}

fn read_accel_csv(path: &Path) -> Result<AccelRows> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read accelerations {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("{}: empty accelerations file", path.display());
    };
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let col = |n: &str| names.iter().position(|h| *h == n);
    let need = ["x", "y", "z", "ax", "ay", "az"];
    let mut idx = [0usize; 6];
    for (k, n) in need.iter().enumerate() {
        idx[k] = col(n).with_context(|| {
            format!(
                "{}: no column `{n}` in the header (expected an upsample accel output: x,y,z,ax,ay,az,...)",
                path.display()
            )
        })?;
    }
    let (ci, ri) = (col("condition"), col("residual"));
    let mut rows = AccelRows::default();
    for (line, l) in lines {
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        let get = |i: usize| -> Result<f64> {
            let s = f.get(i).with_context(|| {
                format!("{} line {}: too few columns", path.display(), line + 1)
            })?;
            s.parse::<f64>().with_context(|| {
                format!(
                    "{} line {} column {}: `{s}` is not a number",
                    path.display(),
                    line + 1,
                    names.get(i).copied().unwrap_or("?")
                )
            })
        };
        rows.position
            .push([get(idx[0])?, get(idx[1])?, get(idx[2])?]);
        rows.acceleration
            .push([get(idx[3])?, get(idx[4])?, get(idx[5])?]);
        if let Some(i) = ci {
            rows.condition.push(get(i)?);
        }
        if let Some(i) = ri {
            rows.residual.push(get(i)?);
        }
    }
    Ok(rows)
}

/// Counts of log10 of the positive finite `values` in `bins` equal bins: (edges, counts).
pub fn log_histogram(values: &[f64], bins: usize) -> (Vec<f64>, Vec<u64>) {
    let logs: Vec<f64> = values
        .iter()
        .filter(|v| v.is_finite() && **v > 0.0)
        .map(|v| v.log10())
        .collect();
    if logs.is_empty() || bins == 0 {
        return (Vec::new(), Vec::new());
    }
    let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if hi - lo < 1e-9 {
        (lo - 0.5, hi + 0.5)
    } else {
        (lo, hi)
    };
    let w = (hi - lo) / bins as f64;
    let mut counts = vec![0u64; bins];
    for v in logs {
        counts[(((v - lo) / w) as usize).min(bins - 1)] += 1;
    }
    ((0..=bins).map(|i| lo + w * i as f64).collect(), counts)
}

/// The accelerations figure of `rows` (from the file named `source`).
pub fn accel_figure(name: &str, title: &str, rows: &AccelRows) -> Result<Figure> {
    let mut mag = Vec::new();
    let mut radial = Vec::new();
    for (x, a) in rows.position.iter().zip(&rows.acceleration) {
        let r = (x[0] * x[0] + x[1] * x[1] + x[2] * x[2]).sqrt();
        let am = (a[0] * a[0] + a[1] * a[1] + a[2] * a[2]).sqrt();
        mag.push((r, am, f64::NAN));
        if r > 0.0 {
            radial.push((r, -(a[0] * x[0] + a[1] * x[1] + a[2] * x[2]) / r, f64::NAN));
        }
    }
    mag.sort_by(|a, b| a.0.total_cmp(&b.0));
    radial.sort_by(|a, b| a.0.total_cmp(&b.0));
    render(name, title, 1200, 800, |root| {
        root.draw(&Text::new(title.to_string(), (10, 8), (FONT_FAMILY, 20)))
            .map_err(pe)?;
        let cells = root.margin(34, 0, 0, 0).split_evenly((2, 2));
        panel(
            &cells[0],
            "|a| against radius",
            &Axes {
                x_desc: "r [kpc]",
                y_desc: "|a| [(km/s)²/kpc]",
                x: Scale::Log,
                y: Scale::Log,
                error_bars: false,
                integer_x: false,
            },
            &[Curve {
                colour: REFERENCE,
                points: mag.clone(),
            }],
        )?;
        panel(
            &cells[1],
            "radial component −a_r (inward positive)",
            &Axes {
                x_desc: "r [kpc]",
                y_desc: "−a_r [(km/s)²/kpc]",
                x: Scale::Log,
                y: Scale::Linear,
                error_bars: false,
                integer_x: false,
            },
            &[Curve {
                colour: STARS,
                points: radial.clone(),
            }],
        )?;
        histogram(
            &cells[2],
            "condition number of M",
            "log10 condition",
            &rows.condition,
        )?;
        histogram(
            &cells[3],
            "relative residual",
            "log10 residual",
            &rows.residual,
        )?;
        Ok(())
    })
}

fn histogram(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    x_desc: &str,
    values: &[f64],
) -> Result<()> {
    let n = values.iter().filter(|v| v.is_finite() && **v > 0.0).count();
    let bins = ((n as f64).sqrt().ceil() as usize).clamp(10, 50);
    let (edges, counts) = log_histogram(values, bins);
    if counts.is_empty() {
        area.draw(&Text::new(
            format!("{title}: no positive finite values"),
            (20, 30),
            (FONT_FAMILY, 14),
        ))
        .map_err(pe)?;
        return Ok(());
    }
    let top = counts.iter().copied().max().unwrap_or(1) as f64 * 1.1;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT_FAMILY, 15))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(62)
        .build_cartesian_2d(edges[0]..edges[edges.len() - 1], 0.0..top)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_desc(x_desc)
        .y_desc("positions")
        .label_style((FONT_FAMILY, 12))
        .x_label_formatter(&|v| short(*v))
        .y_label_formatter(&|v| {
            if v.fract().abs() > 1e-9 {
                String::new()
            } else {
                format!("{v:.0}")
            }
        })
        .draw()
        .map_err(pe)?;
    chart
        .draw_series(counts.iter().enumerate().map(|(i, &c)| {
            Rectangle::new(
                [(edges[i], 0.0), (edges[i + 1], c as f64)],
                RGBColor(60, 90, 160).filled(),
            )
        }))
        .map_err(pe)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_histogram_counts_every_positive_value_once() {
        let (edges, counts) = log_histogram(&[1.0, 10.0, 100.0, 0.0, f64::NAN, -3.0], 2);
        assert_eq!(counts.iter().sum::<u64>(), 3);
        assert_eq!(edges, vec![0.0, 1.0, 2.0]);
        assert_eq!(counts, vec![1, 2]);
    }
}
