//! SCIM queries: a parsed filter (`serve::scim::filter`) translated into a WHERE clause over
//! roster's schema, and the rows the SCIM resources are made of. Values are always bound as
//! parameters; the SQL text comes only from the tables below, never from the request.

use super::Store;
use crate::serve::scim::error::ScimError;
use crate::serve::scim::filter::{AttrPath, CompareOp, Filter, Literal};
use crate::serve::scim::{ENTERPRISE_USER, GROUP_SCHEMA, ROSTER_GROUP, ROSTER_USER, USER_SCHEMA};
use crate::store::db::Sql;
use anyhow::Result;
use rusqlite::types::Value;
use rusqlite::OptionalExtension;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScimResource {
    User,
    Group,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ty {
    /// `exact` is SCIM's caseExact.
    Str {
        exact: bool,
    },
    Bool,
    /// `YYYY-MM-DDTHH:MM:SSZ` text, compared as instants.
    Time,
    /// An integer row id, a string to SCIM.
    Id,
}

#[derive(Debug, Clone, Copy)]
struct Col {
    expr: &'static str,
    ty: Ty,
    nullable: bool,
}

const fn col(expr: &'static str, ty: Ty) -> Col {
    Col {
        expr,
        ty,
        nullable: true,
    }
}

const fn not_null(expr: &'static str, ty: Ty) -> Col {
    Col {
        expr,
        ty,
        nullable: false,
    }
}

const EXACT: Ty = Ty::Str { exact: true };
const NOCASE: Ty = Ty::Str { exact: false };
const ABSENT: Col = col("NULL", NOCASE);

#[derive(Debug, Clone, Copy)]
enum Rows {
    /// `FROM … WHERE …`: one row per value.
    Exists(&'static str),
    /// At most one value, present when this holds.
    Guard(&'static str),
    /// `select` opens `u.id IN (SELECT … WHERE` for the condition; `correlated` is the
    /// `FROM … WHERE` of the user's own values (for sorting).
    In {
        select: &'static str,
        correlated: &'static str,
    },
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Scalar(Col),
    /// A single-valued complex attribute (`name`).
    Complex(&'static [(&'static str, Col)]),
    /// A multi-valued attribute; `value` is the default sub-attribute.
    Multi(Rows, &'static [(&'static str, Col)]),
    /// Not filterable, with the reason.
    Never(&'static str),
}

struct Attr {
    schema: &'static str,
    /// Lowercase.
    name: &'static str,
    target: Target,
}

const fn attr(schema: &'static str, name: &'static str, target: Target) -> Attr {
    Attr {
        schema,
        name,
        target,
    }
}

