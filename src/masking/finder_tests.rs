use super::*;

const ALIAS: &str = "c2db2cdaaba1ba2f6171492a5c6accf5@ct.test";

fn map() -> AliasMap {
    AliasMap::from([("sac@acme-store.com".to_string(), ALIAS.to_string())])
}

fn replaced(raw: &str) -> String {
    String::from_utf8(replace(raw.as_bytes(), &map())).unwrap()
}

#[test]
fn spellings_a_reader_still_recognises_are_hits() {
    for (raw, want) in [
        ("sac@acme-store.com", ALIAS.to_string()),
        ("SAC@Acme-Store.COM", ALIAS.to_string()),
        ("<\"sac\"@acme-store.com>", format!("<{ALIAS}>")),
        ("\"s\\ac\"@acme-store.com", ALIAS.to_string()),
        ("sac @ acme-store.com", ALIAS.to_string()),
        ("sac(comment) @\r\n acme-store . com", ALIAS.to_string()),
        ("sac\\@acme-store.com", ALIAS.to_string()),
        (
            "mailto:sac%40acme-store.com",
            format!("mailto:{}", ALIAS.replace('@', "%40")),
        ),
        (
            "utf-8''%73ac%40acme%2Dstore.com",
            format!("utf-8''{}", ALIAS.replace('@', "%40")),
        ),
        ("user='sac@acme-store.com'", format!("user='{ALIAS}'")),
        ("Mr. sac@acme-store.com. Next", format!("Mr. {ALIAS}. Next")),
        ("for <sac@acme-store.com>;", format!("for <{ALIAS}>;")),
    ] {
        assert_eq!(replaced(raw), want, "{raw}");
    }
}

#[test]
fn addresses_encoded_in_another_are_replaced_whole() {
    assert_eq!(
        replaced("<bounces+sac=acme-store.com@esp.example>"),
        format!("<{ALIAS}>")
    );
    assert_eq!(
        replaced("SRS0=AbCd=XY=acme-store.com=sac@fwd.example"),
        ALIAS.to_string()
    );
}

#[test]
fn file_names_may_go_on_after_the_domain() {
    for (name, want) in [
        ("sac@acme-store.com.pdf", format!("{ALIAS}.pdf")),
        (
            "coleta-sac@acme-store.com.pdf",
            format!("coleta-{ALIAS}.pdf"),
        ),
    ] {
        assert!(find_in(name.as_bytes(), &map(), Context::Field).is_empty());
        let got = replace_in(name.as_bytes(), &map(), Context::FileName);
        assert_eq!(String::from_utf8(got).unwrap(), want);
    }
    // Letters before it still make it another mailbox.
    let other = b"xsac@acme-store.com.pdf";
    assert_eq!(replace_in(other, &map(), Context::FileName), other);
}

/// Found by the header_mask fuzz target: the second address's local
/// part, read backwards, ran into the first hit.
#[test]
fn hits_that_overlap_become_one() {
    let raw = "SRS0=ab=acme-store.com=sac@fwd.\u{95}+sac=acme-store.com@esp.example";
    assert_eq!(replaced(raw), ALIAS);
}

#[test]
fn other_mailboxes_are_not_hits() {
    for raw in [
        "xsac@acme-store.com",
        "john.sac@acme-store.com",
        "sac@acme-store.com.br",
        "sac@xacme-store.com",
        "sac+tag@acme-store.com",
        "sac@acme-store.com-4e81816628b36.ct.test",
        "john sac\"@acme-store.com",
        "bounces+xsac=acme-store.com@esp.example",
        "@acme-store.com",
        "sac@",
    ] {
        assert_eq!(replaced(raw), raw, "{raw}");
    }
}

#[test]
fn unbalanced_quotes_comments_and_long_runs_cost_little_and_do_not_panic() {
    for raw in [
        "\"@", "(@)", ")@(", "\\@", "%4", "%40", "\"\"@\"", "a.@.b", "..@..", "@@@@",
    ] {
        let _ = replaced(raw);
    }
    let long = format!("{}@{}", "a".repeat(10_000), "b.".repeat(10_000));
    assert_eq!(replaced(&long), long);
    let many = "(@".repeat(20_000);
    assert_eq!(replaced(&many), many);
}
