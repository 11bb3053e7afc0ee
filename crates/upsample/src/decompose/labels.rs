//! Populations named by an integer dataset (host subhalo, group number, ...), joined to the
//! stars by particle ID; small ones pooled.

use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap};

use super::Cluster;

/// One population per distinct label (ascending label order); labels with fewer than min_size particles pooled into one population listed last.
///
/// Labelled "field NAME=VALUE"; the pooled population "field NAME (pooled: ...)". Empty input
/// gives no population.
pub(crate) fn decompose_labels(labels: &[i64], field_name: &str, min_size: usize) -> Vec<Cluster> {
    let mut by_label: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, &l) in labels.iter().enumerate() {
        by_label.entry(l).or_default().push(i);
    }
    let mut out = Vec::new();
    let mut pooled = Vec::new();
    let mut pooled_labels = 0usize;
    for (l, members) in by_label {
        if members.len() >= min_size {
            out.push(Cluster {
                label: format!("field {field_name}={l}"),
                members,
                ghosts: Vec::new(),
                core: None,
                component: None,
                own_frame: false,
            });
        } else {
            pooled_labels += 1;
            pooled.extend(members);
        }
    }
    if !pooled.is_empty() {
        pooled.sort_unstable();
        out.push(Cluster {
            label: format!(
                "field {field_name} (pooled: {pooled_labels} values with fewer than {min_size} \
                 particles, {} particles)",
                pooled.len()
            ),
            members: pooled,
            ghosts: Vec::new(),
            core: None,
            component: None,
            own_frame: false,
        });
    }
    out
}

/// Label of each star (`ids`, in star order) from a field given as (`field_ids`, `field_values`), joined by particle ID; `source` names where the field came from, for errors.
///
/// Rows of the field whose ID is not a star (e.g. wind particles) are ignored; a star without
/// a row, an ID listed twice with different values, or lists of different lengths are errors.
pub(crate) fn labels_by_id(
    ids: &[u64],
    field_ids: &[u64],
    field_values: &[i64],
    source: &str,
) -> Result<Vec<i64>> {
    if field_ids.len() != field_values.len() {
        bail!(
            "{source}: {} particle IDs but {} values (expected one value per ID)",
            field_ids.len(),
            field_values.len()
        );
    }
    let mut by_id: HashMap<u64, i64> = HashMap::with_capacity(field_ids.len());
    for (&id, &v) in field_ids.iter().zip(field_values) {
        if let Some(old) = by_id.insert(id, v) {
            if old != v {
                bail!("{source}: particle ID {id} is listed twice, with values {old} and {v}");
            }
        }
    }
    let mut missing = ids.iter().filter(|id| !by_id.contains_key(id));
    if let Some(first) = missing.next() {
        bail!(
            "{source}: no value for star particle ID {first} ({} of {} stars lack one; expected \
             every star's ParticleID to be listed)",
            1 + missing.count(),
            ids.len()
        );
    }
    Ok(ids.iter().map(|id| by_id[id]).collect())
}
