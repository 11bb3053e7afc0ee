//! Snapshot layouts, the header, unit conversion factors and the flat ΛCDM clock.

use std::fmt;
use std::path::Path;

use crate::error::{h5err, Result, SnapError};

/// One kiloparsec in centimetres (the value GADGET/AREPO/GIZMO use for their default unit).
pub const KPC_CM: f64 = 3.085678e21;
/// One solar mass in grams (the value GADGET/AREPO/GIZMO use: 1e10 Msun = 1.989e43 g).
pub const MSUN_G: f64 = 1.989e33;
/// One km/s in cm/s.
pub const KMS_CMS: f64 = 1.0e5;
/// One gigayear in seconds (Julian years).
pub const GYR_S: f64 = 3.15576e16;
/// Hubble time 1/H0 for h = 1, in Gyr (1/(100 km/s/Mpc)).
pub const HUBBLE_TIME_GYR_H1: f64 = 9.7779222;

/// Which simulation code wrote the snapshot (decides dataset names and unit rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layout {
    /// GIZMO, including the FIRE public data release.
    GizmoFire,
    /// GADGET-4.
    Gadget4,
    /// AREPO, including the IllustrisTNG public data release.
    ArepoTng,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layout::GizmoFire => "GIZMO/FIRE",
            Layout::Gadget4 => "GADGET-4",
            Layout::ArepoTng => "AREPO/IllustrisTNG",
        })
    }
}

impl Layout {
    /// PartType4 dataset holding the formation time (scale factor, or code time when not cosmological).
    pub fn formation_time_dataset(self) -> &'static str {
        match self {
            Layout::ArepoTng => "GFM_StellarFormationTime",
            _ => "StellarFormationTime",
        }
    }
    /// PartType4 dataset holding the metal mass fraction (total, or column 0 for FIRE's N×11).
    pub fn metallicity_dataset(self) -> &'static str {
        match self {
            Layout::ArepoTng => "GFM_Metallicity",
            _ => "Metallicity",
        }
    }
    /// PartType4 dataset holding the initial stellar mass, if the code stores one.
    pub fn initial_mass_dataset(self) -> Option<&'static str> {
        match self {
            Layout::ArepoTng => Some("GFM_InitialMass"),
            _ => None,
        }
    }
}

/// Snapshot header, in code units, as read from the first file (plus `Parameters` for GADGET-4).
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// `Time`: scale factor in cosmological runs, code time (unit_length/unit_velocity/h) otherwise.
    pub time: f64,
    /// Scale factor a used for unit conversion (= `time` if cosmological, 1 otherwise).
    pub scale_factor: f64,
    /// `Redshift` (0 for non-cosmological runs).
    pub redshift: f64,
    /// `HubbleParam` h (H0 = 100 h km/s/Mpc); code units carry 1/h.
    pub hubble_param: f64,
    /// `Omega0`: matter density parameter today.
    pub omega0: f64,
    /// `OmegaLambda`: dark-energy density parameter today.
    pub omega_lambda: f64,
    /// `BoxSize` in code length units (comoving length/h).
    pub box_size: f64,
    /// Total particle numbers per type over all files (`NumPart_Total` + `NumPart_Total_HighWord`<<32).
    pub num_part_total: [u64; 6],
    /// `NumFilesPerSnapshot`.
    pub num_files: u32,
    /// `MassTable`: per-type particle mass in code mass units (0 = masses stored per particle).
    pub mass_table: [f64; 6],
    /// Whether the run integrates in comoving coordinates (`ComovingIntegrationOn`).
    pub cosmological: bool,
    /// Code length unit in cm (`UnitLength_in_cm`; default 1 kpc), before the 1/h and a factors.
    pub unit_length_cm: f64,
    /// Code mass unit in g (`UnitMass_in_g`; default 1e10 Msun), before the 1/h factor.
    pub unit_mass_g: f64,
    /// Code velocity unit in cm/s (`UnitVelocity_in_cm_per_s`; default 1 km/s), before sqrt(a).
    pub unit_velocity_cm_s: f64,
}

