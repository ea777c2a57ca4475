//! The configuration every test starts from, and the credentials it holds.

pub const SDK_KEY: &str = "testSdkKey";
pub const SDK_SECRET: &str = "test-meeting-sdk-secret-9f8e7d";
pub const VIDEO_KEY: &str = "testVideoKey";
pub const VIDEO_SECRET: &str = "test-video-sdk-secret-1a2b3c";
pub const OTHER_SDK_KEY: &str = "otherSdkKey";
pub const OTHER_SDK_SECRET: &str = "other-meeting-sdk-secret-4d5e6f";

/// Config that puts per-caller rate limits out of the way, for tests that send a burst of
/// requests with one key and test something else (the default burst is 100).
pub const NO_RATE_LIMIT: &str =
    "[rate_limit]\nrequests_per_second = 100000\nburst = 100000\nupstream_per_minute = 100000\n";

/// The config every test starts from: two accounts, `prod` (Meeting SDK and Video SDK) and
/// `dev` (Meeting SDK only); `extra` is appended.
pub fn test_config(db_path: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[server]
bind = "127.0.0.1:0"
[database]
url = "sqlite://{db}"
[auth]
key_refresh_seconds = 1
[accounts.prod.meeting_sdk]
client_id = "{SDK_KEY}"
client_secret = "{SDK_SECRET}"
[accounts.prod.video_sdk]
key = "{VIDEO_KEY}"
secret = "{VIDEO_SECRET}"
[accounts.dev.meeting_sdk]
client_id = "{OTHER_SDK_KEY}"
client_secret = "{OTHER_SDK_SECRET}"
{extra}
"#,
        db = db_path.display()
    )
}
