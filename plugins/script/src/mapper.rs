//! The mapping role: a script's `fn map(entry)` over each user a source sends. It returns
//! the entry (changed or not) to keep it, or `()` to drop it.

use crate::engine;
use crate::values::{from_map, to_map};
use crate::{Attributes, Host};
use rhai::{CallFnOptions, Dynamic, Engine, Map, Scope, AST};
use std::rc::Rc;

/// What `init` receives: the script as the host read it, and its limits.
#[derive(Debug)]
pub struct Settings {
    /// The script's file name, for messages.
    pub name: String,
    pub script: String,
    pub max_operations: u64,
    /// Only compile (`roster script check`): no `fn map` needed, nothing runs.
    pub check: bool,
}

impl Settings {
    pub fn from_json(config: &str) -> Result<Settings, String> {
        let v: serde_json::Value =
            serde_json::from_str(config).map_err(|e| format!("mapping config: {e}"))?;
        let text = |k: &str| v.get(k).and_then(|s| s.as_str()).map(str::to_string);
        Ok(Settings {
            name: text("name").unwrap_or_else(|| "script".into()),
            script: text("script").ok_or("mapping config: `script` (the text) is missing")?,
            max_operations: (v.get("max_operations").and_then(|n| n.as_u64()))
                .unwrap_or(engine::MAPPING_OPERATIONS),
            check: v.get("check").and_then(|b| b.as_bool()).unwrap_or(false),
        })
    }
}

/// A compiled mapping script with its top-level state (constants, tables it read once).
pub struct Mapper {
    engine: Engine,
    ast: AST,
    scope: Scope<'static>,
    name: String,
}

impl Mapper {
    /// Compiles the script, checks it defines `fn map(entry)` and runs its top level once.
    pub fn new(host: Rc<dyn Host>, s: &Settings) -> Result<Mapper, String> {
        let engine = engine::new(host, s.max_operations);
        let ast = engine::compile(&engine, &s.name, &s.script)?;
        if !ast
            .iter_functions()
            .any(|f| f.name == "map" && f.params.len() == 1)
        {
            return Err(format!(
                "{}: a mapping script must define `fn map(entry)`, returning the entry or () to drop it",
                s.name
            ));
        }
        let mut scope = Scope::new();
        engine
            .run_ast_with_scope(&mut scope, &ast)
            .map_err(|e| engine::describe(&s.name, *e))?;
        Ok(Mapper {
            engine,
            ast,
            scope,
            name: s.name.clone(),
        })
    }

    /// Maps a batch: one result per entry, in order. (Running the whole batch in one Rhai
    /// call, with warm function caches, measured no faster: the script's own work dominates.)
    pub fn map_batch(&mut self, batch: Vec<Attributes>) -> Vec<Result<Option<Attributes>, String>> {
        batch.into_iter().map(|a| self.map(a)).collect()
    }

    /// Maps one entry's attributes: `Some` to keep, `None` to drop, an error for this entry.
    pub fn map(&mut self, attributes: Attributes) -> Result<Option<Attributes>, String> {
        let entry = Dynamic::from_map(to_map(attributes));
        let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
        let out: Dynamic = self
            .engine
            .call_fn_with_options(options, &mut self.scope, &self.ast, "map", (entry,))
            .map_err(|e| {
                // Rhai gives some errors (an empty endless loop) no position.
                let m = engine::describe(&self.name, *e);
                if m.starts_with(&format!("{}: ", self.name)) {
                    format!("{m} (in map)")
                } else {
                    m
                }
            })?;
        if out.is_unit() {
            return Ok(None);
        }
        if !out.is_map() {
            return Err(format!(
                "{}: map() must return the entry (a map) or () to drop it, not {}",
                self.name,
                out.type_name()
            ));
        }
        let map: Map = out.cast();
        from_map(map)
            .map(Some)
            .map_err(|e| format!("{}: map() returned {e}", self.name))
    }
}

