//! Where a source's groups sit in roster's tree: the path (`Staff|IT`) a sync stores for each,
//! computed in one place for the store and for `plugin test`.

use std::collections::HashMap;

/// Each group's path, sorted by path. `groups` maps an anchor to its name and explicit
/// parent; without one, a group's parent is the first group (by anchor) that lists it as a
/// member in `edges` (group, member), which must come sorted. A cycle or an unknown parent
/// ends the walk at a root.
pub fn paths(
    mut groups: HashMap<String, (String, Option<String>)>,
    edges: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    for (parent, child) in edges {
        if parent != child && groups.contains_key(&parent) {
            if let Some((_, p @ None)) = groups.get_mut(&child) {
                *p = Some(parent);
            }
        }
    }
    let mut paths: Vec<(String, String)> = Vec::with_capacity(groups.len());
    for anchor in groups.keys() {
        let mut chain = vec![groups[anchor].0.clone()];
        let mut seen = vec![anchor.as_str()];
        let mut at = anchor.as_str();
        while let Some(p) = groups[at]
            .1
            .as_deref()
            .filter(|p| groups.contains_key(*p) && !seen.contains(p))
        {
            chain.push(groups[p].0.clone());
            seen.push(p);
            at = p;
        }
        chain.reverse();
        paths.push((anchor.clone(), chain.join("|")));
    }
    paths.sort_by(|a, b| a.1.cmp(&b.1));
    paths
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(name: &str, parent: Option<&str>) -> (String, Option<String>) {
        (name.into(), parent.map(String::from))
    }

    #[test]
    fn a_path_runs_from_the_root_by_parent_or_membership() {
        let groups: HashMap<_, _> = [
            ("s".to_string(), group("Staff", None)),
            ("i".to_string(), group("IT", Some("s"))),
            ("o".to_string(), group("Ops", None)),
            ("l".to_string(), group("Loop", Some("l"))),
        ]
        .into();
        let edges = [("a-unknown", "o"), ("i", "o"), ("s", "o")]
            .map(|(g, m)| (g.to_string(), m.to_string()));
        assert_eq!(
            paths(groups, edges),
            [
                ("l".into(), "Loop".into()),
                ("s".into(), "Staff".into()),
                ("i".into(), "Staff|IT".into()),
                ("o".into(), "Staff|IT|Ops".into()),
            ] as [(String, String); 4]
        );
    }
}
