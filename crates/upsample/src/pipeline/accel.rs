//! Accelerations at positions from a run's trained flows (the library half of `upsample accel`;
//! the solver and the density are `crate::dynamics`): reading positions (CSV, HDF5 or a grid
//! spec), writing one row per position with the diagnostics (CSV or HDF5 with units), timing.
//! Units: positions kpc, accelerations (km/s)²/kpc, density Msun/kpc³.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use snapio::{AttrValue, TableColumn, TableValues};

use crate::dynamics::{
    accelerations, poisson_density, Acceleration, EomOptions, PhaseSpaceDensity,
};
use crate::models::ModelSet;
use crate::observe::Progress;

/// File formats of positions and results, chosen by extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableFormat {
    /// Comma-separated values with a header line (`.csv`).
    Csv,
    /// HDF5 (`.h5`, `.hdf5`, `.hdf`).
    Hdf5,
}

/// The format of `path` from its extension; an error names the file and the accepted ones.
pub fn table_format(path: &Path) -> Result<TableFormat> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("csv") => Ok(TableFormat::Csv),
        Some("h5" | "hdf5" | "hdf") => Ok(TableFormat::Hdf5),
        _ => bail!(
            "{}: unknown file type (expected the extension .csv, .h5 or .hdf5)",
            path.display()
        ),
    }
}

/// Positions (kpc) from a CSV file with columns `x,y,z` (header line first; other columns
/// ignored; blank lines and lines starting with `#` skipped). Errors name file, line and column.
pub fn read_positions_csv(path: &Path) -> Result<Vec<[f64; 3]>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the positions file {}", path.display()))?;
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
    let Some((hline, header)) = lines.next() else {
        bail!(
            "{}: empty file (expected a header line `x,y,z` and one row per position, kpc)",
            path.display()
        );
    };
    let names: Vec<&str> = header.split(',').map(|s| s.trim()).collect();
    let mut cols = [0usize; 3];
    for (c, want) in ["x", "y", "z"].iter().enumerate() {
        cols[c] = names.iter().position(|n| n == want).with_context(|| {
            format!(
                "{}: line {hline}: expected a header with columns x,y,z (kpc), found `{header}`",
                path.display()
            )
        })?;
    }
    let mut out = Vec::new();
    for (ln, line) in lines {
        let fields: Vec<&str> = line.split(',').map(|s| s.trim()).collect();
        if fields.len() != names.len() {
            bail!(
                "{}: line {ln}: {} fields, expected {} like the header",
                path.display(),
                fields.len(),
                names.len()
            );
        }
        let mut p = [0.0; 3];
        for (c, &col) in cols.iter().enumerate() {
            let name = ["x", "y", "z"][c];
            let f = fields[col];
            let v: f64 = f.parse().map_err(|_| {
                anyhow::anyhow!(
                    "{}: line {ln}, column {name}: `{f}` is not a number (expected kpc)",
                    path.display()
                )
            })?;
            if !v.is_finite() {
                bail!(
                    "{}: line {ln}, column {name}: {v} (expected a finite position in kpc)",
                    path.display()
                );
            }
            p[c] = v;
        }
        out.push(p);
    }
    Ok(out)
}

/// Positions (kpc) from a CSV or HDF5 file (dataset `dataset`, shape (N, 3)), by extension.
pub fn read_positions(path: &Path, dataset: &str) -> Result<Vec<[f64; 3]>> {
    if !path.exists() {
        bail!(
            "{}: positions file not found (expected a CSV with header x,y,z or an HDF5 file \
             with an (N, 3) `{dataset}` dataset, kpc)",
            path.display()
        );
    }
    let x = match table_format(path)? {
        TableFormat::Csv => read_positions_csv(path)?,
        TableFormat::Hdf5 => snapio::read_vec3(path, dataset)
            .with_context(|| format!("reading positions (kpc) from {}", path.display()))?,
    };
    if x.is_empty() {
        bail!(
            "{}: no positions (expected at least one row)",
            path.display()
        );
    }
    Ok(x)
}