/// Compiles a script without running it: `roster script check`.
pub fn check(host: Rc<dyn Host>, name: &str, text: &str) -> Result<(), String> {
    let engine = engine::new(host, 0);
    engine::compile(&engine, name, text).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::tests::FakeHost;

    const MAP: &str = r#"
        const SERVICE = ["svc-backup", "svc-print"];
        fn map(entry) {
            if entry.username in SERVICE || entry.username.starts_with("svc-") { return (); }
            entry.username = entry.username.to_lower();
            entry.aliases = [`${entry.given}.${entry.sn}`.to_lower()];
            entry
        }
    "#;

    fn mapper(script: &str) -> Result<Mapper, String> {
        let s = Settings {
            name: "map.rhai".into(),
            script: script.into(),
            max_operations: 10_000,
            check: false,
        };
        Mapper::new(Rc::new(FakeHost::default()), &s)
    }

    fn attrs(pairs: &[(&str, &str)]) -> Attributes {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
            .collect()
    }

    fn get<'a>(a: &'a Attributes, k: &str) -> &'a [String] {
        &a.iter().find(|(n, _)| n == k).unwrap().1
    }

    #[test]
    fn keeps_changes_and_drops() {
        let mut m = mapper(MAP).unwrap();
        let out = m
            .map(attrs(&[
                ("username", "JDoe"),
                ("given", "Jane"),
                ("sn", "Doe"),
            ]))
            .unwrap()
            .unwrap();
        assert_eq!(get(&out, "username"), ["jdoe"]);
        assert_eq!(get(&out, "aliases"), ["jane.doe"]);
        assert!(m
            .map(attrs(&[("username", "svc-backup")]))
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_runtime_error_is_this_entry_s_with_its_position() {
        let mut m = mapper(MAP).unwrap();
        // No `given`: `()` has no to_lower... it renders as "", so use a real failure.
        let mut m2 = mapper("fn map(e) {\n  e.username.to_lower() + e.missing.len()\n}").unwrap();
        let e = m2.map(attrs(&[("username", "x")])).unwrap_err();
        assert!(e.starts_with("map.rhai:2:"), "{e}");
        // The mapper goes on with the next entry.
        assert!(m
            .map(attrs(&[("username", "a"), ("given", "A"), ("sn", "B")]))
            .is_ok());
    }

    #[test]
    fn the_operation_limit_is_per_entry() {
        let mut m = mapper("fn map(e) { let n = 0; for i in 0..500 { n += i; } e }").unwrap();
        for _ in 0..100 {
            assert!(m.map(attrs(&[("username", "x")])).unwrap().is_some());
        }
        let mut m = mapper("fn map(e) {\n  let n = 0;\n  loop { n += 1; }\n}").unwrap();
        let e = m.map(attrs(&[("username", "x")])).unwrap_err();
        // Rhai reports the operation limit inside a called function without a position.
        assert!(e.starts_with("map.rhai: too many operations"), "{e}");
        assert!(e.ends_with("(in map)"), "{e}");
    }

    #[test]
    fn a_batch_maps_in_order_and_isolates_a_failing_entry() {
        let mut m = mapper(
            "fn map(e) {\n  if e.username == \"bad\" { throw \"no\"; }\n  if e.username == \"drop\" { return (); }\n  e\n}",
        )
        .unwrap();
        let names = ["a", "bad", "drop", "b"];
        let out = m.map_batch(names.iter().map(|n| attrs(&[("username", n)])).collect());
        assert_eq!(out.len(), 4);
        assert_eq!(
            get(out[0].as_ref().unwrap().as_ref().unwrap(), "username"),
            ["a"]
        );
        let e = out[1].as_ref().unwrap_err();
        assert!(e.starts_with("map.rhai:2:") && e.contains("no"), "{e}");
        assert!(out[2].as_ref().unwrap().is_none());
        assert!(out[3].as_ref().unwrap().is_some());
    }

    #[test]
    fn a_script_without_map_or_returning_nonsense_is_refused() {
        let e = mapper("let x = 1;").err().unwrap();
        assert!(e.contains("must define `fn map(entry)`"), "{e}");
        let mut m = mapper("fn map(e) { 42 }").unwrap();
        let e = m.map(attrs(&[("username", "x")])).unwrap_err();
        assert!(e.contains("not i64"), "{e}");
    }

    #[test]
    fn check_compiles_only() {
        let host: Rc<dyn Host> = Rc::new(FakeHost::default());
        assert!(check(host.clone(), "a.rhai", "loop {}").is_ok());
        let e = check(host, "a.rhai", "fn map(e) {\n  e.x = ;\n}").unwrap_err();
        assert!(e.starts_with("a.rhai:2:9:"), "{e}");
    }

    #[test]
    fn settings_from_json() {
        let s = Settings::from_json(r#"{"name":"m.rhai","script":"fn map(e) { e }"}"#).unwrap();
        assert_eq!(s.max_operations, crate::engine::MAPPING_OPERATIONS);
        assert!(Settings::from_json("{}").is_err());
    }
}
