//! Results: logs into typed tables (`collect`, `rows`), analyses and the report.

pub mod analyze;
pub mod collect;
pub mod report;
pub mod rows;
