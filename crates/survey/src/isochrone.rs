//! Reading PARSEC isochrone tables as the CMD web service writes them (`.dat` or `.dat.gz`).
//!
//! Format: `#` comment lines; one block per age opened by `# Age = ...` and a `# Zini MH logAge
//! Mini ...` line naming the columns; rows along the track in increasing initial mass; the file
//! ends with `#isochrone terminated`. Band columns are the columns ending in `mag` after
//! `mbolmag`, so any photometric system is read. Rows are split into isochrones whenever
//! `Zini` or `logAge` changes, which also covers files holding several metallicities.

use crate::error::{Result, SurveyError};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// One isochrone: rows of one (Zini, logAge) in increasing initial mass.
#[derive(Debug, Clone)]
pub struct Isochrone {
    /// Initial metal mass fraction `Zini`.
    pub zini: f64,
    /// log10 of the age in years (`logAge`).
    pub log_age: f64,
    /// Initial mass per row (Msun), non-decreasing.
    pub mini: Vec<f64>,
    /// Cumulative IMF number (`int_IMF`, arbitrary normalisation) per row; empty if absent.
    pub int_imf: Vec<f64>,
    /// Current mass per row (Msun).
    pub mass: Vec<f64>,
    /// log10 luminosity per row (Lsun).
    pub log_l: Vec<f64>,
    /// log10 effective temperature per row (K).
    pub log_teff: Vec<f64>,
    /// log10 surface gravity per row (cgs).
    pub log_g: Vec<f64>,
    /// PARSEC phase label per row (0 PMS, 1 MS, 2 SGB, 3 RGB, 4-6 CHeB, 7 EAGB, 8 TPAGB, 9 post-AGB).
    pub label: Vec<u8>,
    /// Absolute magnitudes, row-major: `mags[row * n_bands + band]` (Vega mag).
    pub mags: Vec<f64>,
}

impl Isochrone {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.mini.len()
    }
    /// True when the isochrone has no rows.
    pub fn is_empty(&self) -> bool {
        self.mini.is_empty()
    }
}

/// Isochrones of one photometric system read from one or several tables.
#[derive(Debug, Clone)]
pub struct IsochroneSet {
    /// Band names as in the table header, `mag` suffix removed (e.g. `G`, `G_BP`, `G_RP`).
    pub bands: Vec<String>,
    /// All isochrones read, in file order.
    pub isochrones: Vec<Isochrone>,
}

impl IsochroneSet {
    /// Index of a band by name (`G` or `Gmag` both match), if present.
    pub fn band_index(&self, name: &str) -> Option<usize> {
        let name = name.strip_suffix("mag").unwrap_or(name);
        self.bands.iter().position(|b| b == name)
    }
}

/// Column positions found in a `# Zini MH logAge ...` header line.
#[derive(Debug, Clone, PartialEq)]
struct Columns {
    zini: usize,
    log_age: usize,
    mini: usize,
    int_imf: Option<usize>,
    mass: usize,
    log_l: usize,
    log_teff: usize,
    log_g: usize,
    label: usize,
    bands: Vec<usize>,
    band_names: Vec<String>,
    n: usize,
}

fn parse_header(tokens: &[&str], path: &Path, line: usize) -> Result<Columns> {
    let find = |names: &[&str]| tokens.iter().position(|t| names.contains(t));
    let need = |names: &[&str]| {
        find(names).ok_or_else(|| SurveyError::Parse {
            path: path.to_path_buf(),
            line,
            message: format!("header line lacks a column named {}", names.join(" or ")),
        })
    };
    let mbol = need(&["mbolmag"])?;
    let bands: Vec<usize> = (mbol + 1..tokens.len())
        .filter(|&i| tokens[i].ends_with("mag"))
        .collect();
    if bands.is_empty() {
        return Err(SurveyError::Parse {
            path: path.to_path_buf(),
            line,
            message: "no band column (name ending in `mag`) after `mbolmag`".into(),
        });
    }
    Ok(Columns {
        zini: need(&["Zini"])?,
        log_age: need(&["logAge"])?,
        mini: need(&["Mini", "M_ini"])?,
        int_imf: find(&["int_IMF"]),
        mass: need(&["Mass", "Mact", "M_act"])?,
        log_l: need(&["logL", "logL/Lo"])?,
        log_teff: need(&["logTe"])?,
        log_g: need(&["logg", "logG"])?,
        label: need(&["label", "stage"])?,
        band_names: bands
            .iter()
            .map(|&i| tokens[i].trim_end_matches("mag").to_string())
            .collect(),
        bands,
        n: tokens.len(),
    })
}

