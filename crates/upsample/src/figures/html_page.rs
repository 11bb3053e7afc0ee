//! `DIR/report.html`: one self-contained page (figures embedded as base64 PNG data URIs, no
//! script, no network) with the run's numbers from `report.json`. Every number printed from
//! `report.json` sits in an element carrying `data-key`, the JSON pointer of its source
//! (`/clusters/3/training/position/0/held_out_nll`), so a test (or a reader) can check the page
//! against the file.

use base64::Engine;

use super::canvas::Figure;
use super::run_record::RunRecord;
use crate::fidelity::Fidelity;

/// Formats a number as printed on the page: integers exactly, others to 4 significant digits
/// (scientific outside 1e-3 ≤ |v| < 1e6); non-finite as `n/a`.
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".into();
    }
    if v == v.trunc() && v.abs() < 1e15 {
        return format!("{v:.0}");
    }
    let a = v.abs();
    if (1e-3..1e6).contains(&a) {
        let digits = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    } else {
        format!("{v:.3e}")
    }
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A table cell holding the number at JSON pointer `key` of report.json.
fn num(key: &str, v: f64) -> String {
    format!(
        "<td class=\"n\" data-key=\"{}\">{}</td>",
        escape(key),
        number(v)
    )
}

/// A section of the page: a heading, paragraphs/tables (HTML) and figures.
#[derive(Debug, Default)]
pub struct Section {
    /// Heading.
    pub heading: String,
    /// HTML before the figures (already escaped).
    pub html: String,
    /// Figures, in order.
    pub figures: Vec<Figure>,
}

/// The run summary table.
pub fn summary_html(r: &RunRecord) -> String {
    let i = &r.info;
    let mut h = String::from("<table>");
    let row = |h: &mut String, name: &str, cell: String| {
        h.push_str(&format!("<tr><th>{}</th>{cell}</tr>", escape(name)));
    };
    row(
        &mut h,
        "snapshot",
        format!("<td>{}</td>", escape(&i.snapshot.display().to_string())),
    );
    row(&mut h, "layout", format!("<td>{}</td>", escape(&i.layout)));
    row(
        &mut h,
        "method",
        format!(
            "<td>{}</td>",
            escape(&format!("{:?}", i.method).to_lowercase())
        ),
    );
    row(
        &mut h,
        "program version",
        format!("<td>{}</td>", escape(&i.version)),
    );
    row(
        &mut h,
        "star particles read",
        num("/star_particles_read", i.star_particles_read as f64),
    );
    row(
        &mut h,
        "star particles selected",
        num("/star_particles_selected", i.star_particles_selected as f64),
    );
    row(
        &mut h,
        "wind particles dropped",
        num("/wind_particles_dropped", i.wind_particles_dropped as f64),
    );
    row(
        &mut h,
        "stellar mass of the particles [Msun]",
        num("/stellar_mass_msun", i.stellar_mass_msun),
    );
    row(
        &mut h,
        "star fraction",
        num("/star_fraction", i.star_fraction),
    );
    row(
        &mut h,
        "stars drawn",
        num("/stars/stars_drawn", r.stars.stars_drawn as f64),
    );
    row(
        &mut h,
        "stars written",
        num("/stars/stars_written", r.stars.stars_written as f64),
    );
    row(
        &mut h,
        "initial mass written [Msun]",
        num(
            "/stars/initial_mass_written_msun",
            r.stars.initial_mass_written_msun,
        ),
    );
    for (k, (stage, s)) in r.seconds.iter().enumerate() {
        row(
            &mut h,
            &format!("seconds: {stage}"),
            num(&format!("/seconds/{k}/1"), *s),
        );
    }
    h.push_str("</table>");
    h
}

