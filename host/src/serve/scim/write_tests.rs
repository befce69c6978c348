use super::*;
use serde_json::json;

fn attrs(e: &Entry) -> Vec<(&str, Vec<&str>)> {
    e.attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.iter().map(String::as_str).collect()))
        .collect()
}

#[test]
fn okta_create_body() {
    let body = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER],
        "userName": "isabella@example.com",
        "name": { "givenName": "Isabella", "familyName": "Rossi" },
        "emails": [
            { "primary": false, "value": "home@example.org", "type": "home" },
            { "primary": true, "value": "isabella@example.com", "type": "work" }
        ],
        "phoneNumbers": [{ "value": "+39 1", "type": "mobile" }],
        "displayName": "Isabella R.",
        "locale": "it-IT",
        "externalId": "00u1abc",
        "groups": [],
        "password": "not kept",
        "active": true,
        ENTERPRISE_USER: { "employeeNumber": "E-77" },
        ROSTER_USER: { "aliases": ["ibella", { "value": "iro" }], "cards": ["04FF"], "pins": ["1234"], "storage": "\\\\s\\i" }
    });
    let e = user_entry(&body).unwrap();
    assert_eq!(e.external_id.as_deref(), Some("00u1abc"));
    assert!(e.pins_given);
    assert_eq!(
        attrs(&e),
        vec![
            ("username", vec!["isabella@example.com"]),
            ("full_name", vec!["Isabella Rossi"]),
            ("email", vec!["isabella@example.com"]),
            ("phone", vec!["+39 1"]),
            ("active", vec!["true"]),
            ("personal_number", vec!["E-77"]),
            ("aliases", vec!["ibella", "iro"]),
            ("cards", vec!["04FF"]),
            ("pins", vec!["1234"]),
            ("storage", vec!["\\\\s\\i"]),
        ]
    );
}

#[test]
fn entra_create_body_and_fallbacks() {
    let body = json!({
        "schemas": [USER_SCHEMA],
        "externalId": "b1c2",
        "userName": "Test_User_ab6490ee@contoso.com",
        "active": "False",
        "displayName": "Test User",
        "emails": [{ "type": "work", "value": "t@contoso.com" }],
        "preferredLanguage": "cs"
    });
    let e = user_entry(&body).unwrap();
    assert!(!e.pins_given);
    assert_eq!(
        attrs(&e),
        vec![
            ("username", vec!["Test_User_ab6490ee@contoso.com"]),
            ("full_name", vec!["Test User"]),
            ("email", vec!["t@contoso.com"]),
            ("language", vec!["cs"]),
            ("active", vec!["false"]),
        ]
    );
}

#[test]
fn bad_bodies_are_refused() {
    for (body, kind) in [
        (json!([]), ScimType::InvalidSyntax),
        (
            json!({ "schemas": ["urn:x"] , "userName": "a"}),
            ScimType::InvalidSyntax,
        ),
        (
            json!({ "name": { "formatted": "x" } }),
            ScimType::InvalidValue,
        ),
        (
            json!({ "userName": 5.5, "active": "yes" }),
            ScimType::InvalidValue,
        ),
        (
            json!({ "userName": "a", "emails": "a@b" }),
            ScimType::InvalidValue,
        ),
        (
            json!({ "userName": "a", "emails": ["a@b"] }),
            ScimType::InvalidValue,
        ),
        (json!({ "userName": ["a"] }), ScimType::InvalidValue),
        (
            json!({ "userName": "a", ENTERPRISE_USER: "x" }),
            ScimType::InvalidValue,
        ),
    ] {
        assert_eq!(
            user_entry(&body).unwrap_err().scim_type,
            Some(kind),
            "{body}"
        );
    }
}

fn resource() -> Value {
    json!({
        "schemas": [USER_SCHEMA, ROSTER_USER],
        "id": "7",
        "userName": "asmith",
        "name": { "formatted": "Alice Smith" },
        "emails": [{ "value": "alice@example.com", "type": "work", "primary": true }],
        "active": true,
        ROSTER_USER: { "aliases": ["alice"], "hasPin": false }
    })
}

