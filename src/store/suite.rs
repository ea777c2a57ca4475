//! The store's behaviour, written once against [`Store`]; each backend's tests run all of it
//! through [`store_suite!`].

use futures_util::future::join_all;

use super::audit::AUDIT_ROWS_PER_INSERT;
use super::*;

fn record(name: &str, lookup: &str) -> ClientRecord {
    ClientRecord {
        name: name.into(),
        key_lookup: lookup.into(),
        key_hash: "00".repeat(32),
        scopes: vec![Scope::MeetingSdkSignature],
        account: Some("prod".into()),
        created_at: 100,
        expires_at: None,
        revoked_at: None,
        rate_limit: None,
        upstream_per_minute: None,
    }
}

fn user(text: &str) -> ZoomUser {
    ZoomUser::parse(text).unwrap()
}

/// A grant as the domain stores it: identities folded.
fn grant(user_id: &str, email: &str) -> GrantRow {
    GrantRow {
        account: "prod".into(),
        kind: GrantKind::User,
        zoom_user_id: user_id.into(),
        zoom_account_id: Some("acc-prod".into()),
        last_used_at: None,
        refreshed_at: None,
        user_key: user_id.to_ascii_lowercase(),
        email: email.to_ascii_lowercase(),
        // Every byte value survives the round trip, NUL included.
        refresh_token: vec![0, 1, 0xfe, 0xff],
        access_token: b"sealed access".to_vec(),
        access_expires_at: 1_000,
        scopes: "user:read:zak".into(),
        version: 0,
        refreshing_until: None,
        needs_reauth: false,
    }
}

async fn find(store: &dyn Store, who: &str) -> GrantRow {
    store
        .find_grant("prod", &user(who))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no grant for {who}"))
}

pub(crate) async fn clients_are_created_listed_rotated_and_revoked(store: &dyn Store) {
    store
        .insert_client(&record("web", "ztv_aaaaaaaa"))
        .await
        .unwrap();
    let dup = store.insert_client(&record("web", "ztv_bbbbbbbb")).await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))));

    assert!(
        store
            .rotate_client("web", "ztv_cccccccc", "11", 200)
            .await
            .unwrap()
    );
    let listed = store.list_clients().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].key_lookup, "ztv_cccccccc");
    assert_eq!(listed[0].key_hash, "11");

    assert!(store.revoke_client("web", 300).await.unwrap());
    assert!(!store.revoke_client("web", 301).await.unwrap());
    assert!(!store.revoke_client("nobody", 301).await.unwrap());
    assert!(
        !store
            .rotate_client("web", "ztv_dddddddd", "22", 302)
            .await
            .unwrap()
    );
    assert_eq!(store.list_clients().await.unwrap()[0].revoked_at, Some(300));

    // A revoked name may be used again.
    store
        .insert_client(&record("web", "ztv_eeeeeeee"))
        .await
        .unwrap();
    let listed = store.list_clients().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_at, None);
    assert_eq!(listed[0].key_lookup, "ztv_eeeeeeee");
}

pub(crate) async fn clients_come_back_exactly_as_stored_in_byte_order_of_name(store: &dyn Store) {
    let full = ClientRecord {
        name: "web".into(),
        key_lookup: "ztv_aaaaaaaa".into(),
        key_hash: "ab".repeat(32),
        scopes: vec![Scope::MeetingSdkSignature, Scope::ZakRead],
        account: None,
        created_at: 1_700_000_000,
        expires_at: Some(1_800_000_000),
        revoked_at: None,
        rate_limit: Some((u32::MAX, 7)),
        upstream_per_minute: Some(u32::MAX),
    };
    store.insert_client(&full).await.unwrap();
    store
        .insert_client(&record("Zeta", "ztv_bbbbbbbb"))
        .await
        .unwrap();
    store
        .insert_client(&record("alpha", "ztv_cccccccc"))
        .await
        .unwrap();

    let listed = store.list_clients().await.unwrap();

    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["Zeta", "alpha", "web"]);
    assert_eq!(listed[2], full);
    assert_eq!(listed[1], record("alpha", "ztv_cccccccc"));
}