const USER_ATTRS: &[Attr] = &[
    attr(USER_SCHEMA, "id", Target::Scalar(not_null("u.id", Ty::Id))),
    // At most one link per user. Answered from links' primary key, source by source (CROSS
    // JOIN fixes that order), so Entra's `externalId eq` is a lookup, not a scan.
    attr(
        USER_SCHEMA,
        "externalid",
        Target::Multi(
            Rows::In {
                select: "u.id IN (SELECT fl.user_id FROM sources fls CROSS JOIN links fl ON fl.source_id = fls.id WHERE",
                correlated: "FROM links fl WHERE fl.user_id = u.id",
            },
            &[("value", not_null("fl.anchor", EXACT))],
        ),
    ),
    attr(
        USER_SCHEMA,
        "username",
        Target::Scalar(not_null("u.username", NOCASE)),
    ),
    attr(
        USER_SCHEMA,
        "displayname",
        Target::Scalar(col("u.full_name", NOCASE)),
    ),
    attr(
        USER_SCHEMA,
        "name",
        Target::Complex(&[
            ("formatted", col("u.full_name", NOCASE)),
            ("familyname", ABSENT),
            ("givenname", ABSENT),
            ("middlename", ABSENT),
            ("honorificprefix", ABSENT),
            ("honorificsuffix", ABSENT),
        ]),
    ),
    attr(
        USER_SCHEMA,
        "emails",
        Target::Multi(
            Rows::Guard("u.email IS NOT NULL"),
            &[
                ("value", col("u.email", NOCASE)),
                ("display", col("u.email", NOCASE)),
                ("type", not_null("'work'", NOCASE)),
                ("primary", not_null("1", Ty::Bool)),
            ],
        ),
    ),
    attr(
        USER_SCHEMA,
        "phonenumbers",
        Target::Multi(
            Rows::Guard("u.phone IS NOT NULL"),
            &[
                ("value", col("u.phone", NOCASE)),
                ("display", col("u.phone", NOCASE)),
                ("type", not_null("'work'", NOCASE)),
                ("primary", not_null("1", Ty::Bool)),
            ],
        ),
    ),
    attr(
        USER_SCHEMA,
        "preferredlanguage",
        Target::Scalar(col("u.language", NOCASE)),
    ),
    attr(
        USER_SCHEMA,
        "active",
        Target::Scalar(not_null("u.active", Ty::Bool)),
    ),
    attr(
        USER_SCHEMA,
        "groups",
        Target::Multi(
            Rows::Exists(
                "FROM memberships fm JOIN groups fg ON fg.id = fm.group_id WHERE fm.user_id = u.id",
            ),
            &[
                ("value", not_null("fg.id", Ty::Id)),
                ("display", not_null("fg.path", NOCASE)),
                ("type", not_null("'direct'", NOCASE)),
            ],
        ),
    ),
    attr(
        USER_SCHEMA,
        "meta",
        Target::Complex(&[
            ("created", not_null("u.created_at", Ty::Time)),
            ("lastmodified", not_null("u.updated_at", Ty::Time)),
            ("resourcetype", not_null("'User'", EXACT)),
        ]),
    ),
    attr(USER_SCHEMA, "nickname", Target::Scalar(ABSENT)),
    attr(USER_SCHEMA, "title", Target::Scalar(ABSENT)),
    attr(USER_SCHEMA, "usertype", Target::Scalar(ABSENT)),
    attr(USER_SCHEMA, "locale", Target::Scalar(ABSENT)),
    attr(USER_SCHEMA, "timezone", Target::Scalar(ABSENT)),
    attr(USER_SCHEMA, "profileurl", Target::Scalar(ABSENT)),
    attr(
        USER_SCHEMA,
        "password",
        Target::Never("password is never returned"),
    ),
    attr(
        ENTERPRISE_USER,
        "employeenumber",
        Target::Scalar(col("u.personal_number", EXACT)),
    ),
    attr(
        ROSTER_USER,
        "aliases",
        Target::Multi(
            Rows::Exists("FROM names fn WHERE fn.user_id = u.id AND fn.alias = 1"),
            &[("value", not_null("fn.name", NOCASE))],
        ),
    ),
    attr(
        ROSTER_USER,
        "cards",
        Target::Multi(
            Rows::Exists("FROM cards fc WHERE fc.user_id = u.id"),
            &[("value", not_null("fc.card", NOCASE))],
        ),
    ),
    attr(
        ROSTER_USER,
        "storage",
        Target::Scalar(col("u.storage", EXACT)),
    ),
    attr(ROSTER_USER, "notes", Target::Scalar(col("u.notes", NOCASE))),
    attr(
        ROSTER_USER,
        "source",
        Target::Scalar(col(
            "(SELECT fs.name FROM sources fs WHERE fs.id = u.source_id)",
            EXACT,
        )),
    ),
    attr(ROSTER_USER, "pins", Target::Never("pins are write-only")),
];

