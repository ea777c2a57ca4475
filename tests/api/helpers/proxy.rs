//! A TCP proxy the test owns, to make a real server unreachable and reachable again without
//! touching the machine's server.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    open: Arc<watch::Sender<bool>>,
}

impl Proxy {
    /// A proxy in front of the server that `url` names (on `default_port` when it names none),
    /// and `url` with the proxy in the server's place.
    pub async fn in_front_of(url: &str, default_port: u16) -> (Proxy, String) {
        let mut url = url::Url::parse(url).unwrap();
        let host = url.host_str().unwrap().replace("localhost", "127.0.0.1");
        let target = format!("{host}:{}", url.port().unwrap_or(default_port))
            .parse()
            .unwrap();
        let proxy = Proxy::start(target).await;
        url.set_host(Some("127.0.0.1")).unwrap();
        url.set_port(Some(proxy.addr.port())).unwrap();
        (proxy, url.into())
    }

    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(watch::Sender::new(true));
        let state = Arc::clone(&open);
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !*state.borrow() {
                    continue; // dropped: the client sees the connection close at once
                }
                let mut closed = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Proxy { addr, open }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.open.send_replace(false);
    }

    pub fn restore(&self) {
        self.open.send_replace(true);
    }
}