pub(crate) async fn client_rate_limits_are_set_and_cleared(store: &dyn Store) {
    store
        .insert_client(&record("web", "ztv_aaaaaaaa"))
        .await
        .unwrap();

    assert!(
        store
            .set_client_rate_limit("web", Some((5, 10)), 200)
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_clients().await.unwrap()[0].rate_limit,
        Some((5, 10))
    );
    assert!(store.set_client_rate_limit("web", None, 201).await.unwrap());
    assert_eq!(store.list_clients().await.unwrap()[0].rate_limit, None);

    assert!(
        !store
            .set_client_rate_limit("nobody", Some((1, 1)), 202)
            .await
            .unwrap()
    );
    assert!(store.revoke_client("web", 203).await.unwrap());
    assert!(
        !store
            .set_client_rate_limit("web", Some((1, 1)), 204)
            .await
            .unwrap()
    );
}

pub(crate) async fn client_upstream_limits_are_set_and_cleared(store: &dyn Store) {
    store
        .insert_client(&record("web", "ztv_aaaaaaaa"))
        .await
        .unwrap();

    assert!(
        store
            .set_client_upstream_limit("web", Some(600), 200)
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_clients().await.unwrap()[0].upstream_per_minute,
        Some(600)
    );
    assert!(
        store
            .set_client_upstream_limit("web", None, 201)
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_clients().await.unwrap()[0].upstream_per_minute,
        None
    );
    assert!(
        !store
            .set_client_upstream_limit("nobody", Some(1), 202)
            .await
            .unwrap()
    );
}

pub(crate) async fn audit_events_are_listed_newest_first_by_caller_and_pruned(store: &dyn Store) {
    let event = |at_ms: i64, caller: Option<&str>| AuditEvent {
        at_ms,
        request_id: Some(format!("r{at_ms}").into()),
        caller: caller.map(Arc::from),
        route: "POST /v1/meeting-sdk/signature".into(),
        account: Some("prod".into()),
        target_user: None,
        target: Some("123456789".into()),
        outcome: "issued".into(),
        status: 200,
    };
    let events = [
        event(1_000, Some("web")),
        event(2_000, Some("svc")),
        event(3_000, Some("web")),
        event(4_000, None),
    ];
    store.append_audit(&events).await.unwrap();

    let all = store.list_audit(0, None, 100).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        [4_000, 3_000, 2_000, 1_000]
    );
    assert_eq!(all[3], events[0], "stored exactly as given");
    let web = store.list_audit(0, Some("web"), 100).await.unwrap();
    assert_eq!(
        web.iter().map(|e| e.at_ms).collect::<Vec<_>>(),
        [3_000, 1_000]
    );
    assert_eq!(store.list_audit(2_500, None, 100).await.unwrap().len(), 2);
    assert_eq!(store.list_audit(0, None, 1).await.unwrap()[0].at_ms, 4_000);

    assert_eq!(store.prune_audit(2_500).await.unwrap(), 2);
    assert_eq!(store.list_audit(0, None, 100).await.unwrap().len(), 2);

    // A writer's batch spans several INSERT statements of every shape; every event
    // lands, in order.
    let batch: Vec<_> = (0..(2 * AUDIT_ROWS_PER_INSERT as i64 + 7))
        .map(|i| event(10_000 + i, Some("bulk")))
        .collect();
    store.append_audit(&batch).await.unwrap();
    let bulk = store.list_audit(0, Some("bulk"), 10_000).await.unwrap();
    assert_eq!(bulk.len(), batch.len());
    assert!(bulk.iter().rev().eq(batch.iter()));
}

