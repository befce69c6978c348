//! SCIM discovery.