fn patch(ops: Value) -> Value {
    json!({ "schemas": [PATCH_OP], "Operations": ops })
}

#[test]
fn entra_patch_forms() {
    let mut r = resource();
    apply_patch(
        &mut r,
        &patch(json!([
            { "op": "Replace", "path": "active", "value": "False" },
            { "op": "Add", "path": "emails[type eq \"work\"].value", "value": "a2@example.com" },
            { "op": "Replace", "path": "name.familyName", "value": "Smith-Jones" },
            { "op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "9" },
            { "op": "Replace", "value": { "displayName": "Alice S-J", "name.givenName": "Alice" } },
        ])),
    )
    .unwrap();
    assert_eq!(r["active"], "False");
    assert_eq!(r["emails"][0]["value"], "a2@example.com");
    assert_eq!(r["name"]["familyName"], "Smith-Jones");
    assert_eq!(r["name"]["givenName"], "Alice");
    assert_eq!(r[ENTERPRISE_USER]["employeeNumber"], "9");
    assert_eq!(r["displayName"], "Alice S-J");
    let e = user_entry(&r).unwrap();
    assert!(attrs(&e).contains(&("active", vec!["false"])));
    assert!(attrs(&e).contains(&("personal_number", vec!["9"])));
    // name.formatted still wins over given + family.
    assert!(attrs(&e).contains(&("full_name", vec!["Alice Smith"])));
}

#[test]
fn path_less_replace_with_extension_object() {
    let mut r = resource();
    apply_patch(
        &mut r,
        &patch(json!([{ "op": "replace", "value": {
            "active": false,
            ENTERPRISE_USER: { "employeeNumber": "42" },
            ROSTER_USER: { "cards": ["AB"] }
        }}])),
    )
    .unwrap();
    assert_eq!(r["active"], false);
    assert_eq!(r[ENTERPRISE_USER]["employeeNumber"], "42");
    assert_eq!(r[ROSTER_USER]["cards"], json!(["AB"]));
    assert_eq!(r[ROSTER_USER]["aliases"], json!(["alice"]));
}

#[test]
fn okta_patch_and_multi_valued() {
    let mut r = resource();
    apply_patch(
        &mut r,
        &patch(json!([
            { "op": "replace", "value": { "active": false } },
            { "op": "add", "path": "urn:roster:params:scim:schemas:extension:roster:2.0:User:aliases", "value": ["al", "alice"] },
            { "op": "remove", "path": "emails[value ew \"EXAMPLE.COM\"]" },
        ])),
    )
    .unwrap();
    assert_eq!(r["active"], false);
    assert_eq!(r[ROSTER_USER]["aliases"], json!(["alice", "al"]));
    assert_eq!(r["emails"], json!([]));
    let e = user_entry(&r).unwrap();
    assert!(!attrs(&e).iter().any(|(k, _)| *k == "email"));
}

#[test]
fn group_member_patches() {
    let mut g = json!({ "displayName": "Staff", "members": [{ "value": "1" }, { "value": "2" }] });
    apply_patch(
        &mut g,
        &patch(json!([
            { "op": "Add", "path": "members", "value": [{ "value": "3" }, { "value": "1" }] },
            { "op": "Remove", "path": "members", "value": [{ "value": "2" }] },
            { "op": "remove", "path": "members[value eq \"3\"]" },
        ])),
    )
    .unwrap();
    assert_eq!(g["members"], json!([{ "value": "1" }]));
    apply_patch(
        &mut g,
        &patch(json!([{ "op": "remove", "path": "members" }])),
    )
    .unwrap();
    assert!(g.get("members").is_none());
}

#[test]
fn an_add_with_a_value_filter_creates_the_value_it_describes() {
    let mut r = resource();
    let ops =
        json!([{ "op": "Add", "value": { "phoneNumbers[type eq \"work\"].value": "+1 555" } }]);
    apply_patch(&mut r, &patch(ops)).unwrap();
    assert_eq!(
        r["phoneNumbers"],
        json!([{ "type": "work", "value": "+1 555" }])
    );
    // Once there, the same add changes it instead of adding another.
    let ops =
        json!([{ "op": "add", "path": "phoneNumbers[type eq \"work\"].value", "value": "+1 556" }]);
    apply_patch(&mut r, &patch(ops)).unwrap();
    assert_eq!(
        r["phoneNumbers"],
        json!([{ "type": "work", "value": "+1 556" }])
    );
}

#[test]
fn bad_patches_are_refused() {
    for (ops, kind) in [
        (
            json!([{ "op": "frobnicate", "path": "active", "value": true }]),
            ScimType::InvalidSyntax,
        ),
        (json!([{ "op": "remove" }]), ScimType::NoTarget),
        (
            json!([{ "op": "replace", "path": "emails[type eq \"home\"].value", "value": "x" }]),
            ScimType::NoTarget,
        ),
        (
            json!([{ "op": "replace", "path": "emails[type eq", "value": "x" }]),
            ScimType::InvalidPath,
        ),
        (
            json!([{ "op": "replace", "value": "x" }]),
            ScimType::InvalidValue,
        ),
        (
            json!([{ "op": "add", "path": "active" }]),
            ScimType::InvalidValue,
        ),
    ] {
        let mut r = resource();
        let e = apply_patch(&mut r, &patch(ops.clone())).unwrap_err();
        assert_eq!(e.scim_type, Some(kind), "{ops}: {e}");
    }
    let mut r = resource();
    let e = apply_patch(&mut r, &json!({ "Operations": [] })).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::InvalidSyntax));
    let many =
        vec![json!({ "op": "replace", "path": "active", "value": true }); MAX_OPERATIONS + 1];
    let e = apply_patch(&mut r, &patch(json!(many))).unwrap_err();
    assert_eq!(e.scim_type, Some(ScimType::TooMany));
}

