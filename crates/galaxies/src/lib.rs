//! Test galaxies drawn from known models, each with an independent truth draw and the analytic
//! profiles the tests score against (docs/GALAXIES.md). Units: kpc, km/s, Msun, Gyr.