const GROUP_ATTRS: &[Attr] = &[
    attr(GROUP_SCHEMA, "id", Target::Scalar(not_null("g.id", Ty::Id))),
    attr(
        GROUP_SCHEMA,
        "externalid",
        Target::Scalar(col("g.anchor", EXACT)),
    ),
    attr(
        GROUP_SCHEMA,
        "displayname",
        Target::Scalar(not_null("g.path", NOCASE)),
    ),
    attr(
        GROUP_SCHEMA,
        "members",
        Target::Multi(
            Rows::Exists(
                "FROM memberships fm JOIN users fu ON fu.id = fm.user_id WHERE fm.group_id = g.id",
            ),
            &[
                ("value", not_null("fu.id", Ty::Id)),
                ("display", not_null("fu.username", NOCASE)),
                ("type", not_null("'User'", EXACT)),
            ],
        ),
    ),
    attr(
        GROUP_SCHEMA,
        "meta",
        Target::Complex(&[("resourcetype", not_null("'Group'", EXACT))]),
    ),
    attr(
        ROSTER_GROUP,
        "name",
        Target::Scalar(not_null("g.name", NOCASE)),
    ),
    attr(
        ROSTER_GROUP,
        "parent",
        Target::Scalar(col(
            "(SELECT fp.path FROM groups fp WHERE fp.id = g.parent_id)",
            NOCASE,
        )),
    ),
    attr(
        ROSTER_GROUP,
        "source",
        Target::Scalar(col(
            "(SELECT fs.name FROM sources fs WHERE fs.id = g.source_id)",
            EXACT,
        )),
    ),
];

fn attrs(resource: ScimResource) -> &'static [Attr] {
    match resource {
        ScimResource::User => USER_ATTRS,
        ScimResource::Group => GROUP_ATTRS,
    }
}

fn resolve(resource: ScimResource, path: &AttrPath) -> Result<&'static Attr, ScimError> {
    let found = attrs(resource).iter().find(|a| {
        path.attr.eq_ignore_ascii_case(a.name)
            && path
                .uri
                .as_deref()
                .is_none_or(|u| u.eq_ignore_ascii_case(a.schema))
    });
    found.ok_or_else(|| ScimError::invalid_filter(format!("unknown attribute {path}")))
}

fn sub_col(
    subs: &'static [(&'static str, Col)],
    owner: &AttrPath,
    sub: &str,
) -> Result<Col, ScimError> {
    subs.iter()
        .find(|(n, _)| sub.eq_ignore_ascii_case(n))
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            ScimError::invalid_filter(format!("{} has no sub-attribute {sub:?}", owner.attr))
        })
}

/// A WHERE clause and its parameters, in order of their `?`.
#[derive(Debug, Default)]
pub struct Where {
    pub sql: String,
    pub params: Vec<Value>,
}

enum Scope {
    Top(ScimResource),
    /// Inside `attr[...]`: paths name the sub-attributes.
    Sub(&'static [(&'static str, Col)]),
}

/// Translates a filter over `resource` into SQL over `users u` or `groups g`.
pub fn translate(resource: ScimResource, filter: &Filter) -> Result<Where, ScimError> {
    let mut w = Where::default();
    w.filter(filter, &Scope::Top(resource))?;
    Ok(w)
}

impl Where {
    fn push(&mut self, s: &str) {
        self.sql.push_str(s);
    }

    fn bind(&mut self, v: impl Into<Value>) {
        self.params.push(v.into());
    }

    fn filter(&mut self, f: &Filter, scope: &Scope) -> Result<(), ScimError> {
        match f {
            Filter::And(a, b) | Filter::Or(a, b) => {
                self.push("(");
                self.filter(a, scope)?;
                self.push(if matches!(f, Filter::And(..)) {
                    " AND "
                } else {
                    " OR "
                });
                self.filter(b, scope)?;
                self.push(")");
            }
            Filter::Not(a) => {
                self.push("NOT (");
                self.filter(a, scope)?;
                self.push(")");
            }
            Filter::Present(path) => self.condition(path, scope, None)?,
            Filter::Compare(path, op, v) => self.condition(path, scope, Some((*op, v)))?,
            Filter::ValuePath(path, inner) => {
                let Scope::Top(resource) = scope else {
                    return Err(ScimError::invalid_filter("value filters do not nest"));
                };
                let a = resolve(*resource, path)?;
                match a.target {
                    Target::Multi(rows, subs) if path.sub.is_none() => {
                        self.open_rows(rows);
                        self.filter(inner, &Scope::Sub(subs))?;
                        self.push("))");
                    }
                    Target::Never(why) => return Err(ScimError::invalid_filter(why)),
                    _ => {
                        return Err(ScimError::invalid_filter(format!(
                        "{path} is not multi-valued; a value filter needs a multi-valued attribute"
                    )))
                    }
                }
            }
        }
        Ok(())
    }

