pub mod bundle;
pub mod crstest;
pub mod demo;
pub mod serve;
pub mod status;
pub mod test;
