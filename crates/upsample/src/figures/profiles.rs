//! Radial profiles of the fidelity report's shells, stars against held-out particles: the
//! density (normalised to each sample's total, so samples of any size compare), σ_r, σ_t, the
//! anisotropy β and the mean rotation v_φ, with the shells' sampling errors; and the panel
//! drawing shared with the other line figures.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use super::canvas::{pe, render, Figure, FONT_FAMILY};
use crate::fidelity::{Fidelity, Profile};

/// One curve: (x, y, error of y) points, a name and a colour.
pub(crate) struct Curve {
    /// Legend.
    pub name: String,
    /// Colour.
    pub colour: RGBColor,
    /// (x, y, σ_y) points; non-finite ones are skipped.
    pub points: Vec<(f64, f64, f64)>,
}

/// Axis scales of a panel.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    /// Linear axis.
    Linear,
    /// Logarithmic axis (values ≤ 0 skipped).
    Log,
}

fn finite_range(v: impl Iterator<Item = f64>, scale: Scale) -> Option<(f64, f64)> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in v.filter(|x| x.is_finite() && (scale == Scale::Linear || *x > 0.0)) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return None;
    }
    Some(match scale {
        Scale::Log => {
            let (a, b) = (lo.log10(), hi.log10());
            let pad = ((b - a) * 0.05).max(0.05);
            (10f64.powf(a - pad), 10f64.powf(b + pad))
        }
        Scale::Linear => {
            let pad = ((hi - lo) * 0.08).max(1e-9 + hi.abs() * 0.05);
            (lo - pad, hi + pad)
        }
    })
}

/// Draws `curves` (points with error bars, joined by lines) in `area` with a legend.
pub(crate) fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    (xs, ys): (Scale, Scale),
    curves: &[Curve],
    error_bars: bool,
) -> Result<()> {
    let pts = || curves.iter().flat_map(|c| c.points.iter());
    let xr = finite_range(pts().map(|p| p.0), xs);
    let yr = finite_range(
        pts().flat_map(|p| {
            let e = if error_bars && p.2.is_finite() {
                p.2
            } else {
                0.0
            };
            [p.1 - e, p.1 + e, p.1]
        }),
        ys,
    );
    let (Some((x0, x1)), Some((y0, y1))) = (xr, yr) else {
        area.draw(&Text::new(
            format!("{title}: no finite values"),
            (20, 20),
            (FONT_FAMILY, 14),
        ))
        .map_err(pe)?;
        return Ok(());
    };
    let mut b = ChartBuilder::on(area);
    b.caption(title, (FONT_FAMILY, 15))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(62);
    macro_rules! draw_with {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .light_line_style(WHITE)
                .bold_line_style(RGBColor(225, 225, 225))
                .x_desc(x_desc)
                .y_desc(y_desc)
                .label_style((FONT_FAMILY, 12))
                .y_label_formatter(&|v| short(*v))
                .x_label_formatter(&|v| short(*v))
                .draw()
                .map_err(pe)?;
            for c in curves {
                let ok: Vec<(f64, f64, f64)> = c
                    .points
                    .iter()
                    .copied()
                    .filter(|p| {
                        p.0.is_finite()
                            && p.1.is_finite()
                            && (xs == Scale::Linear || p.0 > 0.0)
                            && (ys == Scale::Linear || p.1 > 0.0)
                    })
                    .collect();
                let col = c.colour;
                chart
                    .draw_series(LineSeries::new(
                        ok.iter().map(|p| (p.0, p.1)),
                        col.stroke_width(2),
                    ))
                    .map_err(pe)?
                    .label(c.name.clone())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2))
                    });
                chart
                    .draw_series(ok.iter().map(|p| Circle::new((p.0, p.1), 3, col.filled())))
                    .map_err(pe)?;
                if error_bars {
                    chart
                        .draw_series(ok.iter().filter(|p| p.2.is_finite()).map(|p| {
                            let lo = p.1 - p.2;
                            let lo = if ys == Scale::Log && lo <= 0.0 {
                                y0
                            } else {
                                lo.max(y0)
                            };
                            PathElement::new(vec![(p.0, lo), (p.0, (p.1 + p.2).min(y1))], col)
                        }))
                        .map_err(pe)?;
                }
            }
            chart
                .configure_series_labels()
                .border_style(BLACK)
                .background_style(WHITE.mix(0.85))
                .label_font((FONT_FAMILY, 12))
                .draw()
                .map_err(pe)?;
        }};
    }
    match (xs, ys) {
        (Scale::Log, Scale::Log) => {
            draw_with!(b
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(pe)?)
        }
        (Scale::Log, Scale::Linear) => {
            draw_with!(b
                .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
                .map_err(pe)?)
        }
        (Scale::Linear, Scale::Log) => {
            draw_with!(b
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(pe)?)
        }
        (Scale::Linear, Scale::Linear) => {
            draw_with!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(pe)?)
        }
    }
    Ok(())
}

