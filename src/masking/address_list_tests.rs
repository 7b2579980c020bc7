use super::*;

fn one(value: &str) -> Mailbox {
    let items = parse(value.as_bytes());
    match items.as_slice() {
        [Item::Mailbox(m)] => m.clone(),
        other => panic!("{value:?}: {other:?}"),
    }
}

fn addr(value: &str) -> Option<String> {
    one(value).address.map(|a| a.plain())
}

#[test]
fn modern_forms() {
    let m = one(" \"Doe, John\" <John.Doe@Example.com>");
    assert_eq!(m.name.as_deref(), Some("Doe, John"));
    assert_eq!(m.address.unwrap().plain(), "John.Doe@Example.com");
    assert_eq!(
        addr(" sac@acme-store.com"),
        Some("sac@acme-store.com".into())
    );
    let m = one(" =?UTF-8?Q?Jo=C3=A3o?= =?UTF-8?Q?_Silva?= <j@x.test>");
    assert_eq!(m.name.as_deref(), Some("João Silva"));
}

#[test]
fn obsolete_and_quoted_forms() {
    assert_eq!(addr(" \"qa1\"@example.net"), Some("qa1@example.net".into()));
    assert_eq!(
        addr(" sac @ acme-store.com"),
        Some("sac@acme-store.com".into())
    );
    assert_eq!(
        addr(" sac(x)@(y)acme-store.com"),
        Some("sac@acme-store.com".into())
    );
    // Words apart from each other are not one local part.
    let m = one(" Mr. sac@acme-store.com");
    assert_eq!(
        (m.name.as_deref(), m.address.map(|a| a.plain())),
        (Some("Mr."), Some("sac@acme-store.com".into()))
    );
    assert_eq!(
        addr(" <@relay.test,@b.test:sac@acme-store.com>"),
        Some("sac@acme-store.com".into())
    );
    assert_eq!(addr(" john.\"doe\"@x.test"), Some("john.doe@x.test".into()));
    let m = one(" sac@acme-store.com (ACME Store)");
    assert_eq!(m.name.as_deref(), Some("ACME Store"));
    assert_eq!(
        AddrSpec {
            local: "a b".into(),
            domain: "x.test".into()
        }
        .render(),
        "\"a b\"@x.test"
    );
}

#[test]
fn broken_pieces_are_read_on() {
    // Unterminated quote and comment lose their opening character.
    let m = one(" \"ACME <sac@acme-store.com>");
    assert_eq!(
        (m.name.as_deref(), addr(" \"ACME <sac@acme-store.com>")),
        (Some("ACME"), Some("sac@acme-store.com".into()))
    );
    assert_eq!(
        addr(" (ACME <sac@acme-store.com>"),
        Some("sac@acme-store.com".into())
    );
    // No closing angle bracket.
    assert_eq!(
        addr(" ACME <sac@acme-store.com"),
        Some("sac@acme-store.com".into())
    );
    // Two addr-specs with no comma between them.
    let items = parse(b" a@b.test c@d.test");
    let got: Vec<_> = mailboxes(&items)
        .filter_map(|m| m.address.clone())
        .map(|a| a.plain())
        .collect();
    assert_eq!(got, ["a@b.test", "c@d.test"]);
}

#[test]
fn groups() {
    let items = parse(b" Team: a@b.test, \"C\" <c@d.test>;, e@f.test");
    assert_eq!(items.len(), 2);
    match &items[0] {
        Item::Group { name, members } => {
            assert_eq!(name, "Team");
            assert_eq!(members.len(), 2);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        parse(b" undisclosed-recipients:;"),
        vec![Item::Group {
            name: "undisclosed-recipients".into(),
            members: vec![]
        }]
    );
}

#[test]
fn anything_parses_without_panic() {
    for v in [
        "",
        ",,,",
        "<",
        ">",
        "@",
        "\"",
        "(",
        ")",
        ":;",
        "a:b:c;",
        "<<<a@b>>>",
        "[",
        "[a@b]",
        "\\",
        "=?",
        "a@",
        "@b",
        ".@.",
        "<@:@>",
    ] {
        let _ = parse(v.as_bytes());
    }
}