    fn open_rows(&mut self, rows: Rows) {
        match rows {
            Rows::Exists(from) => {
                self.push("EXISTS (SELECT 1 ");
                self.push(from);
                self.push(" AND (");
            }
            Rows::Guard(guard) => {
                self.push("(");
                self.push(guard);
                self.push(" AND (");
            }
            Rows::In { select, .. } => {
                self.push(select);
                self.push(" (");
            }
        }
    }

    /// `path pr` (`cmp` None) or `path op value`.
    fn condition(
        &mut self,
        path: &AttrPath,
        scope: &Scope,
        cmp: Option<(CompareOp, &Literal)>,
    ) -> Result<(), ScimError> {
        let target = match scope {
            Scope::Sub(subs) => {
                if path.uri.is_some() || path.sub.is_some() {
                    return Err(ScimError::invalid_filter(format!(
                        "{path}: inside a value filter, name a sub-attribute"
                    )));
                }
                return self.compare(sub_col(subs, path, &path.attr)?, path, cmp);
            }
            Scope::Top(resource) => resolve(*resource, path)?.target,
        };
        match target {
            Target::Never(why) => Err(ScimError::invalid_filter(why)),
            Target::Scalar(c) => {
                if path.sub.is_some() {
                    return Err(ScimError::invalid_filter(format!(
                        "{} has no sub-attributes",
                        path.attr
                    )));
                }
                self.compare(c, path, cmp)
            }
            Target::Complex(subs) => match (&path.sub, cmp) {
                (Some(s), _) => self.compare(sub_col(subs, path, s)?, path, cmp),
                (None, None) => {
                    // Present when any sub-attribute is.
                    self.push("(");
                    for (i, (_, c)) in subs.iter().enumerate() {
                        if i > 0 {
                            self.push(" OR ");
                        }
                        self.compare(*c, path, None)?;
                    }
                    self.push(")");
                    Ok(())
                }
                (None, Some(_)) => Err(ScimError::invalid_filter(format!(
                    "{} is complex; compare one of its sub-attributes",
                    path.attr
                ))),
            },
            Target::Multi(rows, subs) => {
                // `ne` on a multi-valued attribute: no value equals (as `not (… eq …)`).
                if let Some((CompareOp::Ne, lit)) = cmp {
                    if *lit != Literal::Null {
                        self.push("NOT ");
                        return self.condition(path, scope, Some((CompareOp::Eq, lit)));
                    }
                }
                self.open_rows(rows);
                match (&path.sub, cmp) {
                    (None, None) => self.push("TRUE"),
                    (sub, _) => {
                        let c = sub_col(subs, path, sub.as_deref().unwrap_or("value"))?;
                        self.compare(c, path, cmp)?;
                    }
                }
                self.push("))");
                Ok(())
            }
        }
    }

