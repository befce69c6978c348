//! `roster serve`: the HTTP service. The engine never speaks HTTP; this tree does.

pub mod scim;