#[test]
fn value_filter_matching() {
    let f = filter::parse(r#"type eq "WORK" and not (primary eq false)"#).unwrap();
    assert!(matches(&f, &json!({ "type": "work", "primary": true })));
    assert!(matches(&f, &json!({ "type": "work" })));
    assert!(!matches(&f, &json!({ "type": "work", "primary": "False" })));
    assert!(!matches(&f, &json!({ "type": "home" })));
    let f = filter::parse(r#"value sw "a" or display pr"#).unwrap();
    assert!(matches(&f, &json!("abc")));
    assert!(matches(&f, &json!({ "display": "x" })));
    assert!(!matches(&f, &json!({ "display": null, "value": "b" })));
}

#[test]
fn entries_go_through_the_source_mapping_and_limits() {
    let mapper = crate::mapping::Mapper::new(&[], true, b"k".to_vec()).unwrap();
    let body = json!({
        "userName": "ISABELLA",
        "name": { "formatted": "Isabella Rossi" },
        "active": "False",
        ROSTER_USER: { "aliases": ["IR"], "pins": ["1234"] }
    });
    let e = user_entry(&body).unwrap();
    let m = mapper.map(&e.to_object("00u1")).unwrap();
    // lowercase_usernames applies to pushed users too.
    assert_eq!(m.record.username, "isabella");
    assert_eq!(m.record.aliases, ["ir"]);
    assert_eq!(m.record.full_name.as_deref(), Some("Isabella Rossi"));
    assert!(!m.record.active);
    assert_eq!(m.pins.len(), 1);
    assert_ne!(
        m.record.pins,
        ["1234"],
        "PINs are fingerprints in the record"
    );
    // A field over its limit is refused, without echoing the value.
    let long = "x".repeat(300);
    let e = user_entry(&json!({ "userName": long })).unwrap();
    let err = mapping_error(mapper.map(&e.to_object("a")).err().expect("refused"));
    assert_eq!(err.scim_type, Some(ScimType::InvalidValue));
    assert!(
        err.detail.contains("username") && !err.detail.contains(&long),
        "{err}"
    );
    let e =
        user_entry(&json!({ "userName": "p", ROSTER_USER: { "pins": ["1".repeat(65)] } })).unwrap();
    let err = mapping_error(mapper.map(&e.to_object("a")).err().expect("refused"));
    assert!(!err.detail.contains(&"1".repeat(65)), "{err}");
}
