//! The discovery documents (RFC 7644 §4): `/ServiceProviderConfig`, `/ResourceTypes` and
//! `/Schemas`. They say what roster does, nothing more.

use super::{ENTERPRISE_USER, GROUP_SCHEMA, LIST_RESPONSE, ROSTER_GROUP, ROSTER_USER, USER_SCHEMA};
use serde_json::{json, Value};

const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// The most resources one list response holds (`count` above it is lowered to it).
pub const MAX_RESULTS: u64 = 1000;

/// What this server does; `patch` is true once SCIM writes are served.
#[derive(Debug, Clone, Copy)]
pub struct Features {
    pub patch: bool,
    /// `meta.version` is an ETag and `If-None-Match`/`If-Match` are honoured.
    pub etag: bool,
}

pub fn service_provider_config(base: &str, f: Features) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "patch": { "supported": f.patch },
        "bulk": { "supported": false, "maxOperations": 0, "maxPayloadSize": 0 },
        "filter": { "supported": true, "maxResults": MAX_RESULTS },
        "changePassword": { "supported": false },
        "sort": { "supported": true },
        "etag": { "supported": f.etag },
        // RFC 9865: `cursor` and `nextCursor` beside startIndex and count.
        "pagination": { "cursor": true, "index": true, "defaultPaginationMethod": "index", "maxPageSize": MAX_RESULTS },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A roster token in `Authorization: Bearer`: `roster tokens create NAME --role read` to read, `--role scim-push --source NAME` to provision a source.",
            "primary": true,
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{base}/ServiceProviderConfig"),
        },
    })
}

fn resource_type(base: &str, id: &str, endpoint: &str, schema: &str, ext: &[&str]) -> Value {
    let ext: Vec<Value> = ext
        .iter()
        .map(|s| json!({ "schema": s, "required": false }))
        .collect();
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": id,
        "name": id,
        "endpoint": endpoint,
        "description": format!("roster {}", id.to_lowercase()),
        "schema": schema,
        "schemaExtensions": ext,
        "meta": { "resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/{id}") },
    })
}

pub fn resource_types(base: &str) -> Vec<Value> {
    vec![
        resource_type(
            base,
            "User",
            "/Users",
            USER_SCHEMA,
            &[ENTERPRISE_USER, ROSTER_USER],
        ),
        resource_type(base, "Group", "/Groups", GROUP_SCHEMA, &[ROSTER_GROUP]),
    ]
}

/// An attribute definition (RFC 7643 §7) with SCIM's defaults.
struct A(Value);

fn a(name: &str, ty: &str, description: &str) -> A {
    A(json!({
        "name": name,
        "type": ty,
        "multiValued": false,
        "description": description,
        "required": false,
        "caseExact": false,
        "mutability": "readWrite",
        "returned": "default",
        "uniqueness": "none",
    }))
}

impl A {
    fn set(mut self, k: &str, v: Value) -> A {
        self.0[k] = v;
        self
    }
    fn multi(self) -> A {
        self.set("multiValued", json!(true))
    }
    fn required(self) -> A {
        self.set("required", json!(true))
    }
    fn exact(self) -> A {
        self.set("caseExact", json!(true))
    }
    fn read_only(self) -> A {
        self.set("mutability", json!("readOnly"))
    }
    fn unique(self) -> A {
        self.set("uniqueness", json!("server"))
    }
    fn returned(self, r: &str) -> A {
        self.set("returned", json!(r))
    }
    fn subs(self, subs: Vec<A>) -> A {
        let subs: Vec<Value> = subs.into_iter().map(|s| s.0).collect();
        self.set("subAttributes", json!(subs))
    }
    fn refs(self, types: &[&str]) -> A {
        self.set("referenceTypes", json!(types))
    }
}

/// `value`, `display`, `type` and `primary` of a multi-valued attribute like `emails`.
fn value_subs(what: &str) -> Vec<A> {
    vec![
        a("value", "string", what),
        a("display", "string", "A human-readable name.").read_only(),
        a("type", "string", "Always `work` in roster.")
            .set("canonicalValues", json!(["work", "home", "other"])),
        a("primary", "boolean", "roster keeps one value, the primary."),
    ]
}

fn schema(base: &str, id: &str, name: &str, description: &str, attrs: Vec<A>) -> Value {
    let attrs: Vec<Value> = attrs.into_iter().map(|a| a.0).collect();
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": id,
        "name": name,
        "description": description,
        "attributes": attrs,
        "meta": { "resourceType": "Schema", "location": format!("{base}/Schemas/{id}") },
    })
}

fn member_ref(what: &str, to: &str) -> Vec<A> {
    vec![
        a("value", "string", &format!("The {what}'s id.")).read_only(),
        a("$ref", "reference", &format!("The {what}'s URI."))
            .read_only()
            .refs(&[to]),
        a("display", "string", "Its name.").read_only(),
        a("type", "string", "Its kind.").read_only(),
    ]
}

