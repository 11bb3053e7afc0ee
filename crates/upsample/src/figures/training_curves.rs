//! Loss curves of the flows: training and held-out NLL per epoch of each cluster's position
//! and velocity flows (from `training.json`'s history, kept in `report.json`), six clusters per
//! figure, worst first.

use anyhow::Result;
use plotters::prelude::*;

use super::canvas::{pe, render, Figure, FONT_FAMILY};
use super::profiles::{panel, Axes, Curve, Scale, REFERENCE, STARS};
use super::run_record::ClusterEntry;
use crate::models::FlowMetrics;

/// Clusters per figure.
pub const CLUSTERS_PER_FIGURE: usize = 6;

fn curves(m: &[FlowMetrics]) -> Vec<Curve> {
    let mut out = Vec::new();
    // Ensemble members: one pair of curves each.
    for f in m {
        out.push(Curve {
            colour: REFERENCE,
            points: f
                .history
                .iter()
                .map(|h| (h.epoch as f64 + 1.0, h.train_nll, f64::NAN))
                .collect(),
        });
        out.push(Curve {
            colour: STARS,
            points: f
                .history
                .iter()
                .map(|h| (h.epoch as f64 + 1.0, h.val_nll, f64::NAN))
                .collect(),
        });
    }
    out
}

/// One figure of the clusters `entries` (at most [`CLUSTERS_PER_FIGURE`]): per cluster, the
/// position flow's and the velocity flow's NLL per epoch.
pub fn training_figure(name: &str, title: &str, entries: &[&ClusterEntry]) -> Result<Figure> {
    let rows = entries.len().div_ceil(2).max(1);
    let height = 40 + 280 * rows as u32;
    render(name, title, 1400, height, |root| {
        root.draw(&Text::new(title.to_string(), (10, 8), (FONT_FAMILY, 20)))
            .map_err(pe)?;
        let cells = root.margin(34, 0, 0, 0).split_evenly((rows, 4));
        for (i, c) in entries.iter().enumerate() {
            let t = &c.training;
            let label = &c.record.label;
            let pos = curves(&t.position);
            let vel = curves(&t.velocity);
            let has = |v: &[Curve]| v.iter().any(|c| !c.points.is_empty());
            for (j, (flow, cs, unit)) in [
                ("position flow", pos, "NLL [nats, ln kpc⁻³]"),
                ("velocity flow", vel, "NLL [nats, ln (km/s)⁻³]"),
            ]
            .into_iter()
            .enumerate()
            {
                let cell = &cells[2 * i + j];
                let title = format!("cluster {} ({label}): {flow}", c.record.index);
                if has(&cs) {
                    let axes = Axes {
                        x_desc: "epoch",
                        y_desc: unit,
                        x: Scale::Linear,
                        y: Scale::Linear,
                        error_bars: false,
                        integer_x: true,
                    };
                    panel(cell, &title, &axes, &cs)?;
                } else {
                    cell.draw(&Text::new(
                        format!("{title}: no per-epoch history in training.json"),
                        (20, 30),
                        (FONT_FAMILY, 13),
                    ))
                    .map_err(pe)?;
                }
            }
        }
        Ok(())
    })
}