pub(crate) async fn oauth_states_are_taken_once(store: &dyn Store) {
    let state = OAuthState {
        account: "prod".into(),
        caller: "web".into(),
        user_hint: Some("ann@example.com".into()),
        install: GrantKind::User,
        created_ms: 500_000,
        expires_at: 1_000,
    };
    let anonymous = OAuthState {
        user_hint: None,
        install: GrantKind::Account,
        ..state.clone()
    };
    store.insert_oauth_state("h1", &state, 10).await.unwrap();
    store
        .insert_oauth_state("h2", &anonymous, 10)
        .await
        .unwrap();

    assert_eq!(store.take_oauth_state("h1").await.unwrap(), Some(state));
    assert_eq!(store.take_oauth_state("h1").await.unwrap(), None);
    assert_eq!(store.take_oauth_state("h2").await.unwrap(), Some(anonymous));
    assert_eq!(store.take_oauth_state("unknown").await.unwrap(), None);
}

pub(crate) async fn oauth_states_are_bounded_per_caller_and_pruned_when_expired(store: &dyn Store) {
    let state = |caller: &str, created_ms: i64, expires_at: i64| OAuthState {
        account: "prod".into(),
        caller: caller.into(),
        user_hint: None,
        install: GrantKind::User,
        created_ms,
        expires_at,
    };
    // "web" makes five with room for three: its two oldest go; "svc"'s one stays.
    store
        .insert_oauth_state("svc", &state("svc", 1, 2_000), 3)
        .await
        .unwrap();
    for n in 1..=5 {
        store
            .insert_oauth_state(&format!("web{n}"), &state("web", n, 1_000 + n), 3)
            .await
            .unwrap();
    }
    for gone in ["web1", "web2"] {
        assert_eq!(store.take_oauth_state(gone).await.unwrap(), None, "{gone}");
    }
    assert!(store.take_oauth_state("web3").await.unwrap().is_some());

    // Expired before 1 005: web4 (1 004); web5 (1 005) and svc (2 000) stay.
    assert_eq!(store.prune_oauth_states(1_005).await.unwrap(), 1);
    assert_eq!(store.take_oauth_state("web4").await.unwrap(), None);
    assert!(store.take_oauth_state("web5").await.unwrap().is_some());
    assert!(store.take_oauth_state("svc").await.unwrap().is_some());
}

pub(crate) async fn grants_are_never_found_by_a_unicode_case_fold(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "kate@example.com"), 100)
        .await
        .unwrap();
    // What a Unicode lower-casing would fold to kate's email (KELVIN SIGN) cannot even be
    // a ZoomUser; its nearest valid neighbours do not find her grant.
    assert!(ZoomUser::parse("\u{212A}ate@example.com").is_err());
    for other in [
        "kate@example.co",
        "ate@example.com",
        "kate@example.com.evil",
    ] {
        assert_eq!(store.find_grant("prod", &user(other)).await.unwrap(), None);
        assert_eq!(
            store.delete_grant("prod", &user(other)).await.unwrap(),
            None
        );
    }
    assert_eq!(find(store, "KATE@example.com").await.zoom_user_id, "u1");
}