/// Positions (kpc) of a grid spec: per axis `x=VALUE` or `x=START:STOP:COUNT` (COUNT points,
/// both ends included), all three axes once, comma-separated, e.g. `x=-5:5:11,y=0,z=0`.
/// Rows run with z fastest, then y, then x.
pub fn parse_grid(spec: &str) -> Result<Vec<[f64; 3]>> {
    let bad = |why: String| {
        anyhow::anyhow!(
            "--grid {spec:?}: {why} (expected e.g. \"x=-5:5:11,y=0,z=0\": each of x, y, z once, \
             a value or start:stop:count, kpc)"
        )
    };
    let mut axes: [Option<Vec<f64>>; 3] = [None, None, None];
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, values) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("`{part}` has no `=`")))?;
        let a = match name.trim() {
            "x" => 0,
            "y" => 1,
            "z" => 2,
            other => return Err(bad(format!("unknown axis `{other}`"))),
        };
        if axes[a].is_some() {
            return Err(bad(format!("axis `{}` given twice", name.trim())));
        }
        let num = |s: &str| -> Result<f64> {
            let v: f64 = s
                .trim()
                .parse()
                .map_err(|_| bad(format!("`{s}` is not a number")))?;
            if !v.is_finite() {
                return Err(bad(format!("`{s}` is not finite")));
            }
            Ok(v)
        };
        let f: Vec<&str> = values.split(':').collect();
        let list = match f.as_slice() {
            [v] => vec![num(v)?],
            [a0, a1, n] => {
                let (start, stop) = (num(a0)?, num(a1)?);
                let n: usize = n
                    .trim()
                    .parse()
                    .map_err(|_| bad(format!("count `{n}` is not a positive integer")))?;
                match n {
                    0 => return Err(bad("count must be >= 1".into())),
                    1 => vec![start],
                    _ => (0..n)
                        .map(|i| start + (stop - start) * i as f64 / (n - 1) as f64)
                        .collect(),
                }
            }
            _ => {
                return Err(bad(format!(
                    "`{values}` is neither a value nor start:stop:count"
                )))
            }
        };
        axes[a] = Some(list);
    }
    let [Some(xs), Some(ys), Some(zs)] = axes else {
        return Err(bad("every axis x, y, z must be given".into()));
    };
    let mut out = Vec::with_capacity(xs.len() * ys.len() * zs.len());
    for &x in &xs {
        for &y in &ys {
            for &z in &zs {
                out.push([x, y, z]);
            }
        }
    }
    Ok(out)
}

/// Results at every position, in input order.
#[derive(Debug, Clone)]
pub struct AccelTable {
    /// Positions, kpc.
    pub positions: Vec<[f64; 3]>,
    /// Accelerations and diagnostics, one per position.
    pub accelerations: Vec<Acceleration>,
    /// Mass density from the Poisson equation, Msun/kpc³ (with a finite-difference step).
    pub density: Option<Vec<f64>>,
}

/// Units of the acceleration columns.
pub const ACCEL_UNITS: &str = "(km/s)^2/kpc";

/// Meaning of the flag values, written with the outputs.
pub const FLAG_MEANING: &str = "0 solved; 1 ill-conditioned M (velocity samples do not constrain every direction; acceleration NaN); 2 no model density at this position (acceleration NaN)";

/// Formats a number for CSV: plain for moderate magnitudes, scientific otherwise (round-trips).
fn csv_num(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-4..1e15).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// Writes `table` to `path` (CSV or HDF5 by extension), atomically; HDF5 datasets carry
/// `units` attributes and the root `attributes`.
pub fn write_accelerations(
    path: &Path,
    table: &AccelTable,
    attributes: &[(String, AttrValue)],
) -> Result<()> {
    let n = table.positions.len();
    if table.accelerations.len() != n || table.density.as_ref().is_some_and(|d| d.len() != n) {
        bail!("internal: result rows do not match the {n} positions");
    }
    match table_format(path)? {
        TableFormat::Csv => {
            let mut s =
                String::from("x,y,z,ax,ay,az,ax_err,ay_err,az_err,samples,condition,residual,flag");
            if table.density.is_some() {
                s.push_str(",density");
            }
            s.push('\n');
            for (i, (p, a)) in table.positions.iter().zip(&table.accelerations).enumerate() {
                let mut row: Vec<String> = p
                    .iter()
                    .chain(&a.a)
                    .chain(&a.error)
                    .map(|&v| csv_num(v))
                    .collect();
                row.push(a.samples.to_string());
                row.push(csv_num(a.condition));
                row.push(csv_num(a.residual));
                row.push(a.status.flag().to_string());
                if let Some(d) = &table.density {
                    row.push(csv_num(d[i]));
                }
                s.push_str(&row.join(","));
                s.push('\n');
            }
            crate::fsio::write_atomically(path, s.as_bytes())
        }
        TableFormat::Hdf5 => {
            let acc = &table.accelerations;
            let col = TableColumn::new;
            let mut cols = vec![
                col(
                    "position",
                    "kpc",
                    "query position, galaxy frame of the run",
                    TableValues::Float3(table.positions.clone()),
                ),
                col(
                    "acceleration",
                    ACCEL_UNITS,
                    "a = -grad(Phi) from the steady-state collisionless Boltzmann equation",
                    TableValues::Float3(acc.iter().map(|a| a.a).collect()),
                ),
                col(
                    "acceleration_error",
                    ACCEL_UNITS,
                    "bootstrap standard deviation of each component over the velocity samples",
                    TableValues::Float3(acc.iter().map(|a| a.error).collect()),
                ),
                col(
                    "samples",
                    "dimensionless (count)",
                    "velocity samples used (finite log f and gradients)",
                    TableValues::UInt(acc.iter().map(|a| a.samples as u32).collect()),
                ),
                col(
                    "condition",
                    "dimensionless",
                    "condition number of M (largest / smallest eigenvalue)",
                    TableValues::Float(acc.iter().map(|a| a.condition).collect()),
                ),
                col(
                    "residual",
                    "dimensionless",
                    "relative residual of the equation at the solution",
                    TableValues::Float(acc.iter().map(|a| a.residual).collect()),
                ),
                col(
                    "flag",
                    "dimensionless",
                    FLAG_MEANING,
                    TableValues::UInt(acc.iter().map(|a| a.status.flag()).collect()),
                ),
            ];
            if let Some(d) = &table.density {
                cols.push(col(
                    "density",
                    "Msun/kpc^3",
                    "mass density -div(a)/(4 pi G) by central finite differences",
                    TableValues::Float(d.clone()),
                ));
            }
            snapio::write_table(path, &cols, attributes)
                .with_context(|| format!("writing accelerations to {}", path.display()))
        }
    }
}

