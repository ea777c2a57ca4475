//! Loading and validating configuration.

use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_load_without_any_account() {
    let s = Settings::load(&Sources::default()).unwrap();
    assert_eq!(s.server.bind.to_string(), "127.0.0.1:8080");
    assert!(s.accounts.is_empty());
    assert_eq!(s.iat_backdate_seconds, 0);
}

#[test]
fn env_overrides_file_and_names_nested_account_keys() {
    let s = Settings::load(&Sources {
        file: None,
        env: env(&[
            ("ZTV_SERVER__BIND", "127.0.0.1:9999"),
            ("ZTV_ACCOUNTS__PROD__MEETING_SDK__CLIENT_ID", "sdk-id"),
            (
                "ZTV_ACCOUNTS__PROD__MEETING_SDK__CLIENT_SECRET",
                "sdk-secret",
            ),
            ("ZTV_CONFIG", "/nonexistent"),
            ("ZTV_TEST_DATABASE_URL", "postgres://x"),
        ]),
    })
    .unwrap();
    assert_eq!(s.server.bind.port(), 9999);
    let prod = &s.accounts["prod"];
    assert_eq!(prod.meeting_sdk.as_ref().unwrap().client_id, "sdk-id");
}

#[test]
fn missing_secret_is_named_by_its_key() {
    let err = Settings::from_toml("[accounts.prod.meeting_sdk]\nclient_id = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert_eq!(err, "accounts.prod.meeting_sdk.client_secret: missing");
}

#[test]
fn wrong_type_names_the_key_without_echoing_the_value() {
    let err = Settings::from_toml("[server]\nrequest_timeout_seconds = \"soon-secret\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("server.request_timeout_seconds:"), "{err}");
    assert!(!err.contains("soon-secret"), "{err}");
}

#[test]
fn metrics_bind_and_secret_watch_are_checked() {
    let ok = Settings::from_toml(
        "[server]\nmetrics_bind = \"127.0.0.1:9090\"\nsecret_watch_seconds = 0\n\
         [accounts.a.video_sdk]\nkey = \"k\"\nsecret = \"s\"\n",
    )
    .unwrap();
    assert_eq!(ok.server.metrics_bind.unwrap().port(), 9090);
    assert_eq!(ok.server.secret_watch, None);
    for (text, key) in [
        (
            "metrics_bind = \"127.0.0.1:8080\"",
            "server.metrics_bind: must differ",
        ),
        (
            "metrics_bind = \"nine\"",
            "server.metrics_bind: must be an address",
        ),
        (
            "secret_watch_seconds = 7200",
            "server.secret_watch_seconds:",
        ),
    ] {
        let err = Settings::from_toml(&format!(
            "[server]\nbind = \"127.0.0.1:8080\"\n{text}\n[accounts.a.video_sdk]\nkey = \"k\"\nsecret = \"s\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with(key), "{err}");
    }
}

#[test]
fn hostile_caller_limits_have_defaults_and_bounds() {
    let s = Settings::load(&Sources::default()).unwrap();
    assert_eq!(s.server.max_connections, 512);
    assert_eq!(s.server.max_header_bytes, 16_384);
    assert_eq!(s.server.max_headers, 100);
    assert_eq!(s.server.header_read_timeout, Duration::from_secs(10));
    assert_eq!(s.server.http2_max_concurrent_streams, 100);

    let s = Settings::load(&Sources {
        file: None,
        env: env(&[
            ("ZTV_SERVER__MAX_CONNECTIONS", "8"),
            ("ZTV_SERVER__MAX_HEADER_BYTES", "8192"),
            ("ZTV_SERVER__MAX_HEADERS", "20"),
            ("ZTV_SERVER__HEADER_READ_TIMEOUT_SECONDS", "1"),
            ("ZTV_SERVER__HTTP2_MAX_CONCURRENT_STREAMS", "4"),
        ]),
    })
    .unwrap();
    assert_eq!(s.server.max_connections, 8);
    assert_eq!(s.server.max_header_bytes, 8192);
    assert_eq!(s.server.max_headers, 20);
    assert_eq!(s.server.header_read_timeout, Duration::from_secs(1));
    assert_eq!(s.server.http2_max_concurrent_streams, 4);

    for (text, problem) in [
        (
            "max_connections = 0",
            "server.max_connections: must be between 1 and 1000000",
        ),
        (
            "max_header_bytes = 4096",
            "server.max_header_bytes: must be between 8192 and 1048576",
        ),
        (
            "max_headers = 5000",
            "server.max_headers: must be between 16 and 1000",
        ),
        (
            "header_read_timeout_seconds = 0",
            "server.header_read_timeout_seconds: must be between 1 and 300",
        ),
        (
            "http2_max_concurrent_streams = 0",
            "server.http2_max_concurrent_streams: must be between 1 and 1000",
        ),
        ("max_connections = -3", "server.max_connections:"),
    ] {
        let err = Settings::from_toml(&format!("[server]\n{text}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(problem), "{text}: {err}");
    }
}

#[test]
fn secret_files_are_remembered_for_the_watcher() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "from-file\n").unwrap();
    let s = Settings::from_toml(&format!(
        "[accounts.a.video_sdk]\nkey = \"k\"\nsecret_file = \"{}\"\n",
        path.display()
    ))
    .unwrap();
    assert_eq!(s.secret_files, vec![path]);
    let mut other = s.accounts["a"].clone();
    assert!(other.same_as(&s.accounts["a"]));
    other.video_sdk.as_mut().unwrap().secret = SecretString::from("changed").into();
    assert!(!other.same_as(&s.accounts["a"]));
}

#[test]
fn unknown_key_is_refused() {
    let err = Settings::from_toml("[server]\nbnd = \"x\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("bnd"), "{err}");
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "from-file\n").unwrap();
    let text = format!(
        "[accounts.a.video_sdk]\nkey = \"k\"\nsecret_file = \"{}\"\n",
        path.display()
    );
    let s = Settings::from_toml(&text).unwrap();
    let secret = &s.accounts["a"].video_sdk.as_ref().unwrap().secret;
    assert_eq!(secret.expose_secret(), "from-file");
    assert!(!format!("{:?}", s).contains("from-file"));
}

#[test]
fn an_accounts_own_zoom_urls_are_https_unless_loopback() {
    let sdk = "[accounts.eu.meeting_sdk]\nclient_id = \"x\"\nclient_secret = \"y\"\n";
    let s = Settings::from_toml(&format!(
        "[accounts.eu]\napi_url = \"https://api-eu.zoom.us/v2\"\n{sdk}"
    ))
    .unwrap();
    let eu = &s.accounts["eu"];
    assert_eq!(eu.api_url(&s.zoom).as_str(), "https://api-eu.zoom.us/v2");
    assert_eq!(
        eu.oauth_url(&s.zoom),
        &s.zoom.oauth_url,
        "unset: zoom.oauth_url"
    );

    let err = Settings::from_toml(&format!(
        "[accounts.eu]\noauth_url = \"http://zoom.example.com\"\n{sdk}"
    ))
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("accounts.eu.oauth_url:"), "{err}");
    let err = Settings::from_toml(&format!("[accounts.eu]\napi_url = \"not a url\"\n{sdk}"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("accounts.eu.api_url:"), "{err}");
}

#[test]
fn list_keys_come_from_the_environment_comma_separated() {
    let load = |origins: &str, scopes: &str| {
        Settings::load(&Sources {
            file: None,
            env: env(&[
                ("ZTV_CORS__ALLOWED_ORIGINS", origins),
                ("ZTV_END_USERS__SCOPES", scopes),
                ("ZTV_END_USERS__ISSUER", "https://idp.example.com"),
                ("ZTV_END_USERS__AUDIENCE", "ztv"),
                ("ZTV_ACCOUNTS__PROD__S2S__CLIENT_SECRET", "0123"),
                ("ZTV_ACCOUNTS__PROD__S2S__CLIENT_ID", "id"),
                ("ZTV_ACCOUNTS__PROD__S2S__ACCOUNT_ID", "acc"),
            ]),
        })
        .unwrap()
    };
    let one = load("http://127.0.0.1:8090", "zak:read");
    assert_eq!(one.cors.allowed_origins.len(), 1);
    assert_eq!(one.end_users.as_ref().unwrap().scopes.len(), 1);
    let two = load(
        "https://a.example.com, https://b.example.com",
        "zak:read,obf:read",
    );
    assert_eq!(two.cors.allowed_origins.len(), 2);
    assert_eq!(two.end_users.as_ref().unwrap().scopes.len(), 2);
    // A digits-only secret stays text.
    let s2s = two.accounts["prod"].s2s.as_ref().unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&s2s.client_secret),
        "0123"
    );
}

#[test]
fn end_users_never_get_the_api_key_only_scopes() {
    for scope in ["s2s:token", "grants:admin", "diagnostics:read"] {
        let err = Settings::from_toml(&format!(
            "[end_users]\nissuer = \"https://idp.example.com\"\naudience = \"ztv\"\n\
             scopes = [\"zak:read\", \"{scope}\"]\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(&format!("end_users.scopes: `{scope}` is for API keys only")),
            "{err}"
        );
    }
}
