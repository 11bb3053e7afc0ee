//! Mock survey observables (issue 13): isochrone photometry, observer astrometry,
//! extinction, Gaia-like error models and selection, as pure functions over star arrays.
//!
//! Units: angles in degrees, parallax mas, proper motions mas/yr (pmra includes cos δ),
//! radial velocity km/s, magnitudes Vega, extinction mag. Galaxy-frame inputs: positions kpc,
//! velocities km/s, z along the galaxy's angular momentum.

pub mod error;
pub mod isochrone;
pub mod isochrone_interp;

pub use error::{Result, SurveyError};
pub use isochrone::{
    builtin_gaia_edr3, read_isochrone_dir, read_isochrone_file, Isochrone, IsochroneSet,
};
pub use isochrone_interp::{IsochroneGrid, PhotometryColumns, StarProperties};
pub mod astrometry;
pub mod observer;
pub use astrometry::{Astrometry, AstrometryColumns, SkyProjector};
pub use observer::Observer;
pub mod errors;
pub mod extinction;
pub mod gas_column;
pub mod mock;
pub mod selection;
pub use mock::{mock_observe, Dust, MockColumns, MockSettings, StarBatch};