impl Default for Header {
    /// Planck 2015 cosmology (h = 0.6774, Ωm = 0.3089) at a = 1, default GADGET units.
    fn default() -> Self {
        Header {
            time: 1.0,
            scale_factor: 1.0,
            redshift: 0.0,
            hubble_param: 0.6774,
            omega0: 0.3089,
            omega_lambda: 0.6911,
            box_size: 0.0,
            num_part_total: [0; 6],
            num_files: 1,
            mass_table: [0.0; 6],
            cosmological: true,
            unit_length_cm: KPC_CM,
            unit_mass_g: 1.0e10 * MSUN_G,
            unit_velocity_cm_s: KMS_CMS,
        }
    }
}

impl Header {
    /// Cosmological header at scale factor `a` with the default units and Planck 2015 cosmology.
    pub fn cosmological_at(a: f64) -> Self {
        Header {
            time: a,
            scale_factor: a,
            redshift: 1.0 / a - 1.0,
            ..Header::default()
        }
    }

    /// Non-cosmological header at code time `time` (units of kpc/(km/s)/h), h given.
    pub fn non_cosmological_at(time: f64, hubble_param: f64) -> Self {
        Header {
            time,
            scale_factor: 1.0,
            redshift: 0.0,
            hubble_param,
            cosmological: false,
            ..Header::default()
        }
    }

    /// Factor from code length (comoving length/h) to physical kpc: UnitLength/kpc · a / h.
    pub fn length_to_kpc(&self) -> f64 {
        self.unit_length_cm / KPC_CM * self.scale_factor / self.hubble_param
    }

    /// Factor from code velocity (km/s·sqrt(a)) to physical peculiar km/s: UnitVelocity/(km/s) · sqrt(a).
    pub fn velocity_to_kms(&self) -> f64 {
        self.unit_velocity_cm_s / KMS_CMS * self.scale_factor.sqrt()
    }

    /// Factor from code mass (1e10 Msun/h by default) to Msun: UnitMass/Msun / h.
    pub fn mass_to_msun(&self) -> f64 {
        self.unit_mass_g / MSUN_G / self.hubble_param
    }

    /// Code time unit in Gyr: (UnitLength/UnitVelocity)/h (0.9778/h Gyr for kpc and km/s).
    pub fn time_unit_gyr(&self) -> f64 {
        self.unit_length_cm / self.unit_velocity_cm_s / GYR_S / self.hubble_param
    }

    /// Cosmic time at the snapshot, in Gyr (flat ΛCDM for cosmological runs, code time otherwise).
    pub fn time_gyr(&self) -> f64 {
        if self.cosmological {
            cosmic_time_gyr(
                self.scale_factor,
                self.hubble_param,
                self.omega0,
                self.omega_lambda,
            )
        } else {
            self.time * self.time_unit_gyr()
        }
    }

    /// Age in Gyr at the snapshot time of a star whose stored formation time is `t_form`.
    ///
    /// `t_form` is a scale factor in cosmological runs and code time otherwise.
    pub fn age_gyr(&self, t_form: f64) -> f64 {
        if self.cosmological {
            self.time_gyr()
                - cosmic_time_gyr(t_form, self.hubble_param, self.omega0, self.omega_lambda)
        } else {
            (self.time - t_form) * self.time_unit_gyr()
        }
    }

    /// Inverse of [`Header::age_gyr`]: stored formation time for a star of age `age` Gyr.
    pub fn formation_time_for_age(&self, age: f64) -> f64 {
        if self.cosmological {
            let t = self.time_gyr() - age;
            scale_factor_at_time_gyr(t, self.hubble_param, self.omega0, self.omega_lambda)
        } else {
            self.time - age / self.time_unit_gyr()
        }
    }
}

/// Cosmic time t(a) in Gyr in flat ΛCDM: 2/(3 H0 sqrt(ΩΛ)) asinh(sqrt(ΩΛ/Ωm) a^1.5).
///
/// H0 = h/9.7779222 Gyr⁻¹. With ΩΛ = 0 this is the Einstein–de Sitter 2/(3H0) a^1.5.
pub fn cosmic_time_gyr(a: f64, h: f64, omega_m: f64, omega_lambda: f64) -> f64 {
    let h0 = h / HUBBLE_TIME_GYR_H1;
    let a = a.max(0.0);
    if omega_lambda <= 0.0 {
        return 2.0 / (3.0 * h0 * omega_m.sqrt()) * a * a.sqrt();
    }
    let x = (omega_lambda / omega_m).sqrt() * a * a.sqrt();
    // asinh(x) = ln(1 + x + x²/(1 + sqrt(1 + x²))) for x >= 0: accurate and cheaper than f64::asinh.
    let asinh = (x + x * x / (1.0 + (1.0 + x * x).sqrt())).ln_1p();
    2.0 / (3.0 * h0 * omega_lambda.sqrt()) * asinh
}