/// Read one CMD isochrone table (`.dat`, or gzipped when the name ends in `.gz`).
pub fn read_isochrone_file(path: &Path) -> Result<IsochroneSet> {
    let io = |source| SurveyError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    parse_isochrones(BufReader::new(reader), path)
}

/// Parse CMD isochrone text from a reader; `path` is used in error messages only.
pub fn parse_isochrones<R: BufRead>(reader: R, path: &Path) -> Result<IsochroneSet> {
    let mut cols: Option<Columns> = None;
    let mut out: Vec<Isochrone> = Vec::new();
    let mut values: Vec<f64> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let lineno = i + 1;
        let line = line.map_err(|source| SurveyError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let trimmed = line.trim();
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            let tokens: Vec<&str> = comment.split_whitespace().collect();
            if tokens.first() == Some(&"Zini") {
                let c = parse_header(&tokens, path, lineno)?;
                if let Some(prev) = &cols {
                    if prev.band_names != c.band_names {
                        return Err(SurveyError::Parse {
                            path: path.to_path_buf(),
                            line: lineno,
                            message: format!(
                                "bands {:?} differ from the earlier header's {:?}",
                                c.band_names, prev.band_names
                            ),
                        });
                    }
                }
                cols = Some(c);
            }
            continue;
        }
        let c = cols.as_ref().ok_or_else(|| SurveyError::Parse {
            path: path.to_path_buf(),
            line: lineno,
            message: "data row before any `# Zini MH logAge Mini ...` header line".into(),
        })?;
        values.clear();
        for tok in trimmed.split_whitespace() {
            let v: f64 = tok.parse().map_err(|_| SurveyError::Parse {
                path: path.to_path_buf(),
                line: lineno,
                message: format!("expected a number, found `{tok}`"),
            })?;
            values.push(v);
        }
        if values.len() != c.n {
            return Err(SurveyError::Parse {
                path: path.to_path_buf(),
                line: lineno,
                message: format!(
                    "expected {} columns as the header names, found {}",
                    c.n,
                    values.len()
                ),
            });
        }
        let (z, la) = (values[c.zini], values[c.log_age]);
        let new_block = out
            .last()
            .is_none_or(|iso| iso.zini != z || iso.log_age != la);
        if new_block {
            out.push(Isochrone {
                zini: z,
                log_age: la,
                mini: vec![],
                int_imf: vec![],
                mass: vec![],
                log_l: vec![],
                log_teff: vec![],
                log_g: vec![],
                label: vec![],
                mags: vec![],
            });
        }
        let Some(iso) = out.last_mut() else {
            unreachable!("a block was pushed above")
        };
        let m = values[c.mini];
        if let Some(&prev) = iso.mini.last() {
            if m < prev {
                return Err(SurveyError::Parse {
                    path: path.to_path_buf(),
                    line: lineno,
                    message: format!("initial mass {m} decreases (previous row {prev}); rows must run in increasing Mini"),
                });
            }
        }
        let label = values[c.label];
        if !(0.0..=255.0).contains(&label) || label.fract() != 0.0 {
            return Err(SurveyError::Parse {
                path: path.to_path_buf(),
                line: lineno,
                message: format!("phase label must be a small non-negative integer, found {label}"),
            });
        }
        iso.mini.push(m);
        if let Some(k) = c.int_imf {
            iso.int_imf.push(values[k]);
        }
        iso.mass.push(values[c.mass]);
        iso.log_l.push(values[c.log_l]);
        iso.log_teff.push(values[c.log_teff]);
        iso.log_g.push(values[c.log_g]);
        iso.label.push(label as u8);
        iso.mags.extend(c.bands.iter().map(|&k| values[k]));
    }
    let cols = cols.ok_or_else(|| SurveyError::Parse {
        path: path.to_path_buf(),
        line: 0,
        message: "no `# Zini MH logAge Mini ...` header line: not a CMD isochrone table".into(),
    })?;
    if out.is_empty() {
        return Err(SurveyError::Parse {
            path: path.to_path_buf(),
            line: 0,
            message: "no data rows".into(),
        });
    }
    Ok(IsochroneSet {
        bands: cols.band_names,
        isochrones: out,
    })
}

