//! One buffer per search page (`next-page-packed`): a page of a large directory as
//! per-value lists costs a call into the guest's allocator per value.

use super::LdapEntry;

/// A page in the contract's packed layout (see `next-page-packed` in wit/host.wit): u32
/// little-endian counts and lengths, entries → attributes → values.
pub(super) fn pack_page(entries: &[LdapEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + entries.iter().map(super::size).sum::<usize>());
    let put = |out: &mut Vec<u8>, n: usize| {
        // Pages are capped far below 4 GiB (64 MiB per batch).
        out.extend_from_slice(&u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes())
    };
    put(&mut out, entries.len());
    for e in entries {
        put(&mut out, e.dn.len());
        out.extend_from_slice(e.dn.as_bytes());
        put(&mut out, e.attributes.len());
        for a in &e.attributes {
            put(&mut out, a.name.len());
            out.extend_from_slice(a.name.as_bytes());
            put(&mut out, a.values.len());
            for v in &a.values {
                put(&mut out, v.len());
                out.extend_from_slice(v);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::roster::plugin::ldap::LdapAttribute;

    #[test]
    fn a_page_packs_as_the_contract_documents() {
        let entries = [LdapEntry {
            dn: "a".into(),
            attributes: vec![LdapAttribute {
                name: "b".into(),
                values: vec![vec![0xff], vec![]],
            }],
        }];
        let le = |n: u32| n.to_le_bytes().to_vec();
        let want = [
            le(1),
            le(1),
            b"a".to_vec(),
            le(1),
            le(1),
            b"b".to_vec(),
            le(2),
            le(1),
            vec![0xff],
            le(0),
        ]
        .concat();
        assert_eq!(pack_page(&entries), want);
        assert_eq!(pack_page(&[]), le(0));
    }
}