/// The fidelity tables (statistics and shells) of `f` at JSON pointer `key`.
pub fn fidelity_html(key: &str, f: &Fidelity) -> String {
    let t = &f.two_sample;
    let s = &f.smoothness;
    let mut h = String::from("<table><tr><th>statistic</th><th>value</th><th>meaning</th></tr>");
    let rows: [(&str, String, f64, &str); 8] = [
        ("two-sample z", format!("{key}/two_sample/z"), t.z, "(statistic − null mean) / null sd; ≈ 0 when stars and held-out particles are alike"),
        ("two-sample statistic", format!("{key}/two_sample/statistic"), t.statistic, "fraction of k nearest neighbours of the same sample"),
        ("null mean", format!("{key}/two_sample/null_mean"), t.null_mean, "the same under label permutations"),
        ("null sd", format!("{key}/two_sample/null_sd"), t.null_sd, ""),
        ("stars used", format!("{key}/two_sample/n_stars"), t.n_stars as f64, ""),
        ("held-out particles", format!("{key}/two_sample/n_reference"), t.n_reference as f64, ""),
        ("smoothness ratio", format!("{key}/smoothness/ratio"), s.ratio, "median distance star→training / held-out→training; ≈ 1 for independent draws, < 1 when stars huddle at parents"),
        ("smoothness KS", format!("{key}/smoothness/ks"), s.ks, "KS distance of the two distance distributions"),
    ];
    for (name, k, v, meaning) in rows {
        h.push_str(&format!(
            "<tr><th>{}</th>{}<td>{}</td></tr>",
            escape(name),
            num(&k, v),
            escape(meaning)
        ));
    }
    h.push_str("</table><h3>Shells: stars against held-out particles</h3><table><tr><th>r [kpc]</th><th>share ratio</th><th>σ_r ratio</th><th>σ_t ratio</th><th>β diff</th><th>v_φ diff [km/s]</th></tr>");
    for (i, c) in f.shells.iter().enumerate() {
        let k = |f: &str| format!("{key}/shells/{i}/{f}");
        let pm = |f: &str, v: f64, ef: &str, e: f64| {
            format!(
                "<td class=\"n\"><span data-key=\"{}\">{}</span> ± <span data-key=\"{}\">{}</span></td>",
                escape(&k(f)),
                number(v),
                escape(&k(ef)),
                number(e)
            )
        };
        h.push_str(&format!(
            "<tr>{}{}{}{}{}{}</tr>",
            num(&k("r_mid"), c.r_mid),
            pm(
                "share_ratio",
                c.share_ratio,
                "share_ratio_err",
                c.share_ratio_err
            ),
            pm(
                "sigma_r_ratio",
                c.sigma_r_ratio,
                "sigma_r_ratio_err",
                c.sigma_r_ratio_err
            ),
            pm(
                "sigma_t_ratio",
                c.sigma_t_ratio,
                "sigma_t_ratio_err",
                c.sigma_t_ratio_err
            ),
            pm("beta_diff", c.beta_diff, "beta_diff_err", c.beta_diff_err),
            pm("vphi_diff", c.vphi_diff, "vphi_diff_err", c.vphi_diff_err),
        ));
    }
    h.push_str("</table>");
    if !t.shells.is_empty() {
        h.push_str(
            "<h3>Two-sample statistic by shell</h3><p>Each shell's own z, and its part of the \
             whole z (the parts of all shells and of the points outside them add up to it): \
             where stars and held-out particles differ.</p><table><tr><th>r [kpc]</th>\
             <th>stars</th><th>held-out</th><th>z</th><th>part of z</th></tr>",
        );
        for (i, c) in t.shells.iter().enumerate() {
            let k = |f: &str| format!("{key}/two_sample/shells/{i}/{f}");
            h.push_str(&format!(
                "<tr>{}{}{}{}{}</tr>",
                num(&k("r_mid"), c.r_mid),
                num(&k("n_stars"), c.n_stars as f64),
                num(&k("n_reference"), c.n_reference as f64),
                num(&k("z"), c.z),
                num(&k("z_part"), c.z_part),
            ));
        }
        h.push_str("</table>");
    }
    h
}

