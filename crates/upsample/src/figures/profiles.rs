//! Radial profiles of the fidelity report's shells, stars against held-out particles: the
//! density (normalised to each sample's total, so samples of any size compare), σ_r, σ_t, the
//! anisotropy β and the mean rotation v_φ, with the shells' sampling errors; and the panel
//! drawing shared with the other line figures.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::canvas::{pe, render, Figure, FONT_FAMILY};
use crate::fidelity::{Fidelity, Profile};

/// One curve: (x, y, error of y) points, a name and a colour.
pub(crate) struct Curve {
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

/// How a panel's axes are drawn.
pub(crate) struct Axes<'a> {
    /// Label of the x axis (with units).
    pub x_desc: &'a str,
    /// Label of the y axis (with units).
    pub y_desc: &'a str,
    /// Scale of x.
    pub x: Scale,
    /// Scale of y.
    pub y: Scale,
    /// Whether to draw ±σ error bars.
    pub error_bars: bool,
    /// Whether x takes integer values only (epochs): no fractional tick labels.
    pub integer_x: bool,
}

/// Values of 1, 2 and 5 × 10^k inside [10^lo, 10^hi] (only 1 × 10^k beyond 3 decades):
/// the ticks of a log axis.
pub(crate) fn log_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let steps: &[f64] = if hi - lo > 3.0 {
        &[1.0]
    } else {
        &[1.0, 2.0, 5.0]
    };
    let mut out = Vec::new();
    for k in (lo.floor() as i32 - 1)..=(hi.ceil() as i32 + 1) {
        for m in steps {
            let v = m * 10f64.powi(k);
            let u = v.log10();
            if u >= lo - 1e-9 && u <= hi + 1e-9 {
                out.push(v);
            }
        }
    }
    out
}

/// Draws `curves` (points, optionally with error bars, joined by lines) in `area`; the
/// figure's title says which colour is which. A log axis is drawn in log10 of the value with
/// ticks at 1, 2, 5 × 10^k labelled with the values.
pub(crate) fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    title: &str,
    axes: &Axes<'_>,
    curves: &[Curve],
) -> Result<()> {
    let (xs, ys, error_bars) = (axes.x, axes.y, axes.error_bars);
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
    // Plot coordinates: log10 of the value on log axes.
    let tx = move |v: f64| if xs == Scale::Log { v.log10() } else { v };
    let ty = move |v: f64| if ys == Scale::Log { v.log10() } else { v };
    let (u0, u1, w0, w1) = (tx(x0), tx(x1), ty(y0), ty(y1));
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT_FAMILY, 15))
        .margin(8)
        .x_label_area_size(36)
        .y_label_area_size(62)
        .build_cartesian_2d(u0..u1, w0..w1)
        .map_err(pe)?;
    let integer_x = axes.integer_x;
    let grid = RGBColor(225, 225, 225);
    let y_fmt = |v: &f64| short(*v);
    let x_fmt = |v: &f64| {
        if integer_x && v.fract().abs() > 1e-9 {
            String::new()
        } else {
            short(*v)
        }
    };
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(WHITE)
        .bold_line_style(grid)
        .x_desc(axes.x_desc)
        .y_desc(axes.y_desc)
        .label_style((FONT_FAMILY, 12))
        .y_label_formatter(&y_fmt)
        .x_label_formatter(&x_fmt);
    if xs == Scale::Log {
        mesh.disable_x_mesh().x_labels(0);
    }
    if ys == Scale::Log {
        mesh.disable_y_mesh().y_labels(0);
    }
    mesh.draw().map_err(pe)?;
    // Log axes: grid lines, tick marks and labels at 1, 2, 5 × 10^k.
    let base = area.get_base_pixel();
    let font = TextStyle::from((FONT_FAMILY, 12).into_font());
    if xs == Scale::Log {
        for v in log_ticks(u0, u1) {
            let u = v.log10();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(u, w0), (u, w1)],
                    grid,
                )))
                .map_err(pe)?;
            let (px, py) = chart.backend_coord(&(u, w0));
            let (px, py) = (px - base.0, py - base.1);
            area.draw(&PathElement::new(vec![(px, py), (px, py + 5)], BLACK))
                .map_err(pe)?;
            area.draw(&Text::new(
                short(v),
                (px, py + 7),
                font.pos(Pos::new(HPos::Center, VPos::Top)),
            ))
            .map_err(pe)?;
        }
    }
    if ys == Scale::Log {
        for v in log_ticks(w0, w1) {
            let w = v.log10();
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(u0, w), (u1, w)],
                    grid,
                )))
                .map_err(pe)?;
            let (px, py) = chart.backend_coord(&(u0, w));
            let (px, py) = (px - base.0, py - base.1);
            area.draw(&PathElement::new(vec![(px - 5, py), (px, py)], BLACK))
                .map_err(pe)?;
            area.draw(&Text::new(
                short(v),
                (px - 7, py),
                font.pos(Pos::new(HPos::Right, VPos::Center)),
            ))
            .map_err(pe)?;
        }
    }
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
                ok.iter().map(|p| (tx(p.0), ty(p.1))),
                col.stroke_width(2),
            ))
            .map_err(pe)?;
        chart
            .draw_series(
                ok.iter()
                    .map(|p| Circle::new((tx(p.0), ty(p.1)), 3, col.filled())),
            )
            .map_err(pe)?;
        if error_bars {
            chart
                .draw_series(ok.iter().filter(|p| p.2.is_finite()).map(|p| {
                    let lo = p.1 - p.2;
                    let lo = if ys == Scale::Log && lo <= 0.0 {
                        w0
                    } else {
                        ty(lo).max(w0)
                    };
                    let hi = ty(p.1 + p.2).min(w1);
                    PathElement::new(vec![(tx(p.0), lo), (tx(p.0), hi)], col)
                }))
                .map_err(pe)?;
        }
    }
    Ok(())
}

/// A tick label with at most 3 significant digits.
pub(crate) fn short(v: f64) -> String {
    if v.abs() < 1e-9 {
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
            "anisotropy β = 1 − σ_t²/σ_r² (σ_t per component)",
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
    let curve = |p: &Profile, pick: Pick, colour| {
        let w = if p.total_weight > 0.0 {
            p.total_weight
        } else {
            1.0
        };
        Curve {
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
                curve(&fidelity.reference, pick, REFERENCE),
                curve(&fidelity.stars, pick, STARS),
            ];
            let axes = Axes {
                x_desc: "r [kpc]",
                y_desc: y,
                x: Scale::Log,
                y: ys,
                error_bars: true,
                integer_x: false,
            };
            panel(cell, t, &axes, &curves)?;
        }
        let z = &fidelity.two_sample;
        let s = &fidelity.smoothness;
        let lines = [
            "red: stars; black: held-out particles".to_string(),
            "(±1σ sampling errors)".to_string(),
            String::new(),
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
