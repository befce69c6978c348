//! SCIM resources.
