//! `cargo run --example web`: the browser example of ztv (see `examples/web/README.md`). Serves
//! `index.html` and `app.js` and a demo OIDC issuer on one origin, by default
//! http://127.0.0.1:8090, for a ztv started with that issuer and origin (`ztv dev`).

mod server;

use clap::Parser;

#[derive(Parser)]
#[command(about = "The ztv web example: the page and a demo OIDC issuer on one origin")]
struct Args {
    /// Address to listen on (a loopback address: the page and issuer name it in their URLs).
    #[arg(long, default_value = "127.0.0.1:8090")]
    bind: std::net::SocketAddr,
    /// The email of the user the demo issuer signs in: a Zoom user ztv knows
    /// (`ztv dev`'s emulated user is dev@example.com).
    #[arg(long, default_value = "dev@example.com")]
    user: String,
    /// The display name of that user.
    #[arg(long, default_value = "Dev User")]
    name: String,
    /// The issuer's client ID, which is the tokens' audience (ztv's `end_users.audience`).
    #[arg(long, default_value = "ztv-web-example")]
    client_id: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind(args.bind).await?;
    let addr = listener.local_addr()?;
    let mut options = server::Options::new(&args.user);
    options.user_name = args.name;
    options.client_id = args.client_id;
    let issuer = server::issuer_url(addr);
    println!(
        "ztv web example at http://{addr}/ (demo issuer {issuer}, client ID {client}, signs in \
         {user}).\nRun ztv for it in another terminal:\n  \
         cargo run --release -- dev --config examples/web/ztv-dev.toml",
        client = options.client_id,
        user = options.user_email,
    );
    if issuer != "http://127.0.0.1:8090/issuer" || options.client_id != "ztv-web-example" {
        println!(
            "(with end_users.issuer = \"{issuer}\", end_users.audience = \"{}\" and \
             cors.allowed_origins = [\"http://{addr}\"] in that file)",
            options.client_id
        );
    }
    server::serve(listener, options).await
}
