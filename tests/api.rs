//! The HTTP API over real HTTP: auth, store-limited tokens, malformed input,
//! idempotency, and every endpoint.

mod common;

use common::http::{get, request, send_json};
use common::{relay_and_sink, Backend, SmtpClient, ACME_TOKEN, ADMIN_TOKEN};

const ADMIN: Option<&str> = Some(ADMIN_TOKEN);
const ACME: Option<&str> = Some(ACME_TOKEN);

async fn auth_and_health(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let health = get(relay.api, "/healthz", None).await;
    assert_eq!(
        (health.status, health.json()["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = get(relay.api, "/readyz", None).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["database"], true);

    for token in [None, Some("wrong-token-wrong-token")] {
        let r = get(relay.api, "/v1/stores/acme/settings", token).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"], "unauthorized");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    }
    let r = get(relay.api, "/v1/nothing/here", ADMIN).await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (404, Some("not_found"))
    );
    let r = request(
        relay.api,
        "PATCH",
        "/v1/stores/acme/settings",
        ADMIN,
        None,
        b"",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].as_str()),
        (405, Some("method_not_allowed"))
    );
}

async fn creating_aliases_is_idempotent_and_validated(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let body = r#"{"store":"acme","customer_email":"JohnDoe@Example.COM","store_email":"sac@acme-store.com"}"#;
    let first = send_json(
        relay.api,
        "POST",
        "/v1/orders/1234567890123-01/aliases",
        ACME,
        body,
    )
    .await;
    assert_eq!(
        first.status,
        200,
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    let first = first.json();
    // The vectors of docs/REFERENCE.md (the tests use the vectors' key).
    assert_eq!(
        first["aliases"]["customer"]["alias"],
        "f44789d54cb7909fb48a75629fbe7cfa@ct.test"
    );
    assert_eq!(
        first["aliases"]["store"]["alias"],
        "c2db2cdaaba1ba2f6171492a5c6accf5@ct.test"
    );
    assert_eq!(first["aliases"]["customer"]["mode"], "hard");
    let again = send_json(
        relay.api,
        "POST",
        "/v1/orders/1234567890123-01/aliases",
        ADMIN,
        body,
    )
    .await;
    assert_eq!(again.json(), first, "same request, same aliases");

    let cases = [
        (
            ACME,
            r#"{"store":"shop2","customer_email":"a@b.example"}"#,
            403,
            "forbidden",
        ),
        (
            ADMIN,
            r#"{"store":"acme","customer_email":"#,
            400,
            "bad_request",
        ),
        (
            ADMIN,
            r#"{"store":"acme","customer_email":"a@b.example","extra":1}"#,
            422,
            "invalid",
        ),
        (ADMIN, r#"{"store":"acme"}"#, 422, "invalid"),
        (
            ADMIN,
            r#"{"store":"acme","customer_email":"not-an-address"}"#,
            422,
            "invalid",
        ),
        (
            ADMIN,
            r#"{"store":"ac me","customer_email":"a@b.example"}"#,
            422,
            "invalid",
        ),
        (
            ADMIN,
            r#"{"store":"acme","customer_email":"x@ct.test"}"#,
            422,
            "invalid",
        ),
    ];
    for (token, body, status, code) in cases {
        let r = send_json(relay.api, "POST", "/v1/orders/o-2/aliases", token, body).await;
        assert_eq!(
            (r.status, r.json()["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        assert!(r.json()["message"].is_string());
    }
    let no_type = request(
        relay.api,
        "POST",
        "/v1/orders/o-2/aliases",
        ADMIN,
        None,
        b"{}",
    )
    .await;
    assert_eq!(no_type.status, 415);
    assert_eq!(no_type.json()["error"], "bad_request");
}

async fn aliases_show_and_disable(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let body = r#"{"store":"shop2","customer_email":"maria.silva@gmail.com"}"#;
    let created = send_json(
        relay.api,
        "POST",
        "/v1/orders/v502556llux-01/aliases",
        ADMIN,
        body,
    )
    .await
    .json();
    assert!(
        created["aliases"]["store"].is_null(),
        "no store_email, no store alias"
    );
    let alias = created["aliases"]["customer"]["alias"]
        .as_str()
        .unwrap()
        .to_string();

    let shown = get(
        relay.api,
        &format!("/v1/aliases/{}", alias.to_uppercase()),
        ADMIN,
    )
    .await;
    assert_eq!(shown.status, 200);
    let shown = shown.json();
    assert_eq!(
        (shown["store"].as_str(), shown["role"].as_str()),
        (Some("shop2"), Some("customer"))
    );
    assert_eq!(shown["active"], true);
    assert!(
        !shown.to_string().contains("maria.silva"),
        "no real address: {shown}"
    );
    // A token for another store does not learn that the alias exists.
    assert_eq!(
        get(relay.api, &format!("/v1/aliases/{alias}"), ACME)
            .await
            .status,
        404
    );
    assert_eq!(
        request(
            relay.api,
            "DELETE",
            &format!("/v1/aliases/{alias}"),
            ACME,
            None,
            b""
        )
        .await
        .status,
        404
    );
    assert_eq!(
        get(relay.api, "/v1/aliases/nobody@ct.test", ADMIN)
            .await
            .status,
        404
    );

    let gone = request(
        relay.api,
        "DELETE",
        &format!("/v1/aliases/{alias}"),
        ADMIN,
        None,
        b"",
    )
    .await;
    assert_eq!(
        (gone.status, gone.json()["disabled"].as_bool()),
        (200, Some(true))
    );
    assert_eq!(
        get(relay.api, &format!("/v1/aliases/{alias}"), ADMIN)
            .await
            .json()["active"],
        false
    );
    let mut c = SmtpClient::ready(relay.smtp).await;
    c.cmd("MAIL FROM:<a@example.org>").await;
    assert_eq!(
        c.cmd(&format!("RCPT TO:<{alias}>")).await.status(),
        "550 5.1.1"
    );
}

async fn store_settings_choose_the_mask_mode(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let r = get(relay.api, "/v1/stores/acme/settings", ACME).await;
    let settings = r.json();
    for (key, value) in [
        ("store", serde_json::json!("acme")),
        ("mask_mode", serde_json::json!("hard")),
        ("webhook_url", serde_json::Value::Null),
        ("webhook_secret", serde_json::Value::Null),
        ("require_authenticated_store", serde_json::json!(true)),
        ("spam", serde_json::json!("mark")),
    ] {
        assert_eq!(settings[key], value, "{key}: {settings}");
    }
    let r = send_json(
        relay.api,
        "PUT",
        "/v1/stores/acme/settings",
        ACME,
        r#"{"mask_mode":"soft"}"#,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["mask_mode"].as_str()),
        (200, Some("soft"))
    );
    for (token, path, body, status) in [
        (
            ACME,
            "/v1/stores/shop2/settings",
            r#"{"mask_mode":"soft"}"#,
            403,
        ),
        (
            ADMIN,
            "/v1/stores/acme/settings",
            r#"{"mask_mode":"medium"}"#,
            422,
        ),
        (
            ADMIN,
            "/v1/stores/acme/settings",
            r#"{"mask_mode":"soft","x":1}"#,
            422,
        ),
    ] {
        assert_eq!(
            send_json(relay.api, "PUT", path, token, body).await.status,
            status,
            "{body}"
        );
    }
    assert_eq!(
        get(relay.api, "/v1/stores/shop2/settings", ACME)
            .await
            .status,
        403
    );

    let body = r#"{"store":"acme","customer_email":"JohnDoe@Example.COM"}"#;
    let created = send_json(
        relay.api,
        "POST",
        "/v1/orders/1234567890123-01/aliases",
        ADMIN,
        body,
    )
    .await
    .json();
    assert_eq!(
        created["aliases"]["customer"]["alias"],
        "JohnDoe@example.com-4e818166b1cd0.ct.test"
    );
    assert_eq!(created["aliases"]["customer"]["mode"], "soft");
}

async fn bulk_creation_reports_each_item(backend: Backend) {
    let (relay, _sink) = relay_and_sink(backend).await;
    let body = r#"{"items":[
        {"store":"acme","order":"b-1","role":"customer","email":"JohnDoe@Example.COM"},
        {"store":"acme","order":"b-1","role":"store","email":"not-an-address"},
        {"store":"shop2","order":"b-2","role":"customer","email":"x@example.net"},
        {"store":"acme","order":"b-1","role":"store","email":"sac@acme-store.com","mode":"soft"}
    ]}"#;
    let r = send_json(relay.api, "POST", "/v1/aliases/bulk", ACME, body).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = r.json();
    assert_eq!(
        (r["created"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(2))
    );
    let results = r["results"].as_array().unwrap();
    let hard = results[0]["alias"]["alias"].as_str().unwrap();
    assert!(hard.len() == 40 && hard.ends_with("@ct.test"), "{hard}");
    assert_eq!(results[0]["alias"]["mode"], "hard");
    assert_eq!(results[1]["error"]["error"], "invalid");
    assert_eq!(results[2]["error"]["error"], "forbidden");
    let soft = results[3]["alias"]["alias"].as_str().unwrap();
    assert!(
        soft.starts_with("sac@acme-store.com-") && soft.ends_with(".ct.test"),
        "{soft}"
    );
    assert_eq!(results[3]["alias"]["mode"], "soft");
    // Idempotent: the same items give the same aliases.
    let again = send_json(relay.api, "POST", "/v1/aliases/bulk", ACME, body)
        .await
        .json();
    assert_eq!(again["results"], r["results"]);

    let too_many = format!(
        r#"{{"items":[{}]}}"#,
        vec![r#"{"store":"acme","order":"b","role":"customer","email":"a@b.example"}"#; 1001]
            .join(",")
    );
    assert_eq!(
        send_json(relay.api, "POST", "/v1/aliases/bulk", ADMIN, &too_many)
            .await
            .status,
        422
    );
    assert_eq!(
        send_json(
            relay.api,
            "POST",
            "/v1/aliases/bulk",
            ADMIN,
            r#"{"items":[{"store":"acme"}]}"#
        )
        .await
        .status,
        422
    );
    // A body over the 2 MiB limit: 413 with the API's JSON error.
    let huge = format!(
        r#"{{"items":[{}]}}"#,
        vec![r#"{"store":"acme","order":"b","role":"customer","email":"a@b.example"}"#; 40_000]
            .join(",")
    );
    let r = send_json(relay.api, "POST", "/v1/aliases/bulk", ADMIN, &huge).await;
    assert_eq!(r.status, 413);
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["error"], "too_large", "{body}");
}

on_both_backends!(
    bulk_creation_reports_each_item,
    auth_and_health,
    creating_aliases_is_idempotent_and_validated,
    aliases_show_and_disable,
    store_settings_choose_the_mask_mode,
);
