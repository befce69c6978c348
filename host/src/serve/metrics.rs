//! `/metrics`: the Prometheus text format, from prometheus-client.

use crate::store::Status;
use crate::sync::SourceResult;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

type Labels = Vec<(&'static str, String)>;
type FloatGauge = Gauge<f64, AtomicU64>;

pub struct Metrics {
    registry: Registry,
    runs: Family<Labels, Counter>,
    last_success: Family<Labels, FloatGauge>,
    last_run: Family<Labels, FloatGauge>,
    duration: Family<Labels, Histogram>,
    changes: Family<Labels, Counter>,
    in_progress: Family<Labels, Gauge>,
    guard_tripped: Family<Labels, Counter>,
    users: Family<Labels, Gauge>,
    http: Family<Labels, Counter>,
}

fn duration_histogram() -> Histogram {
    // 0.05 s to about 14 min.
    Histogram::new(exponential_buckets(0.05, 2.0, 15))
}

impl Metrics {
    pub fn new(sources: impl Iterator<Item = String>) -> Metrics {
        let mut registry = Registry::default();
        let m = Metrics {
            runs: Family::default(),
            last_success: Family::default(),
            last_run: Family::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            changes: Family::default(),
            in_progress: Family::default(),
            guard_tripped: Family::default(),
            users: Family::default(),
            http: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "roster_sync_runs",
            "Runs by source and status",
            m.runs.clone(),
        );
        registry.register(
            "roster_sync_last_success_timestamp_seconds",
            "When the source's last successful run ended (Unix time)",
            m.last_success.clone(),
        );
        registry.register(
            "roster_sync_last_run_timestamp_seconds",
            "When the source's last run ended (Unix time)",
            m.last_run.clone(),
        );
        registry.register(
            "roster_sync_duration_seconds",
            "How long runs took",
            m.duration.clone(),
        );
        registry.register(
            "roster_sync_changes",
            "Users changed by runs, by action",
            m.changes.clone(),
        );
        registry.register(
            "roster_sync_in_progress",
            "1 while a run of the source is in progress",
            m.in_progress.clone(),
        );
        registry.register(
            "roster_deletion_guard_tripped",
            "Runs the max_deletions guard stopped",
            m.guard_tripped.clone(),
        );
        registry.register(
            "roster_users",
            "Users in the database by state",
            m.users.clone(),
        );
        registry.register(
            "roster_http_requests",
            "HTTP requests answered, by method and status",
            m.http.clone(),
        );
        // Every configured source shows up at once, not only after its first run.
        for s in sources {
            m.in_progress.get_or_create(&source(&s)).set(0);
        }
        Metrics { registry, ..m }
    }

    pub fn started(&self, src: &str) {
        self.in_progress.get_or_create(&source(src)).set(1);
    }

    pub fn finished(&self, r: &SourceResult, seconds: f64) {
        let s = source(&r.source);
        self.in_progress.get_or_create(&s).set(0);
        let mut with_status = s.clone();
        with_status.push(("status", r.status.to_string()));
        self.runs.get_or_create(&with_status).inc();
        let now = now_seconds();
        self.last_run.get_or_create(&s).set(now);
        if r.status == Status::Ok {
            self.last_success.get_or_create(&s).set(now);
        }
        if r.status == Status::Aborted && !r.dry_run {
            self.guard_tripped.get_or_create(&s).inc();
        }
        self.duration.get_or_create(&s).observe(seconds);
        if r.status == Status::Ok && !r.dry_run {
            let c = &r.counts;
            for (action, n) in [
                ("created", c.created),
                ("updated", c.updated),
                ("deactivated", c.deactivated),
                ("reactivated", c.reactivated),
                ("deleted", c.deleted),
                ("failed", c.failed),
            ] {
                let mut l = s.clone();
                l.push(("action", action.to_string()));
                self.changes.get_or_create(&l).inc_by(n);
            }
        }
    }

    /// A run that ended without a result (it never began).
    pub fn finished_nothing(&self, src: &str) {
        self.in_progress.get_or_create(&source(src)).set(0);
    }

    pub fn request(&self, method: &str, status: u16) {
        let l = vec![
            ("method", method.to_string()),
            ("status", status.to_string()),
        ];
        self.http.get_or_create(&l).inc();
    }

    /// The text exposition, with the user counts read just now.
    pub fn render(&self, active: u64, inactive: u64) -> String {
        for (state, n) in [("active", active), ("inactive", inactive)] {
            (self
                .users
                .get_or_create(&vec![("state", state.to_string())]))
            .set(n as i64);
        }
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String");
        out
    }
}

fn source(s: &str) -> Labels {
    vec![("source", s.to_string())]
}

fn now_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}