/// Scale factor at cosmic time `t` Gyr in flat ΛCDM (inverse of [`cosmic_time_gyr`]).
pub fn scale_factor_at_time_gyr(t: f64, h: f64, omega_m: f64, omega_lambda: f64) -> f64 {
    let h0 = h / HUBBLE_TIME_GYR_H1;
    let t = t.max(0.0);
    if omega_lambda <= 0.0 {
        return (1.5 * h0 * omega_m.sqrt() * t).powf(2.0 / 3.0);
    }
    let x = (1.5 * h0 * omega_lambda.sqrt() * t).sinh() / (omega_lambda / omega_m).sqrt();
    x.powf(2.0 / 3.0)
}

/// Reads an attribute as f64 values (scalar or array). `None` if absent.
pub(crate) fn attr_f64s(
    path: &Path,
    loc: &hdf5::Location,
    object: &str,
    name: &str,
) -> Result<Option<Vec<f64>>> {
    if !loc
        .attr_names()
        .map_err(h5err(path, object, "listing attributes"))?
        .iter()
        .any(|n| n == name)
    {
        return Ok(None);
    }
    let a = loc.attr(name).map_err(h5err(
        path,
        &format!("{object}/{name}"),
        "opening attribute",
    ))?;
    let v = a.read_raw::<f64>().map_err(|e| SnapError::BadAttribute {
        path: path.to_path_buf(),
        object: object.to_string(),
        attribute: name.to_string(),
        expected: "numeric value(s)".into(),
        found: format!("unreadable as numbers ({e})"),
    })?;
    Ok(Some(v))
}

/// Reads a required scalar numeric attribute.
pub(crate) fn attr_scalar(
    path: &Path,
    loc: &hdf5::Location,
    object: &str,
    name: &str,
    expected: &str,
) -> Result<f64> {
    match attr_f64s(path, loc, object, name)? {
        Some(v) if v.len() == 1 => Ok(v[0]),
        Some(v) => Err(SnapError::BadAttribute {
            path: path.to_path_buf(),
            object: object.into(),
            attribute: name.into(),
            expected: format!("a scalar ({expected})"),
            found: format!("{} values", v.len()),
        }),
        None => Err(SnapError::MissingAttribute {
            path: path.to_path_buf(),
            object: object.into(),
            attribute: name.into(),
            expected: expected.into(),
        }),
    }
}

/// Reads a 6-element per-type attribute (NumPart_*, MassTable). `None` if absent.
pub(crate) fn attr_six(
    path: &Path,
    loc: &hdf5::Location,
    object: &str,
    name: &str,
) -> Result<Option<[f64; 6]>> {
    match attr_f64s(path, loc, object, name)? {
        None => Ok(None),
        Some(v) if v.len() == 6 => {
            let mut out = [0.0; 6];
            out.copy_from_slice(&v);
            Ok(Some(out))
        }
        Some(v) => Err(SnapError::BadAttribute {
            path: path.to_path_buf(),
            object: object.into(),
            attribute: name.into(),
            expected: "6 values, one per particle type".into(),
            found: format!("{} values", v.len()),
        }),
    }
}

/// Converts a 6-element count attribute to u64, checking it holds non-negative integers.
pub(crate) fn counts_u64(path: &Path, name: &str, v: [f64; 6]) -> Result<[u64; 6]> {
    let mut out = [0u64; 6];
    for (o, x) in out.iter_mut().zip(v) {
        if !(x >= 0.0 && x.fract() == 0.0 && x.is_finite()) {
            return Err(SnapError::BadAttribute {
                path: path.to_path_buf(),
                object: "Header".into(),
                attribute: name.into(),
                expected: "non-negative integer particle counts".into(),
                found: format!("{v:?}"),
            });
        }
        *o = x as u64;
    }
    Ok(out)
}

