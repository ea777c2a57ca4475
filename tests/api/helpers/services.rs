//! The real PostgreSQL and Redis servers: their URLs (or a loud skip), and a fresh PostgreSQL
//! schema per test.

/// The Redis URL for tests that need the real server. Unset: a loud skip, or a failure when
/// `ZTV_TEST_REQUIRE_SERVICES=1` (as in CI).
pub fn redis_url_or_skip() -> Option<String> {
    service_url_or_skip("ZTV_TEST_REDIS_URL", "redis://127.0.0.1:6379")
}

/// The PostgreSQL server URL for tests that need the real server (see [`redis_url_or_skip`]).
fn postgres_url_or_skip() -> Option<String> {
    service_url_or_skip(
        "ZTV_TEST_DATABASE_URL",
        "postgres://postgres@127.0.0.1:5432/test",
    )
}

fn service_url_or_skip(variable: &str, example: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("ZTV_TEST_REQUIRE_SERVICES").as_deref() != Ok("1"),
                "{variable} is unset but ZTV_TEST_REQUIRE_SERVICES=1"
            );
            eprintln!("SKIPPED: set {variable}={example} to run this test against the real server");
            None
        }
    }
}

/// A fresh PostgreSQL schema for one test, dropped (best effort) when the test ends.
pub struct PgSchema {
    server_url: String,
    name: String,
}

impl PgSchema {
    /// A fresh schema on the PostgreSQL server for tests; `None` when there is none (a loud
    /// skip, or a failure in CI: see [`redis_url_or_skip`]).
    pub async fn fresh() -> Option<Self> {
        Some(Self::create(&postgres_url_or_skip()?).await)
    }

    async fn create(server_url: &str) -> Self {
        use sqlx::Connection;
        let name = format!("ztv_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(server_url).await.unwrap();
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
        Self {
            server_url: server_url.to_string(),
            name,
        }
    }

    /// The server URL with only this schema on the search path.
    pub fn url(&self) -> String {
        let mut url = url::Url::parse(&self.server_url).unwrap();
        url.query_pairs_mut()
            .append_pair("options", &format!("-c search_path={}", self.name));
        url.into()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (server_url, name) = (self.server_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            use sqlx::Connection;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server_url).await {
                    // This runs while the test's runtime is blocked on this thread, so an
                    // app's background task may hold a transaction open that can never end:
                    // give up on the lock rather than hang the test run.
                    let _ = sqlx::query("SET lock_timeout = '5s'")
                        .execute(&mut conn)
                        .await;
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&mut conn)
                        .await;
                }
            });
        })
        .join();
    }
}
