//! Configured sources as an admin inspects them: their last runs, and a live test that maps
//! one sample user without writing anything.

use crate::config::Config;
use crate::mapping::Mapper;
use crate::runtime::{PluginInfo, Runtime, TestReport};
use crate::store::{Status, Store};
use anyhow::{anyhow, Result};

/// One configured source and what the database knows of it.
#[derive(Debug)]
pub struct Summary {
    pub name: String,
    pub plugin: String,
    pub active_users: u64,
    pub all_users: u64,
    pub last_run: Option<LastRun>,
}

#[derive(Debug, Clone)]
pub struct LastRun {
    pub id: i64,
    pub status: Status,
    pub started: String,
}

/// Every configured source, in config order. A database that does not exist yet is not
/// created.
pub fn list(cfg: &Config) -> Result<Vec<Summary>> {
    let store = (crate::store::Store::exists(&cfg.database))
        .then(|| Store::open(&cfg.database))
        .transpose()?;
    let runs = (store.as_ref().map(|st| st.runs()))
        .transpose()?
        .unwrap_or_default();
    let mut out = Vec::new();
    for s in &cfg.sources {
        let (active_users, all_users) = match &store {
            Some(st) => st.source_counts(&s.name)?,
            None => (0, 0),
        };
        // Runs come newest first.
        let last_run = (runs.iter().find(|r| r.source == s.name)).map(|r| LastRun {
            id: r.id,
            status: r.status,
            started: r.started.clone(),
        });
        out.push(Summary {
            name: s.name.clone(),
            plugin: s.plugin.clone(),
            active_users,
            all_users,
            last_run,
        });
    }
    Ok(out)
}

/// What `test` found.
#[derive(Debug)]
pub struct Tested {
    pub info: PluginInfo,
    pub report: TestReport,
    /// The plugin's sample user as roster would map it.
    pub sample: Option<Sample>,
}

#[derive(Debug)]
pub enum Sample {
    /// The mapped user's fields in record order, PIN fingerprints left out.
    Mapped {
        fields: Vec<(String, serde_json::Value)>,
        has_pin: bool,
    },
    /// The sample entry (by id) does not map, and why.
    Unmapped { id: String, reason: String },
}

/// Connects, authenticates and counts through the source's plugin, and maps its sample user.
pub fn test(cfg: &Config, rt: &Runtime, name: &str) -> Result<Tested> {
    let src = cfg.source(name)?;
    let store = (crate::store::Store::exists(&cfg.database))
        .then(|| Store::open(&cfg.database))
        .transpose()?;
    let mut p = crate::session::prepare(cfg, src, store.as_ref(), rt)?;
    // A mapping that cannot be built fails before the source is contacted. A fixed PIN
    // key: the sample's fingerprints are never stored or shown.
    // Reported as before the typed config errors: by its message alone, exit code 1.
    let lowercase = (src.options(&p.info.defaults))
        .map_err(|e| anyhow!(e.message))?
        .lowercase_usernames;
    let mapper = Mapper::new(&src.map, lowercase, b"sample".to_vec())?;
    let report = (p.plugin.test(&p.config_json)).map_err(|e| anyhow!("{name}: {}", e.message()))?;
    let sample = match &report.sample {
        None => None,
        Some(obj) => Some(match mapper.map(obj) {
            Ok(m) => {
                let mut rec = m.record;
                let has_pin = !rec.pins.is_empty();
                rec.pins.clear();
                let serde_json::Value::Object(map) = serde_json::to_value(&rec)? else {
                    unreachable!("a record serialises to an object");
                };
                let fields = map.into_iter().filter(|(k, _)| k != "pins").collect();
                Sample::Mapped { fields, has_pin }
            }
            Err(reason) => Sample::Unmapped {
                id: obj.id.clone(),
                reason,
            },
        }),
    };
    Ok(Tested {
        info: p.info,
        report,
        sample,
    })
}
