//! Snapshot I/O for the upsampling pipeline.
//!
//! Reads star particles (PartType4) from GIZMO/FIRE, GADGET-4 and AREPO/IllustrisTNG HDF5
//! snapshots (single or multi-file) into physical units — kpc, km/s, Msun, Gyr — finds the galaxy
//! frame, selects regions and writes the output star catalogue. This is the only crate that
//! touches HDF5 and the only place where code units are converted; the rules and their sources
//! are in `docs/UNITS.md`.

#![warn(missing_docs)]

mod catalog;
mod discover;
mod error;
mod fields;
mod frame;
mod gas;
mod header;
mod inventory;
mod particles;
mod snapshot;
mod star_reader;
mod table;
mod validate;
mod write;

pub use catalog::{
    read_catalog, write_attr, AttrValue, CatalogChunks, CatalogMeta, CatalogWriter, StarBatch,
    CATALOG_CHUNK_ROWS, CATALOG_DEFLATE_LEVEL,
};
pub use discover::discover_files;
pub use error::{short_hdf5_message, Result, SnapError};
pub use frame::{basis_from_z, FrameOptions, GalaxyFrame};
pub use gas::{write_gas, GasParticles, GasReport, PRIMORDIAL_HYDROGEN_FRACTION};
pub use header::{
    cosmic_time_gyr, scale_factor_at_time_gyr, Header, Layout, GYR_S, HUBBLE_TIME_GYR_H1, KMS_CMS,
    KPC_CM, MSUN_G,
};
pub use inventory::{DatasetInfo, Inventory};
pub use particles::{
    particle_uid, select_sphere, InvalidPolicy, ReadOptions, ReadReport, Sphere, StarParticles,
};
pub use snapshot::{read_side_field_i64, Snapshot};
pub use table::{read_table, read_vec3, write_table, TableColumn, TableValues};
pub use write::{
    snapshot_file_names, write_side_field_i64, write_snapshot, write_snapshot_with, WriteOptions,
};

/// Gravitational constant in kpc (km/s)² / Msun.
pub const G_KPC_KMS2_MSUN: f64 = 4.30091727e-6;
