//! ftw