/// Read every `.dat` and `.dat.gz` table in a folder (sorted by name) into one set.
///
/// All tables must share the same bands.
pub fn read_isochrone_dir(dir: &Path) -> Result<IsochroneSet> {
    let entries = std::fs::read_dir(dir).map_err(|source| SurveyError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for e in entries {
        let e = e.map_err(|source| SurveyError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        let p = e.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.ends_with(".dat") || name.ends_with(".dat.gz") {
            files.push(p);
        }
    }
    files.sort();
    let mut set: Option<IsochroneSet> = None;
    for f in &files {
        let s = read_isochrone_file(f)?;
        match &mut set {
            None => set = Some(s),
            Some(acc) => {
                if acc.bands != s.bands {
                    return Err(SurveyError::Invalid(format!(
                        "{}: bands {:?} differ from {:?} of the other tables in {}",
                        f.display(),
                        s.bands,
                        acc.bands,
                        dir.display()
                    )));
                }
                acc.isochrones.extend(s.isochrones);
            }
        }
    }
    set.ok_or_else(|| {
        SurveyError::Invalid(format!(
            "{}: no isochrone tables (*.dat or *.dat.gz)",
            dir.display()
        ))
    })
}

/// Folder of the PARSEC Gaia EDR3 tables shipped with the project (4 Z × 63 ages).
pub fn shipped_gaia_edr3_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/isochrones/parsec_gaiaedr3")
}

/// The shipped PARSEC Gaia EDR3 tables (gzipped), compiled into the binary: (file name, bytes).
const BUILTIN_GAIA_EDR3: [(&str, &[u8]); 4] = [
    (
        "0_000500.dat.gz",
        include_bytes!("../../../data/isochrones/parsec_gaiaedr3/0_000500.dat.gz"),
    ),
    (
        "0_010500.dat.gz",
        include_bytes!("../../../data/isochrones/parsec_gaiaedr3/0_010500.dat.gz"),
    ),
    (
        "0_020500.dat.gz",
        include_bytes!("../../../data/isochrones/parsec_gaiaedr3/0_020500.dat.gz"),
    ),
    (
        "0_030500.dat.gz",
        include_bytes!("../../../data/isochrones/parsec_gaiaedr3/0_030500.dat.gz"),
    ),
];

/// The PARSEC Gaia EDR3 tables shipped in `data/isochrones/parsec_gaiaedr3` (4 Z × 63 ages),
/// embedded in the binary: the same set as [`read_isochrone_dir`] of [`shipped_gaia_edr3_dir`],
/// usable from any working directory.
pub fn builtin_gaia_edr3() -> Result<IsochroneSet> {
    let mut set: Option<IsochroneSet> = None;
    for (name, bytes) in BUILTIN_GAIA_EDR3 {
        let path = Path::new("<builtin parsec_gaiaedr3>").join(name);
        let s = parse_isochrones(
            BufReader::new(flate2::read::MultiGzDecoder::new(bytes)),
            &path,
        )?;
        match &mut set {
            None => set = Some(s),
            Some(acc) => acc.isochrones.extend(s.isochrones),
        }
    }
    set.ok_or_else(|| SurveyError::Invalid("no builtin isochrone tables".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_tables_equal_the_shipped_folder() {
        let a = builtin_gaia_edr3().unwrap();
        let b = read_isochrone_dir(&shipped_gaia_edr3_dir()).unwrap();
        assert_eq!(a.bands, b.bands);
        assert_eq!(a.isochrones.len(), 4 * 63);
        assert_eq!(a.isochrones.len(), b.isochrones.len());
        for (x, y) in a.isochrones.iter().zip(&b.isochrones) {
            assert_eq!((x.zini, x.log_age, &x.mini), (y.zini, y.log_age, &y.mini));
            assert_eq!(x.mags, y.mags);
        }
    }

    const SMALL: &str = "# File generated by CMD\n# Age = 1.0E+07 yr\n\
# Zini     MH   logAge Mini        int_IMF         Mass   logL    logTe  logg  label \t mbolmag  Gmag    G_BPmag  G_RPmag\n\
0.0205 0.15 7.0 0.1 1.0 0.1 -2.0 3.38 3.97 0 9.9 11.6 14.0 10.2\n\
0.0205 0.15 7.0 0.2 1.1 0.2 -1.9 3.40 3.99 1 9.8 11.5 13.9 10.1\n\
# Age = 2.0E+07 yr\n\
# Zini     MH   logAge Mini        int_IMF         Mass   logL    logTe  logg  label \t mbolmag  Gmag    G_BPmag  G_RPmag\n\
0.0205 0.15 7.3 0.1 1.0 0.1 -2.0 3.38 3.97 1 9.9 11.7 14.1 10.3\n\
#isochrone terminated\n";

    #[test]
    fn parses_blocks_columns_and_bands() {
        let set = parse_isochrones(SMALL.as_bytes(), Path::new("small.dat")).unwrap();
        assert_eq!(set.bands, vec!["G", "G_BP", "G_RP"]);
        assert_eq!(set.isochrones.len(), 2);
        let a = &set.isochrones[0];
        assert_eq!(a.len(), 2);
        assert_eq!(a.log_age, 7.0);
        assert_eq!(a.label, vec![0, 1]);
        assert_eq!(a.mags[3..6], [11.5, 13.9, 10.1]);
        assert_eq!(set.isochrones[1].mags, vec![11.7, 14.1, 10.3]);
        assert_eq!(set.band_index("G_RPmag"), Some(2));
    }

    #[test]
    fn errors_name_file_line_and_expectation() {
        let bad = SMALL.replace("0.2 1.1 0.2", "0.2 x 0.2");
        let e = parse_isochrones(bad.as_bytes(), Path::new("t.dat"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.dat:5") && e.contains("`x`"), "{e}");
        let short = SMALL.replace(" 10.2\n", "\n");
        let e = parse_isochrones(short.as_bytes(), Path::new("t.dat"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.dat:4") && e.contains("expected 14 columns"),
            "{e}"
        );
        let e = parse_isochrones("1 2 3\n".as_bytes(), Path::new("t.dat"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.dat:1") && e.contains("header"), "{e}");
    }

    #[test]
    fn reads_shipped_gz_tables() {
        let set = read_isochrone_dir(&shipped_gaia_edr3_dir()).unwrap();
        assert_eq!(set.bands, vec!["G", "G_BP", "G_RP"]);
        assert_eq!(set.isochrones.len(), 4 * 63);
        let first = &set.isochrones[0];
        assert_eq!(first.zini, 0.0005);
        assert_eq!(first.log_age, 7.0);
        // Last block of the Z = 0.0205 table, last row (see the shared table).
        let iso = set
            .isochrones
            .iter()
            .find(|i| i.zini == 0.0205 && i.log_age == 10.10001)
            .unwrap();
        let n = iso.len();
        assert_eq!(iso.mini[n - 1], 0.9988250136);
        assert_eq!(iso.label[n - 1], 7);
        assert_eq!(iso.mags[(n - 1) * 3..n * 3], [-0.978, 1.785, -2.427]);
    }
}