pub fn schemas(base: &str) -> Vec<Value> {
    let user = schema(
        base,
        USER_SCHEMA,
        "User",
        "A roster user.",
        vec![
            a(
                "userName",
                "string",
                "The login name, unique among usernames and aliases.",
            )
            .required()
            .unique(),
            a("name", "complex", "roster keeps the full name only.").subs(vec![
                a("formatted", "string", "The full name."),
                a(
                    "givenName",
                    "string",
                    "Accepted; roster keeps the full name only.",
                ),
                a(
                    "familyName",
                    "string",
                    "Accepted; roster keeps the full name only.",
                ),
            ]),
            a("displayName", "string", "The full name."),
            a("emails", "complex", "roster keeps one email.")
                .multi()
                .subs(value_subs("The email address.")),
            a("phoneNumbers", "complex", "roster keeps one phone number.")
                .multi()
                .subs(value_subs("The phone number.")),
            a("preferredLanguage", "string", "The user's language."),
            a("active", "boolean", "Whether the user is active."),
            a("password", "string", "Not kept: roster has no passwords.")
                .set("mutability", json!("writeOnly"))
                .returned("never"),
            a("groups", "complex", "The groups the user is a member of.")
                .multi()
                .read_only()
                .subs(member_ref("group", "Group")),
        ],
    );
    let enterprise = schema(
        base,
        ENTERPRISE_USER,
        "EnterpriseUser",
        "The enterprise extension: the personal number.",
        vec![a("employeeNumber", "string", "The personal number.")
            .exact()
            .unique()],
    );
    let roster_user = schema(
        base,
        ROSTER_USER,
        "RosterUser",
        "What roster keeps that SCIM has no place for.",
        vec![
            a(
                "aliases",
                "string",
                "Other login names, unique with the usernames.",
            )
            .multi()
            .unique(),
            a("cards", "string", "Card numbers (badges), unique.")
                .multi()
                .unique(),
            a(
                "pins",
                "string",
                "PINs. Write-only: kept as hashes, never returned.",
            )
            .multi()
            .exact()
            .set("mutability", json!("writeOnly"))
            .returned("never"),
            a("hasPin", "boolean", "Whether the user has a PIN.").read_only(),
            a(
                "pinHashes",
                "string",
                "The argon2 (PHC) hashes of the user's PINs, never the PINs: only to tokens of \
                 role replica or admin, for another roster pulling this one.",
            )
            .multi()
            .read_only(),
            a("storage", "string", "The scan storage path.").exact(),
            a("notes", "string", "Free-text notes."),
            a("source", "string", "The roster source that owns the user.")
                .exact()
                .read_only(),
        ],
    );
    let group = schema(
        base,
        GROUP_SCHEMA,
        "Group",
        "A roster group.",
        vec![
            a(
                "displayName",
                "string",
                "The group's path in roster's tree (`Staff|IT`).",
            )
            .required()
            .unique(),
            a("members", "complex", "The group's members.")
                .multi()
                .subs(member_ref("user", "User")),
        ],
    );
    let roster_group = schema(
        base,
        ROSTER_GROUP,
        "RosterGroup",
        "The group's place in roster's tree.",
        vec![
            a(
                "name",
                "string",
                "The group's own name (the last part of its path).",
            )
            .read_only(),
            a("parent", "string", "The parent group's path.").read_only(),
            a("source", "string", "The roster source that owns the group.")
                .exact()
                .read_only(),
        ],
    );
    vec![user, enterprise, roster_user, group, roster_group]
}

/// A list response of discovery resources (all of them, one page).
pub fn list(resources: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": resources.len(),
        "startIndex": 1,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_provider_config_is_truthful() {
        let spc = service_provider_config(
            "http://x/scim/v2",
            Features {
                patch: false,
                etag: true,
            },
        );
        assert_eq!(spc["patch"]["supported"], false);
        assert_eq!(spc["bulk"]["supported"], false);
        assert_eq!(spc["changePassword"]["supported"], false);
        assert_eq!(spc["filter"]["supported"], true);
        assert_eq!(spc["filter"]["maxResults"], MAX_RESULTS);
        assert_eq!(
            spc["meta"]["location"],
            "http://x/scim/v2/ServiceProviderConfig"
        );
    }

    #[test]
    fn every_resource_type_schema_is_described() {
        let schemas = schemas("b");
        let ids: Vec<&str> = schemas.iter().map(|s| s["id"].as_str().unwrap()).collect();
        for rt in resource_types("b") {
            assert!(ids.contains(&rt["schema"].as_str().unwrap()));
            for e in rt["schemaExtensions"].as_array().unwrap() {
                assert!(ids.contains(&e["schema"].as_str().unwrap()));
            }
        }
        // PINs are described as never returned.
        let roster = schemas.iter().find(|s| s["id"] == ROSTER_USER).unwrap();
        let pins = roster["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "pins")
            .unwrap();
        assert_eq!(pins["returned"], "never");
        assert_eq!(list(schemas.clone())["totalResults"], schemas.len());
    }
}