/// Per-file particle counts from `Header/NumPart_ThisFile`.
pub(crate) fn read_this_file_counts(path: &Path, file: &hdf5::File) -> Result<[u64; 6]> {
    let hdr = open_header_group(path, file)?;
    let v = attr_six(path, &hdr, "Header", "NumPart_ThisFile")?.ok_or_else(|| {
        SnapError::MissingAttribute {
            path: path.to_path_buf(),
            object: "Header".into(),
            attribute: "NumPart_ThisFile".into(),
            expected: "6 particle counts of this file".into(),
        }
    })?;
    counts_u64(path, "NumPart_ThisFile", v)
}

pub(crate) fn open_header_group(path: &Path, file: &hdf5::File) -> Result<hdf5::Group> {
    if !file.link_exists("Header") {
        return Err(SnapError::MissingGroup {
            path: path.to_path_buf(),
            group: "Header".into(),
            expected: "every GADGET-family snapshot file has a Header group".into(),
        });
    }
    file.group("Header")
        .map_err(h5err(path, "Header", "opening group"))
}

/// The `Header` group of a file and its `Parameters` group, if any: where header values live.
struct HeaderSource<'a> {
    path: &'a Path,
    hdr: hdf5::Group,
    params: Option<hdf5::Group>,
}

impl HeaderSource<'_> {
    /// An attribute's first value from `Header`, else from `Parameters` (GADGET-4 keeps the
    /// cosmology and units there); `None` if in neither.
    fn lookup(&self, name: &str) -> Result<Option<f64>> {
        if let Some(v) = attr_f64s(self.path, &self.hdr, "Header", name)? {
            if let Some(x) = v.first() {
                return Ok(Some(*x));
            }
        }
        if let Some(p) = &self.params {
            if let Some(v) = attr_f64s(self.path, p, "Parameters", name)? {
                if let Some(x) = v.first() {
                    return Ok(Some(*x));
                }
            }
        }
        Ok(None)
    }

    /// Total particle numbers per type: `NumPart_Total` + `NumPart_Total_HighWord` << 32.
    fn particle_totals(&self) -> Result<[u64; 6]> {
        let (path, hdr) = (self.path, &self.hdr);
        let total_lo = attr_six(path, hdr, "Header", "NumPart_Total")?.ok_or_else(|| {
            SnapError::MissingAttribute {
                path: path.to_path_buf(),
                object: "Header".into(),
                attribute: "NumPart_Total".into(),
                expected: "6 total particle counts".into(),
            }
        })?;
        let total_lo = counts_u64(path, "NumPart_Total", total_lo)?;
        let high = match attr_six(path, hdr, "Header", "NumPart_Total_HighWord")? {
            Some(v) => counts_u64(path, "NumPart_Total_HighWord", v)?,
            None => [0; 6],
        };
        let mut num_part_total = [0u64; 6];
        for i in 0..6 {
            if high[i] > u32::MAX as u64 || total_lo[i] > u32::MAX as u64 && high[i] > 0 {
                return Err(SnapError::BadAttribute {
                    path: path.to_path_buf(),
                    object: "Header".into(),
                    attribute: "NumPart_Total_HighWord".into(),
                    expected:
                        "32-bit words: NumPart_Total[t] + (HighWord[t] << 32) must fit 64 bits"
                            .into(),
                    found: format!("{high:?} with NumPart_Total {total_lo:?}"),
                });
            }
            num_part_total[i] = total_lo[i] + (high[i] << 32);
        }
        Ok(num_part_total)
    }

    /// Whether the run is cosmological: `ComovingIntegrationOn`, else the layout's rule (notes say which).
    fn is_cosmological(
        &self,
        layout: Layout,
        time: f64,
        redshift_attr: Option<f64>,
        notes: &mut Vec<String>,
    ) -> Result<bool> {
        Ok(match self.lookup("ComovingIntegrationOn")? {
            Some(v) => v != 0.0,
            None => match layout {
                Layout::ArepoTng => {
                    notes.push(
                        "ComovingIntegrationOn absent: AREPO/TNG snapshot taken as cosmological"
                            .into(),
                    );
                    true
                }
                _ => {
                    // FIRE public snapshots carry no flag: cosmological when Time is a scale factor
                    // consistent with Redshift.
                    let consistent = time > 0.0
                        && time <= 1.0
                        && redshift_attr
                            .map(|z| ((1.0 / time - 1.0) - z).abs() <= 1e-3 * (1.0 + z))
                            .unwrap_or(false);
                    notes.push(format!(
                        "ComovingIntegrationOn absent: taken as {} because Time={time} and Redshift={:?} {} a = 1/(1+z)",
                        if consistent { "cosmological" } else { "non-cosmological" },
                        redshift_attr,
                        if consistent { "satisfy" } else { "do not satisfy" }
                    ));
                    consistent
                }
            },
        })
    }

    /// `HubbleParam`, `Omega0`, `OmegaLambda`, with the defaults and checks of each layout.
    fn cosmology(
        &self,
        layout: Layout,
        cosmological: bool,
        notes: &mut Vec<String>,
    ) -> Result<(f64, f64, f64)> {
        let path = self.path;
        let lookup = |name: &str| self.lookup(name);
        let mut hubble_param = lookup("HubbleParam")?;
        if hubble_param.is_none() && layout == Layout::Gadget4 && cosmological {
            return Err(SnapError::MissingAttribute {
                path: path.to_path_buf(),
                object: "Parameters".into(),
                attribute: "HubbleParam".into(),
                expected: "GADGET-4 keeps HubbleParam in the Parameters group".into(),
            });
        }
        if let Some(h) = hubble_param {
            if !(h > 0.0 && h.is_finite()) {
                if cosmological {
                    return Err(SnapError::BadAttribute {
                        path: path.to_path_buf(),
                        object: "Header".into(),
                        attribute: "HubbleParam".into(),
                        expected: "h > 0 in a cosmological run".into(),
                        found: format!("{h}"),
                    });
                }
                notes.push(format!(
                    "HubbleParam = {h} in a non-cosmological run: h = 1 used"
                ));
                hubble_param = Some(1.0);
            }
        }
        let hubble_param = match hubble_param {
            Some(h) => h,
            None if cosmological => {
                return Err(SnapError::MissingAttribute {
                    path: path.to_path_buf(),
                    object: "Header".into(),
                    attribute: "HubbleParam".into(),
                    expected: "h, needed to convert code units (1/h) in a cosmological run".into(),
                })
            }
            None => {
                notes.push("HubbleParam absent in a non-cosmological run: h = 1 used".into());
                1.0
            }
        };
        let omega0 = match lookup("Omega0")?.or(lookup("Omega_Matter")?) {
            Some(v) => v,
            None if cosmological => {
                return Err(SnapError::MissingAttribute {
                    path: path.to_path_buf(),
                    object: if layout == Layout::Gadget4 {
                        "Parameters"
                    } else {
                        "Header"
                    }
                    .into(),
                    attribute: "Omega0".into(),
                    expected: "matter density, needed to turn formation scale factors into ages"
                        .into(),
                })
            }
            None => 0.0,
        };
        let omega_lambda = match lookup("OmegaLambda")?.or(lookup("Omega_Lambda")?) {
            Some(v) => v,
            None => {
                if cosmological {
                    notes.push(format!(
                        "OmegaLambda absent: flat universe assumed, OmegaLambda = 1 - Omega0 = {}",
                        1.0 - omega0
                    ));
                }
                1.0 - omega0
            }
        };
        if cosmological && (omega0 + omega_lambda - 1.0).abs() > 1e-3 {
            notes.push(format!(
                "Omega0 + OmegaLambda = {} is not 1: ages use the flat-ΛCDM formula with these values",
                omega0 + omega_lambda
            ));
        }
        Ok((hubble_param, omega0, omega_lambda))
    }

    /// Code units in cgs (length cm, mass g, velocity cm/s), GADGET defaults with a note.
    fn units(&self, notes: &mut Vec<String>) -> Result<(f64, f64, f64)> {
        let path = self.path;
        let lookup = |name: &str| self.lookup(name);
        let mut unit = |name: &str, alt: &str, default: f64, what: &str| -> Result<f64> {
            let v = match lookup(name)? {
                Some(v) => Some(v),
                None => lookup(alt)?,
            };
            match v {
                Some(v) if v > 0.0 && v.is_finite() => Ok(v),
                Some(v) => Err(SnapError::BadAttribute {
                    path: path.to_path_buf(),
                    object: "Header".into(),
                    attribute: name.into(),
                    expected: "a positive unit in cgs".into(),
                    found: format!("{v}"),
                }),
                None => {
                    notes.push(format!("{name} (or {alt}) absent: code {what} unit taken as {default:e} (GADGET default)"));
                    Ok(default)
                }
            }
        };
        let unit_length_cm = unit("UnitLength_in_cm", "UnitLength_In_CGS", KPC_CM, "length")?;
        let unit_mass_g = unit("UnitMass_in_g", "UnitMass_In_CGS", 1.0e10 * MSUN_G, "mass")?;
        let unit_velocity_cm_s = unit(
            "UnitVelocity_in_cm_per_s",
            "UnitVelocity_In_CGS",
            KMS_CMS,
            "velocity",
        )?;
        Ok((unit_length_cm, unit_mass_g, unit_velocity_cm_s))
    }
}

