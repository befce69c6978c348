//! SCIM 2.0 (RFC 7643/7644) under `/scim/v2`: the filter grammar, the resources roster's
//! users and groups become, the discovery documents and the error body. The SQL side of
//! filters lives with the other queries, in `store::scim`.

pub mod api;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod push;
pub mod resource;
pub mod routes;
pub mod write;

pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE_USER: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// roster's own fields that SCIM has no place for.
pub const ROSTER_USER: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:User";
pub const ROSTER_GROUP: &str = "urn:roster:params:scim:schemas:extension:roster:2.0:Group";
pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