/// Solves the accelerations (and optionally the Poisson density with step `poisson_step` kpc)
/// of `density` at `x`, reporting progress and a timing line (accelerations per second).
pub fn compute<D: PhaseSpaceDensity + ?Sized>(
    density: &D,
    x: &[[f64; 3]],
    opts: &EomOptions,
    poisson_step: Option<f64>,
    device_name: &str,
    progress: &dyn Progress,
) -> Result<AccelTable> {
    let start = Instant::now();
    let mut bar = progress.task(x.len() as u64, "accelerations");
    let acc = accelerations(density, x, opts, &mut |done, _| {
        bar.set(done as u64, "positions")
    })?;
    bar.finish();
    let secs = start.elapsed().as_secs_f64();
    tracing::info!(
        "accel: {} positions x {} velocities in {secs:.2} s: {:.1} accelerations/s ({:.0} velocity samples/s) on {device_name}",
        x.len(),
        opts.k,
        x.len() as f64 / secs,
        (x.len() * opts.k) as f64 / secs
    );
    let density_col = match poisson_step {
        Some(h) => {
            let mut bar = progress.task(6 * x.len() as u64, "poisson stencil");
            let d = poisson_density(density, x, h, opts, &mut |done, _| {
                bar.set(done as u64, "positions")
            })?;
            bar.finish();
            Some(d)
        }
        None => None,
    };
    Ok(AccelTable {
        positions: x.to_vec(),
        accelerations: acc,
        density: density_col,
    })
}

/// Where the positions of an acceleration request come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Positions {
    /// A CSV file with header `x,y,z`, or an HDF5 file with an (N, 3) dataset of this name.
    File {
        /// The file (kpc, galaxy frame of the run).
        path: std::path::PathBuf,
        /// Dataset name in an HDF5 file.
        dataset: String,
    },
    /// A grid spec, e.g. "x=-5:5:11,y=0,z=0" (see [`parse_grid`]).
    Grid(String),
}

/// One acceleration job: which models, where, with which solver settings, into which file.
#[derive(Debug, Clone)]
pub struct AccelRequest {
    /// A run's models/ folder, or the run folder holding it.
    pub model: std::path::PathBuf,
    /// Query positions, kpc.
    pub positions: Positions,
    /// Output file (.csv or .h5/.hdf5).
    pub out: std::path::PathBuf,
    /// Compute device ("flex", "libtorch", "cuda:N").
    pub device: String,
    /// Solver settings.
    pub opts: EomOptions,
    /// Step of the Poisson density's finite differences, kpc (None: no density column).
    pub poisson_step: Option<f64>,
}