pub(crate) async fn grants_are_found_by_user_id_or_email_in_any_case(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "Ann@Example.COM"), 100)
        .await
        .unwrap();

    let by_id = find(store, "u1").await;
    let by_email = find(store, "aNN@example.com").await;

    assert_eq!(by_id, by_email);
    assert_eq!(
        by_id,
        GrantRow {
            email: "ann@example.com".into(),
            version: 1,
            ..grant("u1", "")
        }
    );
    // Zoom user IDs are compared with ASCII case folded too: one identity, one rule.
    assert_eq!(find(store, "U1").await, by_id);
    assert_eq!(store.find_grant("other", &user("u1")).await.unwrap(), None);
    assert_eq!(
        store
            .find_grant("prod", &user("bob@example.com"))
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn a_new_grant_replaces_the_old_one_and_clears_its_state(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "ann@example.com"), 100)
        .await
        .unwrap();
    assert!(
        store
            .claim_refresh("prod", "u1", 1, 500, 100)
            .await
            .unwrap()
    );
    store.mark_needs_reauth("prod", "u1", 101).await.unwrap();

    let newer = GrantRow {
        email: "ann@new.example.com".into(),
        refresh_token: b"r2".to_vec(),
        access_token: b"a2".to_vec(),
        access_expires_at: 2_000,
        scopes: "user:read:zak meeting:read".into(),
        ..grant("u1", "")
    };
    store.put_grant(&newer, 102).await.unwrap();

    let stored = find(store, "u1").await;
    assert_eq!(stored.version, 4);
    assert_eq!(stored.refreshing_until, None);
    assert!(!stored.needs_reauth);
    assert_eq!(
        stored,
        GrantRow {
            version: 4,
            ..newer
        }
    );
    assert_eq!(
        store
            .find_grant("prod", &user("ann@example.com"))
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn of_many_claims_on_one_version_exactly_one_wins(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "ann@example.com"), 100)
        .await
        .unwrap();

    // Concurrent, each on its own connection where the backend has several.
    let claims = join_all((0..8).map(|_| store.claim_refresh("prod", "u1", 1, 500, 100))).await;

    let won = claims.into_iter().filter(|c| *c.as_ref().unwrap()).count();
    assert_eq!(won, 1);
    let stored = find(store, "u1").await;
    assert_eq!(stored.version, 2);
    assert_eq!(stored.refreshing_until, Some(500));
    // A stale version never wins, even with the lease gone.
    assert!(
        !store
            .claim_refresh("prod", "u1", 1, 900, 600)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_refresh("prod", "nobody", 1, 900, 600)
            .await
            .unwrap()
    );
}

pub(crate) async fn a_live_lease_blocks_a_claim_and_an_expired_one_does_not(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "ann@example.com"), 100)
        .await
        .unwrap();
    assert!(
        store
            .claim_refresh("prod", "u1", 1, 130, 100)
            .await
            .unwrap()
    );

    // Even at the current version, a lease that runs until 130 holds at 120 and at 130...
    assert!(
        !store
            .claim_refresh("prod", "u1", 2, 150, 120)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_refresh("prod", "u1", 2, 160, 130)
            .await
            .unwrap()
    );
    // ...and not after (the refresher crashed).
    assert!(
        store
            .claim_refresh("prod", "u1", 2, 170, 131)
            .await
            .unwrap()
    );

    let stored = find(store, "u1").await;
    assert_eq!(stored.version, 3);
    assert_eq!(stored.refreshing_until, Some(170));
}

pub(crate) async fn refreshed_tokens_are_stored_only_at_the_claimed_version(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "ann@example.com"), 100)
        .await
        .unwrap();
    assert!(
        store
            .claim_refresh("prod", "u1", 1, 130, 100)
            .await
            .unwrap()
    );

    assert!(
        !store
            .store_refreshed("prod", "u1", 1, b"r-stale", b"a-stale", 9_999, 101)
            .await
            .unwrap()
    );
    assert!(
        store
            .store_refreshed("prod", "u1", 2, b"r2", b"a2", 4_600, 102)
            .await
            .unwrap()
    );
    // The claimed version is spent.
    assert!(
        !store
            .store_refreshed("prod", "u1", 2, b"r3", b"a3", 5_000, 103)
            .await
            .unwrap()
    );

    let stored = find(store, "u1").await;
    assert_eq!(stored.refresh_token, b"r2");
    assert_eq!(stored.access_token, b"a2");
    assert_eq!(stored.access_expires_at, 4_600);
    assert_eq!(stored.version, 3);
    assert_eq!(stored.refreshing_until, None);
    // The next refresh needs no wait.
    assert!(
        store
            .claim_refresh("prod", "u1", 3, 200, 104)
            .await
            .unwrap()
    );
}

