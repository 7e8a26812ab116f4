//! bodyparse