/// Runs an acceleration job: validates, loads the models, solves, writes the table.
pub fn run_accel(req: &AccelRequest, progress: &dyn Progress) -> Result<()> {
    table_format(&req.out).context("--out")?;
    if let Some(parent) = req.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            bail!(
                "{}: output folder {} does not exist",
                req.out.display(),
                parent.display()
            );
        }
    }
    if let Some(h) = req.poisson_step {
        if !(h > 0.0 && h.is_finite()) {
            bail!("--poisson-step must be a positive length in kpc, got {h}");
        }
    }
    let opts = &req.opts;
    opts.validate().context("invalid accel settings")?;
    let x = match &req.positions {
        Positions::File { path, dataset } => read_positions(path, dataset)?,
        Positions::Grid(g) => parse_grid(g)?,
    };
    if !req.model.is_dir() {
        bail!(
            "{}: model folder not found (expected a run's models/ folder or the run folder)",
            req.model.display()
        );
    }
    let device =
        cnf::parse_device(&req.device).with_context(|| format!("--device {}", req.device))?;
    let models = ModelSet::load(&req.model, &device)
        .with_context(|| format!("loading the models of {}", req.model.display()))?;
    tracing::info!(
        "accel: {} clusters ({} flows) from {}, {} positions, K = {}, form {:?}, fit {:?}",
        models.clusters.len(),
        models
            .clusters
            .iter()
            .map(|c| 2 * c.members.len())
            .sum::<usize>(),
        models.dir.display(),
        x.len(),
        opts.k,
        opts.form,
        opts.fit
    );
    let table = compute(&models, &x, opts, req.poisson_step, &req.device, progress)?;
    let bad = table
        .accelerations
        .iter()
        .filter(|a| a.status.flag() != 0)
        .count();
    if bad > 0 {
        tracing::warn!(
            "accel: {bad} of {} positions flagged (NaN acceleration): {FLAG_MEANING}",
            x.len()
        );
    }
    let mut attrs = vec![
        (
            "program".to_string(),
            AttrValue::Str("upsample accel".into()),
        ),
        ("version".to_string(), AttrValue::Str(crate::VERSION.into())),
        (
            "model".to_string(),
            AttrValue::Str(models.dir.display().to_string()),
        ),
        ("device".to_string(), AttrValue::Str(req.device.clone())),
        ("seed".to_string(), AttrValue::Int(opts.seed as i64)),
        ("k".to_string(), AttrValue::Int(opts.k as i64)),
        (
            "form".to_string(),
            AttrValue::Str(format!("{:?}", opts.form).to_lowercase()),
        ),
        (
            "fit".to_string(),
            AttrValue::Str(format!("{:?}", opts.fit).to_lowercase()),
        ),
        (
            "bootstrap".to_string(),
            AttrValue::Int(opts.bootstrap as i64),
        ),
        (
            "max_condition".to_string(),
            AttrValue::Float(opts.max_condition),
        ),
        (
            "G_kpc_kms2_per_Msun".to_string(),
            AttrValue::Float(snapio::G_KPC_KMS2_MSUN),
        ),
    ];
    if let Some(h) = req.poisson_step {
        attrs.push(("poisson_step_kpc".to_string(), AttrValue::Float(h)));
    }
    write_accelerations(&req.out, &table, &attrs)?;
    tracing::info!("accel: wrote {} rows to {}", x.len(), req.out.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dynamics::{Plummer, Status};

    #[test]
    fn grid_specs() {
        let g = parse_grid("x=-5:5:11,y=0,z=0").unwrap();
        assert_eq!(g.len(), 11);
        assert_eq!(g[0], [-5.0, 0.0, 0.0]);
        assert_eq!(g[10], [5.0, 0.0, 0.0]);
        assert_eq!(g[6], [1.0, 0.0, 0.0]);
        let g = parse_grid(" z=0:1:2 , x=1, y=-1:1:3").unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(g[0], [1.0, -1.0, 0.0]);
        assert_eq!(g[1], [1.0, -1.0, 1.0]); // z fastest
        assert_eq!(g[2], [1.0, 0.0, 0.0]);
        for bad in [
            "x=0,y=0",
            "x=0,y=0,z=0,x=1",
            "x=a,y=0,z=0",
            "x=0:1:0,y=0,z=0",
            "w=0",
            "x=0:1,y=0,z=0",
        ] {
            let e = parse_grid(bad).unwrap_err().to_string();
            assert!(
                e.contains("--grid") && e.contains("start:stop:count"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn csv_positions_and_their_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("q.csv");
        std::fs::write(&p, "# query\nid,z,y,x\n\n1,3,2,1\n2, -0.5 ,0,1e-3\n").unwrap();
        assert_eq!(
            read_positions(&p, "position").unwrap(),
            vec![[1.0, 2.0, 3.0], [1e-3, 0.0, -0.5]]
        );
        let cases = [
            (
                "a,b,c\n1,2,3\n",
                "line 1: expected a header with columns x,y,z",
            ),
            ("x,y,z\n1,2\n", "line 2: 2 fields, expected 3"),
            (
                "x,y,z\n1,two,3\n",
                "line 2, column y: `two` is not a number",
            ),
            ("x,y,z\n1,2,inf\n", "line 2, column z"),
            ("x,y,z\n", "no positions"),
            ("", "empty file"),
        ];
        for (text, want) in cases {
            std::fs::write(&p, text).unwrap();
            let e = format!("{:#}", read_positions(&p, "position").unwrap_err());
            assert!(e.contains("q.csv") && e.contains(want), "{text:?}: {e}");
        }
        let e = read_positions(&dir.path().join("none.csv"), "position").unwrap_err();
        assert!(e.to_string().contains("not found"), "{e}");
        let txt = dir.path().join("q.txt");
        std::fs::write(&txt, "x,y,z\n").unwrap();
        let e = read_positions(&txt, "position").unwrap_err().to_string();
        assert!(e.contains(".csv, .h5 or .hdf5"), "{e}");
    }

    /// Both output formats on the analytic Plummer sphere: one row per position, same order,
    /// the acceleration matches the truth, HDF5 units attributes present, NaN rows flagged.
    #[test]
    fn outputs_round_trip() {
        let s = Plummer::new(1e8, 0.5);
        let dir = tempfile::tempdir().unwrap();
        let xh = dir.path().join("q.h5");
        let x = vec![[0.5, 0.0, 0.0], [0.0, 1.0, -1.0], [0.1, 0.2, 0.3]];
        snapio::write_table(
            &xh,
            &[TableColumn {
                name: "position".into(),
                units: "kpc".into(),
                description: String::new(),
                values: TableValues::Float3(x.clone()),
            }],
            &[],
        )
        .unwrap();
        let x = read_positions(&xh, "position").unwrap();
        let opts = EomOptions {
            k: 32,
            bootstrap: 10,
            ..EomOptions::default()
        };
        let mut table = compute(&s, &x, &opts, Some(1e-3), "cpu", &crate::observe::Quiet).unwrap();
        table.accelerations[2] = Acceleration {
            a: [f64::NAN; 3],
            status: Status::IllConditioned,
            ..table.accelerations[2]
        };
        let csv = dir.path().join("a.csv");
        let h5 = dir.path().join("a.hdf5");
        write_accelerations(&csv, &table, &[]).unwrap();
        write_accelerations(&h5, &table, &[("seed".into(), AttrValue::Int(1))]).unwrap();
        let text = std::fs::read_to_string(&csv).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "x,y,z,ax,ay,az,ax_err,ay_err,az_err,samples,condition,residual,flag,density"
        );
        let rows: Vec<Vec<f64>> = lines
            .map(|l| l.split(',').map(|f| f.parse::<f64>().unwrap()).collect())
            .collect();
        assert_eq!(rows.len(), 3);
        for (r, p) in rows.iter().zip(&x) {
            assert_eq!(&r[0..3], p);
        }
        let t = s.acceleration(&x[0]);
        for j in 0..3 {
            assert!((rows[0][3 + j] - t[j]).abs() <= 1e-6 * t[0].abs());
        }
        assert_eq!(rows[0][9], 32.0);
        assert_eq!(rows[0][12], 0.0);
        assert!(rows[2][3].is_nan() && rows[2][12] == 1.0);
        assert!((rows[1][13] / s.mass_density(&x[1]) - 1.0).abs() < 1e-3);
        let cols = snapio::read_table(&h5).unwrap();
        let by = |n: &str| cols.iter().find(|c| c.name == n).unwrap();
        assert_eq!(by("acceleration").units, ACCEL_UNITS);
        assert_eq!(by("position").units, "kpc");
        assert_eq!(by("density").units, "Msun/kpc^3");
        assert_eq!(by("flag").values, TableValues::UInt(vec![0, 0, 1]));
        match &by("acceleration").values {
            TableValues::Float3(a) => {
                assert_eq!(a[0], table.accelerations[0].a);
                assert!(a[2][0].is_nan());
            }
            other => panic!("{other:?}"),
        }
        for c in &cols {
            assert!(!c.units.is_empty(), "{} has no units", c.name);
        }
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains("tmp")), "{names:?}");
    }
}
