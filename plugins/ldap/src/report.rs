//! What `roster sources test` shows for an LDAP source.

use crate::config::{Settings, Tracking};
use crate::entry;
use crate::run::{subtree, Directory, Pages};
use crate::Error;

/// What `roster sources test` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub users: u64,
    pub groups: Option<u64>,
    /// The first user: its columns, values, id and DN.
    pub sample: Option<(Vec<String>, entry::UserRow, String)>,
    pub messages: Vec<String>,
}

/// Counts what the config would read (before the `groups` scope) and picks a sample user.
pub fn test<D: Directory>(dir: &D, settings: &Settings, bases: &[String]) -> Result<Report, Error> {
    let mut messages = vec![format!(
        "profile {}, base {}",
        settings.profile.name(),
        bases.join("; ")
    )];
    if settings.tracking == Tracking::Timestamp {
        let offered = dir
            .root_dse(&["supportedControl".to_string()])
            .is_ok_and(|dse| crate::sync::offered(&dse));
        messages.push(
            if offered && settings.anchor.eq_ignore_ascii_case("entryUUID") {
                "delta runs: content synchronization (RFC 4533), deletions included"
            } else {
                "delta runs: modifyTimestamp (no content synchronization), deletions at full runs"
            }
            .to_string(),
        );
    }
    let mut search = dir.search(&subtree(
        settings.user_filter.clone(),
        settings.user_request(),
        settings.page_size,
    ))?;
    let (mut users, mut disabled, mut failed) = (0u64, 0u64, 0u64);
    let mut sample = None;
    while let Some(page) = search.next_page()? {
        let columns = entry::columns(settings, &page);
        for e in &page {
            match entry::user_row(e, settings, &columns) {
                Err(_) => failed += 1,
                Ok(row) if row.disabled && !settings.include_disabled => disabled += 1,
                Ok(row) => {
                    users += 1;
                    sample.get_or_insert_with(|| (columns.clone(), row, e.dn.clone()));
                }
            }
        }
    }
    drop(search);
    if disabled > 0 {
        messages.push(format!(
            "{disabled} disabled accounts are left out (include_disabled)"
        ));
    }
    if failed > 0 {
        messages.push(format!("entries without a username or anchor: {failed}"));
    }
    let mut groups = None;
    if !settings.group_filter.is_empty() {
        let mut search = dir.search(&subtree(
            settings.group_filter.clone(),
            vec!["1.1".to_string()],
            settings.page_size,
        ))?;
        let mut n = 0u64;
        while let Some(page) = search.next_page()? {
            n += page.len() as u64;
        }
        groups = Some(n);
    }
    if !settings.groups.is_empty() {
        messages.push("users are counted before the groups scope is applied".to_string());
    }
    Ok(Report {
        users,
        groups,
        sample,
        messages,
    })
}