    fn compare(
        &mut self,
        c: Col,
        path: &AttrPath,
        cmp: Option<(CompareOp, &Literal)>,
    ) -> Result<(), ScimError> {
        let e = c.expr;
        let Some((op, lit)) = cmp else {
            self.push(&format!("({e} IS NOT NULL)"));
            return Ok(());
        };
        if *lit == Literal::Null {
            return match op {
                CompareOp::Eq | CompareOp::Ne => {
                    let not = if op == CompareOp::Ne { "NOT " } else { "" };
                    self.push(&format!("({e} IS {not}NULL)"));
                    Ok(())
                }
                _ => Err(ScimError::invalid_filter(format!(
                    "{path} {} null: null is compared with eq or ne only",
                    op.as_str()
                ))),
            };
        }
        if op == CompareOp::Ne {
            // Every comparison below is true or false, never NULL, so NOT is exact.
            self.push("NOT ");
            return self.compare(c, path, Some((CompareOp::Eq, lit)));
        }
        let guard = c.nullable;
        if guard {
            self.push(&format!("({e} IS NOT NULL AND "));
        }
        let sym = match op {
            CompareOp::Gt => ">",
            CompareOp::Ge => ">=",
            CompareOp::Lt => "<",
            CompareOp::Le => "<=",
            _ => "=",
        };
        let wrong = |what: &str| {
            Err(ScimError::invalid_filter(format!(
                "{path} {} needs {what}",
                op.as_str()
            )))
        };
        match c.ty {
            Ty::Bool => {
                let b = match lit {
                    Literal::Bool(b) => *b,
                    Literal::Str(s) if s.eq_ignore_ascii_case("true") => true,
                    Literal::Str(s) if s.eq_ignore_ascii_case("false") => false,
                    _ => return wrong("true or false"),
                };
                if op != CompareOp::Eq {
                    return Err(ScimError::invalid_filter(format!(
                        "{path} is boolean: eq, ne or pr only"
                    )));
                }
                self.push(&format!("({e} = ?)"));
                self.bind(b);
            }
            Ty::Time => {
                let Literal::Str(s) = lit else {
                    return wrong("a dateTime string");
                };
                let Some(t) = instant(s) else {
                    return Err(ScimError::invalid_filter(format!(
                        "{path}: {s:?} is not an RFC 3339 dateTime"
                    )));
                };
                if matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew) {
                    return Err(ScimError::invalid_filter(format!(
                        "{path} is a dateTime: eq, ne, gt, ge, lt, le or pr"
                    )));
                }
                self.push(&format!("(julianday({e}) {sym} julianday(?))"));
                self.bind(t);
            }
            Ty::Id => {
                let id = match lit {
                    Literal::Str(s) => s.parse::<i64>().ok(),
                    Literal::Num(n) => n.as_i64(),
                    Literal::Bool(_) | Literal::Null => return wrong("a string"),
                };
                match (op, id) {
                    (CompareOp::Co | CompareOp::Sw | CompareOp::Ew, _) => {
                        let text = literal_text(lit).unwrap_or_default();
                        self.string_op(&format!("CAST({e} AS TEXT)"), true, op, &text);
                    }
                    // An id that is not a number names nothing.
                    (_, None) => self.push("0"),
                    (_, Some(id)) => {
                        self.push(&format!("({e} {sym} ?)"));
                        self.bind(id);
                    }
                }
            }
            Ty::Str { exact } => {
                let Some(text) = literal_text(lit) else {
                    return wrong("a string");
                };
                self.string_op(e, exact, op, &text);
            }
        }
        if guard {
            self.push(")");
        }
        Ok(())
    }

    fn string_op(&mut self, e: &str, exact: bool, op: CompareOp, text: &str) {
        let nocase = if exact { "" } else { " COLLATE NOCASE" };
        match op {
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew if text.is_empty() => {
                self.push(&format!("({e} IS NOT NULL)"));
            }
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew if !exact => {
                let esc = like_escape(text);
                let pattern = match op {
                    CompareOp::Co => format!("%{esc}%"),
                    CompareOp::Sw => format!("{esc}%"),
                    _ => format!("%{esc}"),
                };
                self.push(&format!("({e} LIKE ? ESCAPE '\\')"));
                self.bind(pattern);
            }
            CompareOp::Co => {
                self.push(&format!("(instr({e}, ?) > 0)"));
                self.bind(text.to_string());
            }
            CompareOp::Sw => {
                self.push(&format!("(substr({e}, 1, length(?)) = ?)"));
                self.bind(text.to_string());
                self.bind(text.to_string());
            }
            CompareOp::Ew => {
                self.push(&format!("(substr({e}, -length(?)) = ?)"));
                self.bind(text.to_string());
                self.bind(text.to_string());
            }
            _ => {
                let sym = match op {
                    CompareOp::Gt => ">",
                    CompareOp::Ge => ">=",
                    CompareOp::Lt => "<",
                    CompareOp::Le => "<=",
                    _ => "=",
                };
                self.push(&format!("({e} {sym} ?{nocase})"));
                self.bind(text.to_string());
            }
        }
    }
}