pub(crate) async fn a_released_lease_lets_the_next_claim_in_at_once(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "ann@example.com"), 100)
        .await
        .unwrap();
    assert!(
        store
            .claim_refresh("prod", "u1", 1, 500, 100)
            .await
            .unwrap()
    );

    // A stale release does nothing.
    store.release_refresh("prod", "u1", 1).await.unwrap();
    assert_eq!(find(store, "u1").await.refreshing_until, Some(500));

    store.release_refresh("prod", "u1", 2).await.unwrap();

    let stored = find(store, "u1").await;
    assert_eq!(stored.refreshing_until, None);
    assert_eq!(stored.version, 2);
    assert_eq!(stored.refresh_token, grant("u1", "").refresh_token);
    assert!(
        store
            .claim_refresh("prod", "u1", 2, 600, 101)
            .await
            .unwrap()
    );
}

pub(crate) async fn a_grant_marked_for_reauthorisation_says_so(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "ann@example.com"), 100)
        .await
        .unwrap();
    assert!(
        store
            .claim_refresh("prod", "u1", 1, 500, 100)
            .await
            .unwrap()
    );

    store.mark_needs_reauth("prod", "u1", 101).await.unwrap();

    let stored = find(store, "u1").await;
    assert!(stored.needs_reauth);
    assert_eq!(stored.refreshing_until, None);
    assert_eq!(stored.version, 3);
    // The refresher's claim is spent.
    assert!(
        !store
            .store_refreshed("prod", "u1", 2, b"r2", b"a2", 4_600, 102)
            .await
            .unwrap()
    );
}

