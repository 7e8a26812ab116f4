//! seclang-ops