fn literal_text(lit: &Literal) -> Option<String> {
    match lit {
        Literal::Str(s) => Some(s.clone()),
        Literal::Num(n) => Some(n.to_string()),
        _ => None,
    }
}

/// LIKE's wildcards and the escape character itself, escaped with `\`.
fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An RFC 3339 dateTime as UTC text SQLite's `julianday` reads, to the millisecond.
fn instant(s: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s, &Rfc3339).ok()?;
    let t = t.to_offset(time::UtcOffset::UTC);
    Some(format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    ))
}

/// The sort key: an attribute whose (first) value orders the results.
fn order_by(resource: ScimResource, path: &AttrPath) -> Result<String, ScimError> {
    let bad = || ScimError::invalid_value(format!("cannot sort by {path}"));
    let a = resolve(resource, path).map_err(|_| bad())?;
    let c = match a.target {
        Target::Scalar(c) if path.sub.is_none() => c,
        Target::Complex(subs) => {
            sub_col(subs, path, path.sub.as_deref().ok_or_else(bad)?).map_err(|_| bad())?
        }
        Target::Multi(rows, subs) => {
            let c =
                sub_col(subs, path, path.sub.as_deref().unwrap_or("value")).map_err(|_| bad())?;
            let e = match rows {
                Rows::Guard(_) => c.expr.to_string(),
                Rows::Exists(from)
                | Rows::In {
                    correlated: from, ..
                } => format!("(SELECT min({}) {from})", c.expr),
            };
            return Ok(with_collation(e, c.ty));
        }
        _ => return Err(bad()),
    };
    Ok(with_collation(c.expr.to_string(), c.ty))
}

fn with_collation(e: String, ty: Ty) -> String {
    match ty {
        Ty::Str { exact: false } => format!("{e} COLLATE NOCASE"),
        _ => e,
    }
}

/// What a list request asks for.
#[derive(Debug, Clone, Default)]
pub struct ScimQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrPath>,
    pub descending: bool,
    /// 1-based, as SCIM counts.
    pub start_index: u64,
    pub count: u64,
    /// Only users linked to, and groups of, this source (what a `scim-push` token sees).
    pub scope: Option<String>,
    /// Cursor paging (RFC 9865): rows after this id, in id order, one more than `count` to
    /// tell whether another page follows. `startIndex` is then not used.
    pub after: Option<i64>,
}

/// One user with everything its SCIM resource shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimUserRow {
    pub id: i64,
    pub username: String,
    pub full_name: Option<String>,
    pub email: Option<String>,
    pub personal_number: Option<String>,
    pub language: Option<String>,
    pub phone: Option<String>,
    pub notes: Option<String>,
    pub storage: Option<String>,
    pub active: bool,
    pub source: Option<String>,
    pub external_id: Option<String>,
    pub aliases: Vec<String>,
    pub cards: Vec<String>,
    /// (group id, path)
    pub groups: Vec<(i64, String)>,
    pub has_pin: bool,
    /// The PINs' argon2 hashes, only when asked for (a `replica` token): see
    /// [`Store::scim_pin_hashes`].
    pub pin_hashes: Option<Vec<String>>,
    pub created: String,
    pub updated: String,
    /// The record hash: with `active` and `updated`, the source of the version.
    pub hash: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScimGroupRow {
    pub id: i64,
    pub path: String,
    pub name: String,
    pub parent: Option<String>,
    pub external_id: Option<String>,
    pub source: Option<String>,
    /// (user id, username); None when not asked for (membership is not read at all).
    pub members: Option<Vec<(i64, String)>>,
}

