//! Pipeline stages implemented by the data plane itself.

pub mod l7;
pub mod route;
pub mod waf;
