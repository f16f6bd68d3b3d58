//! The plan: a sweep file and a cluster profile, checked, expanded into points, and the plan
//! table and check shown before anything runs.

pub mod check;
pub mod diag;
pub mod expand;
pub mod model;
pub(crate) mod params;
pub mod profile;
pub mod profile_import;
pub mod schedule;
pub(crate) mod sets;
pub mod spec;
pub(crate) mod table;
pub mod timing;
pub mod values;

pub(crate) use table::*;