const USER_COLUMNS: &str = "u.id, u.username, u.full_name, u.email, u.personal_number,
    u.language, u.phone, u.notes, u.storage, u.active,
    (SELECT name FROM sources WHERE id = u.source_id),
    (SELECT anchor FROM links WHERE user_id = u.id AND source_id = u.source_id),
    (SELECT json_group_array(name) FROM (SELECT name FROM names WHERE user_id = u.id AND alias = 1 ORDER BY name)),
    (SELECT json_group_array(card) FROM (SELECT card FROM cards WHERE user_id = u.id ORDER BY card)),
    (SELECT json_group_array(json_array(g.id, g.path)) FROM (SELECT g.id, g.path FROM memberships m JOIN groups g ON g.id = m.group_id WHERE m.user_id = u.id ORDER BY g.path) g),
    EXISTS (SELECT 1 FROM pins WHERE user_id = u.id),
    u.created_at, u.updated_at, u.hash";

fn user_row(r: &crate::store::db::Row) -> rusqlite::Result<ScimUserRow> {
    let list = |s: String| serde_json::from_str::<Vec<String>>(&s).unwrap_or_default();
    Ok(ScimUserRow {
        id: r.get(0)?,
        username: r.get(1)?,
        full_name: r.get(2)?,
        email: r.get(3)?,
        personal_number: r.get(4)?,
        language: r.get(5)?,
        phone: r.get(6)?,
        notes: r.get(7)?,
        storage: r.get(8)?,
        active: r.get(9)?,
        source: r.get(10)?,
        external_id: r.get(11)?,
        aliases: list(r.get(12)?),
        cards: list(r.get(13)?),
        groups: serde_json::from_str(&r.get::<_, String>(14)?).unwrap_or_default(),
        has_pin: r.get(15)?,
        pin_hashes: None,
        created: r.get(16)?,
        updated: r.get(17)?,
        hash: r.get(18)?,
    })
}

const MEMBERS: &str = "(SELECT json_group_array(json_array(u.id, u.username)) FROM (SELECT u.id, u.username FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.group_id = g.id ORDER BY u.username) u)";

fn group_row(r: &crate::store::db::Row, members: bool) -> rusqlite::Result<ScimGroupRow> {
    Ok(ScimGroupRow {
        id: r.get(0)?,
        path: r.get(1)?,
        name: r.get(2)?,
        parent: r.get(3)?,
        external_id: r.get(4)?,
        source: r.get(5)?,
        members: if members {
            Some(serde_json::from_str(&r.get::<_, String>(6)?).unwrap_or_default())
        } else {
            None
        },
    })
}

fn group_columns(members: bool) -> String {
    format!(
        "g.id, g.path, g.name, (SELECT path FROM groups WHERE id = g.parent_id), g.anchor,
         (SELECT name FROM sources WHERE id = g.source_id){}",
        if members {
            format!(", {MEMBERS}")
        } else {
            String::new()
        }
    )
}