pub(crate) async fn a_deleted_grant_names_its_user_and_is_gone(store: &dyn Store) {
    store
        .put_grant(&grant("u1", "Ann@Example.com"), 100)
        .await
        .unwrap();
    store
        .put_grant(&grant("u2", "bob@example.com"), 100)
        .await
        .unwrap();

    assert_eq!(
        store
            .delete_grant("prod", &user("ANN@example.com"))
            .await
            .unwrap(),
        Some(("u1".into(), "ann@example.com".into()))
    );
    assert_eq!(store.find_grant("prod", &user("u1")).await.unwrap(), None);
    assert_eq!(
        store
            .delete_grant("prod", &user("ann@example.com"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.delete_grant("other", &user("u2")).await.unwrap(),
        None
    );
    assert_eq!(
        store.delete_grant("prod", &user("u2")).await.unwrap(),
        Some(("u2".into(), "bob@example.com".into()))
    );
    assert_eq!(
        store
            .find_grant("prod", &user("bob@example.com"))
            .await
            .unwrap(),
        None
    );
}

pub(crate) async fn account_grants_are_apart_from_users_and_listed_in_pages(store: &dyn Store) {
    let install = GrantRow {
        kind: GrantKind::Account,
        zoom_user_id: crate::store::account_grant_id("acc-prod"),
        ..grant("admin1", "admin@example.com")
    };
    store.put_grant(&install, 100).await.unwrap();
    store
        .put_grant(&grant("u1", "ann@example.com"), 100)
        .await
        .unwrap();
    store
        .put_grant(&grant("u2", "bob@example.com"), 100)
        .await
        .unwrap();

    // A user lookup never finds the install, even by its installer's identity or its key.
    for who in ["admin1", "admin@example.com", "account.acc-prod"] {
        assert_eq!(store.find_grant("prod", &user(who)).await.unwrap(), None);
        assert_eq!(store.delete_grant("prod", &user(who)).await.unwrap(), None);
    }
    let found = store
        .find_account_grant("prod", "acc-prod")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.kind, GrantKind::Account);
    assert_eq!(found.user_key, "admin1");
    assert_eq!(
        store.find_account_grant("other", "acc-prod").await.unwrap(),
        None
    );

    // Pages of two, in key order, each starting after the last of the one before.
    let first = store.list_grants(Some("prod"), None, 2).await.unwrap();
    let keys: Vec<_> = first.iter().map(|g| g.zoom_user_id.clone()).collect();
    assert_eq!(keys, ["account:acc-prod", "u1"]);
    let after = ("prod", keys[1].as_str());
    let second = store
        .list_grants(Some("prod"), Some(after), 2)
        .await
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].zoom_user_id, "u2");
    assert!(
        store
            .list_grants(Some("other"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.count_grants().await.unwrap(), (3, 0));

    assert!(
        store
            .delete_grant_by_id("prod", "account:acc-prod")
            .await
            .unwrap()
    );
    assert_eq!(
        store.find_account_grant("prod", "acc-prod").await.unwrap(),
        None
    );
}

pub(crate) async fn grants_in_use_and_expiring_are_the_ones_kept_warm(store: &dyn Store) {
    let expiring = |id: &str, at: i64| GrantRow {
        access_expires_at: at,
        ..grant(id, &format!("{id}@example.com"))
    };
    // Made at 100: u1 and u2 expire soon, u3 later.
    for (id, at) in [("u1", 1_000), ("u2", 1_100), ("u3", 9_000)] {
        store.put_grant(&expiring(id, at), 100).await.unwrap();
    }
    // u2 is used at 5_000 (noted once; a second note within the hour writes nothing).
    store.touch_grant("prod", "u2", 5_000, 3_600).await.unwrap();
    store.touch_grant("prod", "u2", 5_500, 3_600).await.unwrap();
    assert_eq!(find(store, "u2").await.last_used_at, Some(5_000));

    let warm = |used_since| async move {
        store
            .grants_to_keep_warm(2_000, used_since, 10)
            .await
            .unwrap()
            .into_iter()
            .map(|g| g.zoom_user_id)
            .collect::<Vec<_>>()
    };
    assert_eq!(warm(0).await, ["u1", "u2"], "soonest to expire first");
    assert_eq!(warm(4_000).await, ["u2"], "only those used since");

    store.mark_needs_reauth("prod", "u2", 6_000).await.unwrap();
    assert_eq!(
        warm(4_000).await,
        Vec::<String>::new(),
        "never one Zoom refused"
    );
    assert_eq!(store.count_grants().await.unwrap(), (2, 1));
    assert!(
        store
            .store_refreshed("prod", "u1", 1, b"r", b"a", 9_500, 7_000)
            .await
            .unwrap()
    );
    assert_eq!(find(store, "u1").await.refreshed_at, Some(7_000));
}

pub(crate) async fn a_reachable_store_answers_ping(store: &dyn Store) {
    store.ping().await.unwrap();
}

/// One `#[tokio::test]` per function of this suite, for one backend. `$open` is an async fn
/// taking the test's name and giving `Option` of a value with `fn store(&self) -> &dyn Store`
/// (`None`: the backend is not available here and the test said so). A function added to
/// the suite is listed here too, so that every backend runs it.
macro_rules! store_suite {
    ($open:path) => {
        $crate::store::suite::store_suite!(
            @each $open;
            clients_are_created_listed_rotated_and_revoked,
            clients_come_back_exactly_as_stored_in_byte_order_of_name,
            client_rate_limits_are_set_and_cleared,
            client_upstream_limits_are_set_and_cleared,
            oauth_states_are_taken_once,
            oauth_states_are_bounded_per_caller_and_pruned_when_expired,
            grants_are_found_by_user_id_or_email_in_any_case,
            grants_are_never_found_by_a_unicode_case_fold,
            a_new_grant_replaces_the_old_one_and_clears_its_state,
            of_many_claims_on_one_version_exactly_one_wins,
            a_live_lease_blocks_a_claim_and_an_expired_one_does_not,
            refreshed_tokens_are_stored_only_at_the_claimed_version,
            a_released_lease_lets_the_next_claim_in_at_once,
            a_grant_marked_for_reauthorisation_says_so,
            a_deleted_grant_names_its_user_and_is_gone,
            a_reachable_store_answers_ping,
            account_grants_are_apart_from_users_and_listed_in_pages,
            grants_in_use_and_expiring_are_the_ones_kept_warm,
            audit_events_are_listed_newest_first_by_caller_and_pruned,
        );
    };
    (@each $open:path; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                let Some(db) = $open(stringify!($name)).await else {
                    return;
                };
                $crate::store::suite::$name(db.store()).await;
            }
        )*
    };
}
pub(crate) use store_suite;