/// A tick label with at most 3 significant digits.
pub(crate) fn short(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (1e-2..1e4).contains(&v.abs()) {
        let s = format!("{:.3}", v);
        let s = s.trim_end_matches('0').trim_end_matches('.');
        // Keep 3 significant digits at most.
        let d = v.abs().log10().floor() as i32;
        let decimals = (2 - d).clamp(0, 3) as usize;
        let t = format!("{:.*}", decimals, v);
        if t.len() < s.len() {
            t
        } else {
            s.to_string()
        }
    } else {
        format!("{v:.0e}")
    }
}

/// Red for stars, black for the held-out particles.
pub(crate) const STARS: RGBColor = RGBColor(200, 30, 30);
/// Colour of the reference (held-out particles).
pub(crate) const REFERENCE: RGBColor = RGBColor(20, 20, 20);

/// The five profiles of `fidelity` (stars vs held-out particles) in one figure.
pub fn profile_figure(name: &str, title: &str, fidelity: &Fidelity) -> Result<Figure> {
    type Pick = fn(&crate::fidelity::Shell, f64) -> Option<(f64, f64)>;
    let panels: [(&str, &str, Scale, Pick); 5] = [
        (
            "density / total",
            "ρ / Σw [kpc⁻³]",
            Scale::Log,
            |s, w| Some((s.density / w, s.density_err / w)),
        ),
        ("σ_r", "σ_r [km/s]", Scale::Linear, |s, _| {
            s.kinematics.as_ref().map(|k| (k.sigma_r, k.sigma_r_err))
        }),
        ("σ_t", "σ_t [km/s]", Scale::Linear, |s, _| {
            s.kinematics.as_ref().map(|k| (k.sigma_t, k.sigma_t_err))
        }),
        (
            "anisotropy β = 1 − σ_t²/(2σ_r²)",
            "β",
            Scale::Linear,
            |s, _| s.kinematics.as_ref().map(|k| (k.beta, k.beta_err)),
        ),
        ("rotation", "mean v_φ [km/s]", Scale::Linear, |s, _| {
            s.kinematics
                .as_ref()
                .map(|k| (k.mean_vphi, k.mean_vphi_err))
        }),
    ];
    let curve = |p: &Profile, pick: Pick, nm: &str, colour| {
        let w = if p.total_weight > 0.0 {
            p.total_weight
        } else {
            1.0
        };
        Curve {
            name: nm.to_string(),
            colour,
            points: p
                .shells
                .iter()
                .filter_map(|s| pick(s, w).map(|(v, e)| (s.r_mid, v, e)))
                .collect(),
        }
    };
    render(name, title, 1200, 800, |root| {
        root.draw(&Text::new(title.to_string(), (10, 8), (FONT_FAMILY, 20)))
            .map_err(pe)?;
        let cells = root.margin(34, 0, 0, 0).split_evenly((2, 3));
        for (cell, (t, y, ys, pick)) in cells.iter().zip(panels) {
            let curves = [
                curve(&fidelity.reference, pick, "held-out particles", REFERENCE),
                curve(&fidelity.stars, pick, "stars", STARS),
            ];
            panel(cell, t, "r [kpc]", y, (Scale::Log, ys), &curves, true)?;
        }
        let z = &fidelity.two_sample;
        let s = &fidelity.smoothness;
        let lines = [
            format!("two-sample (k = {}): z = {:.2}", z.k, z.z),
            format!(
                "  statistic {:.4}, null {:.4} ± {:.4}",
                z.statistic, z.null_mean, z.null_sd
            ),
            format!("smoothness ratio {:.3}, KS {:.3}", s.ratio, s.ks),
            format!("stars {}, held-out {}", z.n_stars, z.n_reference),
        ];
        let last = &cells[5];
        for (i, l) in lines.iter().enumerate() {
            last.draw(&Text::new(
                l.clone(),
                (30, 60 + 26 * i as i32),
                (FONT_FAMILY, 15),
            ))
            .map_err(pe)?;
        }
        Ok(())
    })
}