/// Reads the header of one snapshot file for the given layout. Returns the header and notes.
pub(crate) fn read_header(
    path: &Path,
    file: &hdf5::File,
    layout: Layout,
) -> Result<(Header, Vec<String>)> {
    let mut notes = Vec::new();
    let hdr = open_header_group(path, file)?;
    let params = if file.link_exists("Parameters") {
        Some(
            file.group("Parameters")
                .map_err(h5err(path, "Parameters", "opening group"))?,
        )
    } else {
        None
    };
    let src = HeaderSource { path, hdr, params };
    let hdr = &src.hdr;
    let lookup = |name: &str| src.lookup(name);
    let time = attr_scalar(
        path,
        hdr,
        "Header",
        "Time",
        "scale factor or code time of the snapshot",
    )?;
    let num_part_total = src.particle_totals()?;
    let mass_table =
        attr_six(path, hdr, "Header", "MassTable")?.ok_or_else(|| SnapError::MissingAttribute {
            path: path.to_path_buf(),
            object: "Header".into(),
            attribute: "MassTable".into(),
            expected: "6 per-type particle masses in code units".into(),
        })?;
    let num_files = lookup("NumFilesPerSnapshot")?.unwrap_or(1.0);
    if !(num_files >= 1.0 && num_files.fract() == 0.0) {
        return Err(SnapError::BadAttribute {
            path: path.to_path_buf(),
            object: "Header".into(),
            attribute: "NumFilesPerSnapshot".into(),
            expected: "a positive integer".into(),
            found: format!("{num_files}"),
        });
    }
    let box_size = lookup("BoxSize")?.unwrap_or(0.0);
    let redshift_attr = lookup("Redshift")?;

    // Cosmological or not.
    let cosmological = src.is_cosmological(layout, time, redshift_attr, &mut notes)?;

    let (hubble_param, omega0, omega_lambda) = src.cosmology(layout, cosmological, &mut notes)?;
    let (unit_length_cm, unit_mass_g, unit_velocity_cm_s) = src.units(&mut notes)?;

    if cosmological && !(time > 0.0 && time <= 1.0 + 1e-9) {
        return Err(SnapError::BadAttribute {
            path: path.to_path_buf(),
            object: "Header".into(),
            attribute: "Time".into(),
            expected: "a scale factor in (0, 1] for a cosmological run".into(),
            found: format!("{time}"),
        });
    }
    if !cosmological && (hubble_param - 1.0).abs() > 1e-12 {
        notes.push(format!(
            "non-cosmological run with HubbleParam = {hubble_param}: code units taken as h-scaled \
             (length/h, mass/h, time/h) as in GIZMO; set HubbleParam = 1 in the file if they are not"
        ));
    }
    let (scale_factor, redshift) = if cosmological {
        (time, redshift_attr.unwrap_or(1.0 / time - 1.0))
    } else {
        (1.0, redshift_attr.unwrap_or(0.0))
    };
    Ok((
        Header {
            time,
            scale_factor,
            redshift,
            hubble_param,
            omega0,
            omega_lambda,
            box_size,
            num_part_total,
            num_files: num_files as u32,
            mass_table,
            cosmological,
            unit_length_cm,
            unit_mass_g,
            unit_velocity_cm_s,
        },
        notes,
    ))
}