impl Store {
    /// Fills in the PIN hashes of these users (for another roster pulling this one).
    pub fn scim_pin_hashes(&self, rows: &mut [ScimUserRow]) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT hash FROM pins WHERE user_id = ?1 ORDER BY fingerprint")?;
        for r in rows {
            r.pin_hashes = Some(
                stmt.query_map([r.id], |x| x.get(0))?
                    .collect::<rusqlite::Result<_>>()?,
            );
        }
        Ok(())
    }

    /// A page of users and how many the filter selects in all. A filter or sort key that
    /// cannot be answered is a [`ScimError`] inside the error.
    pub fn scim_users(&self, q: &ScimQuery) -> Result<(u64, Vec<ScimUserRow>)> {
        self.scim_list(
            ScimResource::User,
            q,
            USER_COLUMNS,
            "users u",
            "u.id",
            user_row,
        )
    }

    pub fn scim_user(&self, id: &str) -> Result<Option<ScimUserRow>> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {USER_COLUMNS} FROM users u WHERE u.id = ?1"),
                [id],
                user_row,
            )
            .optional()?)
    }

    /// A page of groups; their members only when `members` (otherwise the membership table
    /// is not read).
    pub fn scim_groups(&self, q: &ScimQuery, members: bool) -> Result<(u64, Vec<ScimGroupRow>)> {
        self.scim_list(
            ScimResource::Group,
            q,
            &group_columns(members),
            "groups g",
            "g.id",
            |r| group_row(r, members),
        )
    }

    pub fn scim_group(&self, id: &str, members: bool) -> Result<Option<ScimGroupRow>> {
        let Ok(id) = id.parse::<i64>() else {
            return Ok(None);
        };
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {} FROM groups g WHERE g.id = ?1",
                    group_columns(members)
                ),
                [id],
                |r| group_row(r, members),
            )
            .optional()?)
    }

    fn scim_list<T>(
        &self,
        resource: ScimResource,
        q: &ScimQuery,
        columns: &str,
        table: &str,
        id: &str,
        row: impl Fn(&crate::store::db::Row) -> rusqlite::Result<T>,
    ) -> Result<(u64, Vec<T>)> {
        let mut w = match &q.filter {
            Some(f) => translate(resource, f)?,
            None => Where {
                sql: "TRUE".into(),
                params: vec![],
            },
        };
        if let Some(scope) = &q.scope {
            w.sql = match resource {
                ScimResource::User => format!(
                    "({}) AND EXISTS (SELECT 1 FROM links pl JOIN sources ps ON ps.id = pl.source_id
                      WHERE pl.user_id = u.id AND ps.name = ?)",
                    w.sql
                ),
                ScimResource::Group => format!(
                    "({}) AND g.source_id = (SELECT id FROM sources WHERE name = ?)",
                    w.sql
                ),
            };
            w.params.push(Value::Text(scope.clone()));
        }
        let dir = if q.descending { "DESC" } else { "ASC" };
        let order = match &q.sort_by {
            Some(p) => format!("{} {dir}, {id}", order_by(resource, p)?),
            None => id.to_string(),
        };
        let count_sql = format!("SELECT count(*) FROM {table} WHERE {}", w.sql);
        let count_params = w.params.clone();
        let count = || -> Result<u64> {
            Ok(self
                .conn
                .prepare_cached(&count_sql)?
                .query_row(&count_params, |r| r.get(0))?)
        };
        if q.count == 0 {
            return Ok((count()?, vec![]));
        }
        let mut params = w.params;
        let (sql, order) = match q.after {
            // A keyset: no OFFSET to walk, however deep the page.
            Some(after) => {
                params.push(Value::Integer(after));
                (format!("({}) AND {id} > ?", w.sql), id.to_string())
            }
            None => (w.sql, order),
        };
        let limit = q.count + u64::from(q.after.is_some());
        params.push(Value::Integer(limit.min(i64::MAX as u64) as i64));
        let offset = match q.after {
            Some(_) => 0,
            None => q.start_index.saturating_sub(1),
        };
        params.push(Value::Integer(offset.min(i64::MAX as u64) as i64));
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {columns} FROM {table} WHERE {sql} ORDER BY {order} LIMIT ? OFFSET ?"
        ))?;
        let rows = stmt
            .query_map(&params, row)?
            .collect::<Result<Vec<_>, _>>()?;
        // A first page that is not full holds every match: no count needed (a lookup by
        // userName is one query, not two). A later page that is not full, and not empty,
        // ends the matches too.
        let first = q.after.is_none_or(|a| a == 0);
        let short = (rows.len() as u64) < limit;
        let total = match (q.after, short) {
            (Some(_), true) if first => rows.len() as u64,
            (None, true) if offset == 0 || !rows.is_empty() => offset + rows.len() as u64,
            _ => count()?,
        };
        Ok((total, rows))
    }
}

#[cfg(test)]
#[path = "scim_tests.rs"]
mod tests;

#[cfg(test)]
impl Store {
    /// A few users and groups for the SCIM tests outside the store.
    pub(crate) fn scim_fixture_for_tests(&self) {
        tests::fill(self)
    }
}