/// The clusters table, rows in `order` (positions in `r.clusters`, worst first).
pub fn clusters_html(r: &RunRecord, order: &[usize]) -> String {
    let mut h = String::from(
        "<table><tr><th>cluster</th><th>label</th><th>particles</th><th>ghosts</th>\
         <th>two-sample z</th><th>smoothness</th><th>held-out NLL p(x)</th>\
         <th>held-out NLL p(v|x)</th><th>epochs p(x)/p(v|x)</th><th>training s</th>\
         <th>stars written</th><th>sampling s</th></tr>",
    );
    for &p in order {
        let c = &r.clusters[p];
        let k = |f: &str| format!("/clusters/{p}/{f}");
        let mut row = format!(
            "<tr>{}<td>{}</td>{}{}",
            num(&k("index"), c.record.index as f64),
            escape(&c.record.label),
            num(&k("members"), c.record.members as f64),
            num(&k("ghosts"), c.record.ghosts as f64),
        );
        match &c.fidelity {
            Some(f) => {
                row.push_str(&num(&k("fidelity/two_sample/z"), f.two_sample.z));
                row.push_str(&num(&k("fidelity/smoothness/ratio"), f.smoothness.ratio));
            }
            None => row.push_str("<td>—</td><td>—</td>"),
        }
        for flow in ["position", "velocity"] {
            let m = if flow == "position" {
                &c.training.position
            } else {
                &c.training.velocity
            };
            let cells: Vec<String> = m
                .iter()
                .enumerate()
                .map(|(j, f)| {
                    format!(
                        "<span data-key=\"{}\">{}</span>",
                        escape(&k(&format!("training/{flow}/{j}/held_out_nll"))),
                        number(f.held_out_nll)
                    )
                })
                .collect();
            row.push_str(&format!("<td class=\"n\">{}</td>", cells.join(" ")));
        }
        let ep = |m: &[crate::models::FlowMetrics], flow: &str| {
            m.iter()
                .enumerate()
                .map(|(j, f)| {
                    format!(
                        "<span data-key=\"{}\">{}</span>",
                        escape(&k(&format!("training/{flow}/{j}/epochs_run"))),
                        f.epochs_run
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        };
        row.push_str(&format!(
            "<td class=\"n\">{} / {}</td>",
            ep(&c.training.position, "position"),
            ep(&c.training.velocity, "velocity")
        ));
        row.push_str(&num(&k("training/seconds"), c.training.seconds));
        row.push_str(&num(
            &k("stars/stars_written"),
            c.stars.stars_written as f64,
        ));
        row.push_str(&num(&k("sampling_seconds"), c.sampling_seconds));
        row.push_str("</tr>");
        h.push_str(&row);
    }
    h.push_str("</table>");
    h
}

/// The survey counts table.
pub fn survey_html(r: &RunRecord) -> String {
    let mut h = String::from(
        "<table><tr><th>observer</th><th>file</th><th>position [kpc]</th><th>observed</th>\
         <th>alive</th><th>selected</th></tr>",
    );
    for (p, s) in r.survey.iter().enumerate() {
        let k = |f: &str| format!("/survey/{p}/{f}");
        h.push_str(&format!(
            "<tr>{}<td>{}</td><td class=\"n\">{}, {}, {}</td>{}{}{}</tr>",
            num(&k("observer"), s.observer as f64),
            escape(&s.file),
            format_args!(
                "<span data-key=\"{}\">{}</span>",
                k("observer_position_kpc/0"),
                number(s.observer_position_kpc[0])
            ),
            format_args!(
                "<span data-key=\"{}\">{}</span>",
                k("observer_position_kpc/1"),
                number(s.observer_position_kpc[1])
            ),
            format_args!(
                "<span data-key=\"{}\">{}</span>",
                k("observer_position_kpc/2"),
                number(s.observer_position_kpc[2])
            ),
            num(&k("drawn"), s.drawn as f64),
            num(&k("alive"), s.alive as f64),
            num(&k("selected"), s.selected as f64),
        ));
    }
    h.push_str("</table>");
    h
}

/// The whole page.
pub fn page(title: &str, sections: &[Section], notes: &[String]) -> String {
    let mut h = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{}</title><style>\
         body{{font-family:sans-serif;max-width:1250px;margin:1em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:0.5em 0 1em}}\
         td,th{{border:1px solid #ccc;padding:2px 8px;text-align:left;font-size:90%}}\
         td.n{{text-align:right;font-variant-numeric:tabular-nums}}\
         img{{max-width:100%;border:1px solid #eee;margin:0.5em 0}}\
         nav a{{margin-right:1em}} .note{{color:#a40}}\
         </style></head><body>\n<h1>{}</h1>\n<nav>",
        escape(title),
        escape(title)
    );
    for (i, s) in sections.iter().enumerate() {
        h.push_str(&format!("<a href=\"#s{i}\">{}</a>", escape(&s.heading)));
    }
    h.push_str("</nav>\n");
    if !notes.is_empty() {
        h.push_str("<ul>");
        for n in notes {
            h.push_str(&format!("<li class=\"note\">{}</li>", escape(n)));
        }
        h.push_str("</ul>\n");
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    for (i, s) in sections.iter().enumerate() {
        h.push_str(&format!(
            "<h2 id=\"s{i}\">{}</h2>\n{}\n",
            escape(&s.heading),
            s.html
        ));
        for f in &s.figures {
            h.push_str(&format!(
                "<figure><img alt=\"{}\" width=\"{}\" height=\"{}\" src=\"data:image/png;base64,{}\">\
                 <figcaption>{} (figures/{})</figcaption></figure>\n",
                escape(&f.title),
                f.width,
                f.height,
                b64.encode(&f.png),
                escape(&f.title),
                escape(&f.name)
            ));
        }
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_to_four_significant_digits_and_parse_back() {
        assert_eq!(number(70000.0), "70000");
        assert_eq!(number(1.23456), "1.235");
        assert_eq!(number(-0.0123456), "-0.01235");
        assert_eq!(number(123456.7), "123457");
        assert_eq!(number(1.5e-7), "1.500e-7");
        assert_eq!(number(f64::NAN), "n/a");
        for v in [3.25159e-5, 2.61828, 9999.97, -42.4242, 6.02e23] {
            let back: f64 = number(v).parse().unwrap();
            assert!(((back - v) / v).abs() < 5e-4, "{v} -> {back}");
        }
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
    }
}
